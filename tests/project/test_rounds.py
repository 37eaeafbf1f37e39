"""huale init -> round -> ingest -> round 2 -> status on a tiny project (1 epoch, 64 px)."""

import json

from huale.cli import main
from huale.project.state import Project
from tests.labeling import samples
from tests.processes import HualeProcess, partial_files, wait_for

TINY = ["--epochs", "1", "--score-batch-size", "4", "--device", "cpu"]


def _init(workspace, *extra):
    return main(["init", str(workspace / "proj"), "--pool", str(workspace / "pool"),
                 "--labeled", str(workspace / "lab" / "labeled.json"),
                 "--val", str(workspace / "val" / "val.json"), "--min-size", "64", "--max-size", "64",
                 *extra])


def test_rounds_ingest_status_end_to_end(workspace, capsys, tmp_path):
    assert _init(workspace) == 0
    assert _init(workspace) == 2  # never over an existing project
    assert main(["round", str(workspace / "proj"), "--budget", "3", "--strategy", "huale", *TINY]) == 0
    project = Project.open(workspace / "proj")
    rdir = project.round_dir(1)
    for name in ("selection.json", "selected_coco.json", "labelstudio_tasks.json",
                 "labelstudio_config.xml", "cvat_coco.zip", "gallery.html", "contact_sheet.png",
                 "eval.json", "round.json"):
        assert (rdir / name).is_file(), name
    record = project.round_record(1)
    assert record["labeled_images"] == 4 and len(record["selected"]) == 3
    assert record["val"]["mAP"] is not None
    tasks = json.loads((rdir / "labelstudio_tasks.json").read_text())
    assert [t["data"]["huale_rank"] for t in tasks] == [1, 2, 3]
    assert {t["predictions"][0]["model_version"] for t in tasks} == {"huale-round-001"}
    assert sorted(t["predictions"][0]["score"] for t in tasks) == [t["predictions"][0]["score"] for t in tasks]
    assert all(t["data"]["image"].startswith("/data/local-files/?d=pool/img") for t in tasks)
    thumbs = sorted(p.name for p in (rdir / "thumbnails").iterdir())
    assert thumbs == [f"{r:04d}-{v}.jpg" for r in (1, 2, 3) for v in ("flip", "orig")]  # huale uses the flip

    # label two of the three in "Label Studio", skip the third
    done = [t for t in tasks][:2]
    export = [samples.ls_task(k, t["data"], [samples.ls_annotation(k, [samples.ls_region(10, 10, 30, 40, "red")])])
              for k, t in enumerate(done, start=1)]
    export.append(samples.ls_task(3, tasks[2]["data"], [samples.ls_annotation(3, [], cancelled=True)]))
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert main(["ingest", str(project.root), str(tmp_path / "export.json")]) == 0
    assert "2 added" in capsys.readouterr().out

    assert main(["round", str(project.root), "--budget", "2", *TINY]) == 0
    second = project.round_record(2)
    assert second["labeled_images"] == 6 and second["fine_tuned"]
    chosen = {s["image_id"] for s in second["selected"]}
    first_ids = {s["image_id"] for s in record["selected"]}
    assert not chosen & first_ids  # neither the labeled nor the outstanding (skipped) image again
    assert second["excluded_outstanding"] == 1
    capsys.readouterr()
    assert main(["status", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "2 rounds with a val mAP" in out and "3 sent images not labeled yet" in out
    assert (project.root / "learning_curve.png").is_file()
    rows = out.splitlines()
    header = next(i for i, line in enumerate(rows) if line.strip().startswith("round"))
    assert rows[header + 1].split()[:6] == ["1", "4", rows[header + 1].split()[2], "3", "2", "1"]
    assert main(["status", str(project.root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [r["outstanding"] for r in status["rounds"]] == [1, 2]


def test_killed_round_resumes_and_a_second_process_is_refused(workspace):
    assert _init(workspace) == 0
    proj = workspace / "proj"
    args = ["round", str(proj), "--budget", "2", "--strategy", "entropy", "--epochs", "2",
            "--device", "cpu"]
    first = HualeProcess(*args, cwd=workspace)
    first.kill_when(proj / "rounds" / "001" / "train" / "checkpoint.pt")  # after epoch 1 of 2
    assert not (proj / "rounds" / "001" / "round.json").exists()

    gate = workspace / "gate"
    holder = HualeProcess(*args, cwd=workspace, at_replace=r"rounds/001/train/history\.json$",
                          then=f"wait:{gate}")
    wait_for(f"{gate}.waiting", holder)
    code, _, err = HualeProcess("ingest", str(proj), str(workspace / "lab" / "labeled.json"),
                                cwd=workspace).wait()
    assert code == 2 and "in use by pid" in err and "round" in err, err
    gate.touch()
    holder.finish()
    history = json.loads((proj / "rounds" / "001" / "train" / "history.json").read_text())
    assert [h["epoch"] for h in history["history"]] == [1, 2]  # epoch 1 kept, not retrained
    assert Project.open(proj).round_record(1) is not None
    assert not partial_files(proj)
    assert main(["round", str(proj), "--budget", "1", "--strategy", "random", "--epochs", "1",
                 "--device", "cpu"]) == 0  # round 1 is finished: other options make round 2
    assert Project.open(proj).rounds() == [1, 2]
