"""``huale select`` end to end on a tiny image folder and on the synthetic dataset."""

import csv
import json
import logging

import pytest

from huale.data.coco import read_coco
from huale.data.loading import load_image_folder
from huale.data.synthetic import generate_synthetic
from huale.errors import ConfigError, DataError
from huale.inference import ScoringRequest
from huale.models.checkpoint import build_from_checkpoint
from huale.selection import SelectConfig, run_selection
from huale.selection.export import (
    LABEL_STUDIO_TASKS,
    SELECTED_COCO,
    SELECTION_CSV,
    SELECTION_JSON,
)
from huale.selection.run import select_with_model
from huale.strategies import build_strategy
from tests.conftest import TINY_CLASSES
from tests.selection.conftest import select_cli, write_peaked_checkpoint

OUTPUTS = (SELECTION_CSV, SELECTION_JSON, SELECTED_COCO, LABEL_STUDIO_TASKS)
LABELED = {"img0.png", "img1.png"}  # ids (paths relative to images/) of labeled.json's images


def _rows(out):
    with open(out / SELECTION_CSV, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def first_run(workspace):
    out = workspace / "out-a"
    code = select_cli(
        "--checkpoint", str(workspace / "model.pt"), "--pool", str(workspace / "images"),
        "--labeled", str(workspace / "labeled.json"), "--budget", "2", "--out", str(out),
        "--preannotation-threshold", "0.3",
    )
    assert code == 0
    return out


def test_folder_without_annotations_end_to_end(workspace, first_run):
    out = first_run
    rows = _rows(out)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]  # 6 images, 2 already labeled
    assert not LABELED & {r["image_id"] for r in rows}
    selected = [r["image_id"] for r in rows if r["selected"] == "1"]
    assert len(selected) == 2 and all(r["stage"] for r in rows)

    report = json.loads((out / SELECTION_JSON).read_text())
    assert report["strategy"] == "huale" and report["already_labeled"] == 2
    assert [s["image_id"] for s in report["selected"]] == selected
    for entry in report["selected"]:
        assert entry["path"] == str((workspace / "images" / entry["image_id"]).resolve())
        for obj in entry["objects"]:
            assert len(obj["box"]) == 4 and obj["class_name"] in TINY_CLASSES
            assert "scale" in obj["levels"]
    assert [r["image_id"] for r in report["ranking"]] == [r["image_id"] for r in rows]

    coco = read_coco(out / SELECTED_COCO)  # loadable as a dataset: pre-annotated selection
    assert [r.path.name for r in coco.records] == selected
    assert sum(r.num_boxes for r in coco.records) == sum(
        int(r["predicted_boxes"]) for r in rows if r["selected"] == "1"
    )
    raw = json.loads((out / SELECTED_COCO).read_text())
    assert all(a["score"] >= 0.3 for a in raw["annotations"])

    tasks = json.loads((out / LABEL_STUDIO_TASKS).read_text())
    assert [t["data"]["huale_id"] for t in tasks] == selected
    for task, image in zip(tasks, raw["images"], strict=True):
        results = task["predictions"][0]["result"]
        annotations = [a for a in raw["annotations"] if a["image_id"] == image["id"]]
        assert len(results) == len(annotations)
        for result, annotation in zip(results, annotations, strict=True):
            x, y, w, h = annotation["bbox"]  # pixels; Label Studio wants percent of the size
            value = result["value"]
            assert value["x"] == pytest.approx(100 * x / 64)
            assert value["width"] == pytest.approx(100 * w / 64)
            assert value["y"] == pytest.approx(100 * y / 64)
            assert value["height"] == pytest.approx(100 * h / 64)


def test_same_inputs_give_byte_identical_outputs(workspace, first_run, caplog):
    out = workspace / "out-b"
    select_cli(
        "--checkpoint", str(workspace / "model.pt"), "--pool", str(workspace / "images"),
        "--labeled", str(workspace / "labeled.json"), "--budget", "2", "--out", str(out),
        "--preannotation-threshold", "0.3",
    )
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (first_run / name).read_bytes(), name
    # running again in the same folder with --resume reads the finished scoring shards back
    caplog.set_level(logging.INFO, logger="huale.inference")
    select_cli(
        "--checkpoint", str(workspace / "model.pt"), "--pool", str(workspace / "images"),
        "--labeled", str(workspace / "labeled.json"), "--budget", "2", "--out", str(out),
        "--preannotation-threshold", "0.3", "--resume",
    )
    assert "resuming: 1 of 1 shards" in caplog.text
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (first_run / name).read_bytes(), name


def test_budget_larger_than_pool_selects_everything(workspace, caplog):
    out = workspace / "out-all"
    with caplog.at_level(logging.WARNING):
        select_cli(
            "--checkpoint", str(workspace / "model.pt"), "--pool", str(workspace / "images"),
            "--labeled", str(workspace / "labeled.json"), "--budget", "50", "--out", str(out),
            "--strategy", "entropy",
        )
    assert "covers the whole pool" in caplog.text
    rows = _rows(out)
    assert len(rows) == 4 and all(r["selected"] == "1" for r in rows)


