"""``huale loop`` and ``huale select`` killed with SIGKILL at several points, then resumed, end
exactly like an uninterrupted run: same selections and metrics, no partial file, no image
selected twice or lost from the labeled set.

Each test runs the uninterrupted reference in a subprocess alongside the interrupted one.
"""

from __future__ import annotations

import csv

from huale.selection.export import (
    LABEL_STUDIO_TASKS,
    SELECTED_COCO,
    SELECTION_CSV,
    SELECTION_JSON,
)
from tests.processes import HualeProcess, partial_files
from tests.workspaces import (
    check_labeled_set_grows_without_repeats,
    cycle_records,
    write_loop_workspace,
    write_select_workspace,
)

SELECT_OUTPUTS = (SELECTION_CSV, SELECTION_JSON, SELECTED_COCO, LABEL_STUDIO_TASKS)


def test_loop_killed_at_each_step_resumes_to_the_uninterrupted_result(tmp_path):
    root, run = tmp_path, tmp_path / "run"
    write_loop_workspace(root, epochs=2, cycles=2)
    reference = HualeProcess("loop", "--config", "loop.yaml", "--out", "reference", "--no-report",
                             cwd=root)

    def resume(**hook) -> HualeProcess:
        return HualeProcess("loop", "--resume", "run", "--no-report", cwd=root, **hook)

    cycle0 = run / "shared" / "seed0" / "cycle0"
    first = HualeProcess("loop", "--config", "loop.yaml", "--out", "run", "--no-report", cwd=root)
    # 1. training, after the checkpoint of epoch 1 of 2
    first.kill_when(cycle0 / "checkpoint.pt")
    assert not (cycle0 / "model.pt").exists()
    # 2. in the middle of writing the training history (between the last epoch and model.pt)
    resume(at_replace=r"cycle0/history\.json$").expect_killed()
    assert partial_files(run) and not (cycle0 / "model.pt").exists()
    # 3. scoring the unlabeled pool
    scoring = run / "huale" / "seed0" / "cycle0" / "scoring"
    resume().kill_when(scoring / "pool-*" / "manifest.json")
    assert not list(scoring.glob("pool-*/shard-*.npz"))
    # 4. in the middle of writing cycle 0's record (the selection)
    resume(at_replace=r"cycle0/record\.json$").expect_killed()
    assert partial_files(run)
    # 5. training of cycle 1, after its first epoch
    cycle1 = run / "huale" / "seed0" / "cycle1" / "train"
    resume().kill_when(cycle1 / "checkpoint.pt")
    assert not (cycle1 / "model.pt").exists()
    assert "2 cycle records" in resume().finish()
    reference.finish()

    records = cycle_records(run)
    assert records == cycle_records(root / "reference")
    assert [r["cycle"] for r in records] == [0, 1] and records[1]["num_labeled"] == 7
    check_labeled_set_grows_without_repeats(records, budget=3)
    assert partial_files(run) == [] and partial_files(root / "reference") == []


def test_select_killed_while_scoring_and_writing_reruns_to_identical_files(tmp_path):
    root, args = tmp_path, write_select_workspace(tmp_path)
    out = root / "out"
    reference = HualeProcess(*args, "--out", str(root / "reference"), cwd=root)
    # 1. scoring: after 2 of the 5 pool shards
    HualeProcess(*args, "--out", str(out), cwd=root).kill_when(
        out / ".scoring" / "pool-*" / "shard-000001.npz"
    )
    assert not list(out.glob(".scoring/pool-*/shard-000004.npz"))
    # 2. writing the exports: selection.csv is written, selection.json half-written
    HualeProcess(*args, "--out", str(out), "--resume", cwd=root,
                 at_replace=r"/selection\.json$").expect_killed()
    assert (out / SELECTION_CSV).is_file() and not (out / SELECTION_JSON).exists()
    assert partial_files(out)
    # 3. the same command again (with --resume: the folder is not empty) finishes the job
    HualeProcess(*args, "--out", str(out), "--resume", cwd=root).finish()
    reference.finish()

    for name in SELECT_OUTPUTS:
        assert (out / name).read_bytes() == (root / "reference" / name).read_bytes(), name
    assert partial_files(out) == []
    with open(out / SELECTION_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    selected = [r["image_id"] for r in rows if r["selected"] == "1"]
    assert len(selected) == 3 and len(set(selected)) == 3
    assert not {"img0.png", "img1.png"} & {r["image_id"] for r in rows}  # the labeled images
    assert len(rows) == 10  # every unlabeled image ranked once


def test_partial_file_of_a_killed_write_is_removed_when_the_folder_is_taken_again(tmp_path):
    """What the loop and select tests rely on, in isolation: the lock cleans up after a kill."""
    from huale.locking import FolderLock

    (tmp_path / "cycle0").mkdir()
    left = tmp_path / "cycle0" / ".record.json.k3j_9xq0.tmp"  # a temp name huale.io makes
    left.write_text('{"cyc')
    user_file = tmp_path / "notes.tmp"  # not a huale temp name: kept
    user_file.write_text("mine")
    with FolderLock(tmp_path):
        assert not left.exists() and user_file.exists()