def test_box_budget_is_respected(workspace):
    out = workspace / "out-boxes"
    select_cli(
        "--checkpoint", str(workspace / "model.pt"), "--pool", str(workspace / "images"),
        "--labeled", str(workspace / "labeled.json"), "--budget", "5", "--budget-unit", "boxes",
        "--strategy", "cald", "--out", str(out),
    )
    rows = _rows(out)
    # an image costs its detections >= the pre-annotation threshold, at least 1
    costs = [max(1, int(r["predicted_boxes"])) for r in rows if r["selected"] == "1"]
    assert costs and sum(costs) <= 5
    assert sum(max(1, int(r["predicted_boxes"])) for r in rows) > 5  # the budget did bind
    report = json.loads((out / SELECTION_JSON).read_text())
    assert report["budget_unit"] == "boxes"
    assert [s["predicted_boxes"] for s in report["selected"]] == [
        int(r["predicted_boxes"]) for r in rows if r["selected"] == "1"
    ]


def test_labeled_id_list_and_image_list_pool(workspace):
    pool = workspace / "pool.txt"  # ids of listed images: paths relative to the list
    pool.write_text("".join(f"images/img{i}.png\n" for i in range(6)))
    ids = workspace / "done.txt"  # one id, one absolute path
    third = (workspace / "images" / "img3.png").resolve()
    ids.write_text(f"# already labeled\nimages/img2.png\n{third}\n")
    out = workspace / "out-list"
    result = run_selection(
        SelectConfig(
            checkpoint=workspace / "model.pt", pool=pool, budget=2, out=out,
            labeled=workspace / "labeled.json", labeled_ids=ids, strategy="random",
            device="cpu", workers=0, progress=False,
        )
    )
    assert result.already_labeled == [f"images/img{i}.png" for i in range(4)]
    assert {r["image_id"] for r in _rows(out)} == {"images/img4.png", "images/img5.png"}


def test_empty_pool_and_zero_budget_are_errors(workspace):
    base = {"checkpoint": workspace / "model.pt", "out": workspace / "out-err",
            "device": "cpu", "workers": 0, "progress": False}
    with pytest.raises(ConfigError, match="budget must be a positive integer"):
        SelectConfig(pool=workspace / "images", budget=0, **base)
    empty = workspace / "empty.txt"
    empty.write_text("# nothing here\n")
    with pytest.raises(DataError, match="the pool is empty"):
        run_selection(SelectConfig(pool=empty, budget=1, **base))
    ids = workspace / "all.txt"
    ids.write_text("".join(f"img{i}.png\n" for i in range(6)))
    with pytest.raises(DataError, match="all 6 images are already labeled"):
        run_selection(SelectConfig(pool=workspace / "images", labeled_ids=ids, budget=1, **base))
    assert not (workspace / "out-err" / SELECTION_CSV).exists()


def test_synthetic_dataset_as_pool_and_as_folder(tmp_path):
    info = generate_synthetic(tmp_path / "synth", num_images=8, image_size=96, progress=False)
    checkpoint = write_peaked_checkpoint(tmp_path / "model.pt", info.class_names)
    common = {"checkpoint": checkpoint, "labeled": info.out_dir, "budget": 1, "device": "cpu",
              "workers": 0, "progress": False}
    train = {r.path.resolve() for r in read_coco(info.train_json).records}
    # the test split as a dataset (its labels ignored), core-set on backbone features
    by_split = run_selection(
        SelectConfig(pool=info.out_dir, pool_split="test", out=tmp_path / "a", strategy="coreset",
                     **common)
    )
    assert (by_split.pool_size, by_split.already_labeled, len(by_split.selected)) == (2, [], 1)
    # the whole image folder: the 6 train images are recognised as labeled by their paths
    by_folder = run_selection(
        SelectConfig(pool=info.out_dir / "images", out=tmp_path / "b", strategy="random", **common)
    )
    assert len(by_folder.already_labeled) == 6 and by_folder.pool_size == 2
    assert all((info.out_dir / "images" / i).resolve() not in train for i in by_folder.selected)
    # the labeled split itself as the pool leaves nothing to select
    with pytest.raises(DataError, match="already labeled"):
        run_selection(SelectConfig(pool=info.out_dir, out=tmp_path / "c", **common))


def test_select_with_model_for_library_callers(workspace):
    model, names = build_from_checkpoint(workspace / "model.pt")
    labeled = read_coco(workspace / "labeled.json")
    folder = load_image_folder(workspace / "images", class_names=names)
    options = {"request": ScoringRequest(device="cpu", workers=0, progress=False)}
    with pytest.raises(ConfigError, match="holds labeled images"):
        select_with_model(model, folder, labeled, build_strategy("entropy"), 1, **options)
    pool = folder.subset([i for i in folder.ids if i not in LABELED])
    selection = select_with_model(model, pool, labeled, build_strategy("entropy"), 2, **options)
    assert len(selection.selected) == 2 and len(selection.ranked) == 4
    assert selection.selected == [s.image_id for s in selection.ranked[:2]]


def test_second_select_on_the_same_output_folder_is_refused(tmp_path):
    from huale.locking import FolderLock, FolderLockedError
    from huale.selection.run import SelectConfig, run_selection

    out = tmp_path / "out"
    with FolderLock(out):  # stands for a first `huale select` still running
        config = SelectConfig(checkpoint=tmp_path / "unused.pt", pool=tmp_path, budget=1, out=out)
        with pytest.raises(FolderLockedError, match="in use"):
            run_selection(config)
