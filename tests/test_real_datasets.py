"""Day one with a real export (tests/exports.py): train, evaluate, select through the CLI.

The user's category ids (0-based, with gaps, an unused supercategory) and image ids come back in
every file huale writes; a run folder is never silently replaced; paths stay as the user gave
them; an offline ``--weights DEFAULT`` is one line.
"""

import json
import logging
import os
import urllib.error
from pathlib import Path

import pytest
import torch

from huale.cli import main
from huale.models.checkpoint import checkpoint_category_ids, load_checkpoint
from huale.selection.export import LABEL_STUDIO_TASKS, SELECTED_COCO, SELECTION_JSON
from tests.exports import ROBOFLOW_CATEGORIES, write_roboflow_coco

TRAIN = ["--arch", "small", "--min-size", "64", "--max-size", "64", "--batch-size", "2",
         "--workers", "0", "--lr", "0.01", "--warmup-iters", "0", "--lr-steps", "--epochs", "1",
         "--device", "cpu"]
CPU = ["--device", "cpu", "--workers", "0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Roboflow COCO export and a model trained one epoch on its train split."""
    root = tmp_path_factory.mktemp("roboflow")
    data = write_roboflow_coco(root / "rf")
    run = root / "run"
    assert main(["-q", "train", "--data", str(data / "train" / "_annotations.coco.json"),
                 "--out", str(run), *TRAIN]) == 0
    return data, run


def test_checkpoint_keeps_the_category_ids(trained):
    _, run = trained
    state = load_checkpoint(run / "model.pt")
    assert state["class_names"] == [c["name"] for c in ROBOFLOW_CATEGORIES]
    assert checkpoint_category_ids(state) == [0, 1, 3, 7]
    # a checkpoint written before the ids were stored reads as 1..C
    del state["category_ids"]
    assert checkpoint_category_ids(state) == [1, 2, 3, 4]


def test_saved_detections_use_the_users_ids_and_evaluate_against_the_users_file(
    trained, tmp_path, capsys
):
    data, run = trained
    gt = data / "valid" / "_annotations.coco.json"
    dets = tmp_path / "dets.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run / "model.pt"), "--data", str(gt),
                 "--metric", "coco", "--json", "--save-detections", str(dets), *CPU]) == 0
    direct = json.loads(capsys.readouterr().out)
    results = json.loads(dets.read_text())
    assert results, "a trained model detects something at score >= 0.05"
    original = json.loads(gt.read_text())
    assert {r["category_id"] for r in results} <= {c["id"] for c in original["categories"]}
    assert {r["image_id"] for r in results} <= {i["id"] for i in original["images"]}
    # the user's own ground truth scores the file exactly as huale scored the checkpoint
    assert main(["-q", "evaluate", "--gt", str(gt), "--detections", str(dets), "--metric", "coco",
                 "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_file["AP"] == pytest.approx(direct["AP"])
    assert from_file["per_class"] == pytest.approx(direct["per_class"])
    # an existing detections file is not replaced without --overwrite
    before = dets.read_bytes()
    assert main(["-q", "evaluate", "--checkpoint", str(run / "model.pt"), "--data", str(gt),
                 "--save-detections", str(dets), *CPU]) == 2
    assert "--overwrite" in capsys.readouterr().err and dets.read_bytes() == before


def test_selected_coco_keeps_category_and_image_ids(trained, tmp_path):
    data, run = trained
    pool = data / "valid" / "_annotations.coco.json"
    out = tmp_path / "sel"
    assert main(["-q", "select", "--checkpoint", str(run / "model.pt"), "--pool", str(pool),
                 "--budget", "3", "--out", str(out), "--strategy", "entropy",
                 "--preannotation-threshold", "0.0", *CPU]) == 0
    coco = json.loads((out / SELECTED_COCO).read_text())
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [
        (c["id"], c["name"]) for c in ROBOFLOW_CATEGORIES
    ]
    assert coco["annotations"] and {a["category_id"] for a in coco["annotations"]} <= {0, 1, 3, 7}
    original = {i["id"]: i for i in json.loads(pool.read_text())["images"]}
    assert {i["id"] for i in coco["images"]} == set(original)
    for image in coco["images"]:
        assert image["file_name"] == (pool.parent / original[image["id"]]["file_name"]).as_posix()
    assert json.loads((out / SELECTION_JSON).read_text())["category_ids"] == [0, 1, 3, 7]


def test_train_refuses_a_non_empty_run_folder(trained, tmp_path, capsys):
    data, _ = trained
    train_json = str(data / "train" / "_annotations.coco.json")
    run = tmp_path / "run"
    assert main(["-q", "train", "--data", train_json, "--out", str(run), *TRAIN]) == 0
    model = (run / "model.pt").read_bytes()
    capsys.readouterr()
    assert main(["-q", "train", "--data", train_json, "--out", str(run), *TRAIN]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "--resume" in err
    assert "--overwrite" in err and (run / "model.pt").read_bytes() == model
    assert main(["-q", "train", "--data", train_json, "--out", str(run), *TRAIN,
                 "--overwrite", "--seed", "1"]) == 0
    assert (run / "model.pt").read_bytes() != model
    assert main(["-q", "train", "--data", train_json, "--out", str(run), *TRAIN,
                 "--overwrite", "--resume"]) == 2


def test_synth_loop_and_select_refuse_non_empty_folders(tmp_path, capsys):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["-q", "synth", "--out", str(out), "--images", "4", "--image-size", "64"]) == 2
    assert "notes.txt" in capsys.readouterr().err and not (out / "train.json").exists()
    assert main(["-q", "synth", "--out", str(out), "--images", "4", "--image-size", "64",
                 "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # only its own files are replaced
    capsys.readouterr()
    assert main(["-q", "loop", "--config", "synthetic-cpu", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["-q", "select", "--checkpoint", str(tmp_path / "none.pt"), "--pool", str(out),
                 "--budget", "1", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_select_resume_says_so_and_overwrite_rescores(tmp_path, capsys, caplog):
    from tests.workspaces import write_select_workspace

    args = write_select_workspace(tmp_path)
    out = tmp_path / "out"
    assert main(["-q", *args, "--out", str(out)]) == 0
    first = (out / SELECTED_COCO).read_bytes()
    capsys.readouterr()
    assert main(["-q", *args, "--out", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "resumed: 10 of 10 pool images read back" in printed
    assert (out / SELECTED_COCO).read_bytes() == first
    caplog.set_level(logging.INFO, logger="huale.inference")
    assert main(["-q", *args, "--out", str(out), "--overwrite"]) == 0
    assert "resumed" not in capsys.readouterr().out and "resuming" not in caplog.text
    assert (out / SELECTED_COCO).read_bytes() == first


def test_url_prefix_and_selected_coco_keep_a_symlinked_pool_path(tmp_path):
    from tests.workspaces import write_select_workspace

    write_select_workspace(tmp_path)
    pool = tmp_path / "pool"
    (pool / "day1").mkdir(parents=True)
    for image in sorted((tmp_path / "images").glob("*.png")):
        os.symlink(image, pool / "day1" / image.name)
    out = tmp_path / "out"
    assert main(["-q", "select", "--checkpoint", str(tmp_path / "model.pt"), "--pool", str(pool),
                 "--budget", "3", "--out", str(out), "--image-url-prefix",
                 "/data/local-files/?d=pool/", "--preannotation-threshold", "0", *CPU]) == 0
    tasks = json.loads((out / LABEL_STUDIO_TASKS).read_text())
    assert len(tasks) == 3
    for task in tasks:
        assert task["data"]["image"] == "/data/local-files/?d=pool/" + task["data"]["huale_id"]
        assert task["data"]["huale_id"].startswith("day1/img")
    coco = json.loads((out / SELECTED_COCO).read_text())
    for image in coco["images"]:
        assert image["file_name"] == (pool / image["huale_id"]).as_posix()
        assert os.path.islink(image["file_name"])


def test_offline_default_weights_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    monkeypatch.setattr(torch.hub, "urlopen", offline)
    data = write_roboflow_coco(tmp_path / "rf", splits=(("train", 2),))
    for option in ("--backbone-weights", "--weights"):
        arch = "small" if option == "--backbone-weights" else "fasterrcnn_mobilenet_v3_large_320_fpn"
        code = main(["-q", "train", "--data", str(data / "train" / "_annotations.coco.json"),
                     "--out", str(tmp_path / option), "--arch", arch, option, "DEFAULT",
                     "--epochs", "1", "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert "could not download" in err and "name resolution" in err
        assert "https://download.pytorch.org/" in err and "pass the file" in err


def test_a_class_without_boxes_trains_with_a_warning_or_is_dropped(trained, tmp_path, caplog,
                                                                     capsys):
    from huale.cli.train import _check_classes
    from huale.data.coco import read_coco

    data, _ = trained
    train_json = str(data / "train" / "_annotations.coco.json")
    dataset = read_coco(train_json)
    with caplog.at_level(logging.WARNING, logger="huale"):
        assert _check_classes(dataset, drop_empty=False) is dataset
    assert "1 classes have no box in the training set: 'cells' (id 0)" in caplog.text
    assert "pass --drop-empty-classes to leave them out" in caplog.text
    run = tmp_path / "dropped"
    assert main(["-q", "train", "--data", train_json, "--out", str(run), *TRAIN,
                 "--drop-empty-classes"]) == 0
    state = load_checkpoint(run / "model.pt")
    assert state["class_names"] == ["Platelets", "RBC", "WBC"]
    assert checkpoint_category_ids(state) == [1, 3, 7]
    # the model still evaluates on the user's file, which lists the dropped category
    capsys.readouterr()
    gt = data / "valid" / "_annotations.coco.json"
    dets = tmp_path / "dets.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run / "model.pt"), "--data", str(gt),
                 "--save-detections", str(dets), *CPU]) == 0
    assert {r["category_id"] for r in json.loads(dets.read_text())} <= {1, 3, 7}


def test_the_input_size_is_logged(caplog):
    from huale.cli.train import log_input_size
    from huale.data.records import DetectionDataset, ImageRecord
    from huale.models.detector import build_detector

    model = build_detector("small", 2)
    big = DetectionDataset([ImageRecord(str(i), Path(f"{i}.jpg"), 2048, 1536) for i in range(3)],
                           ["a", "b"])
    with caplog.at_level(logging.INFO, logger="huale"):
        log_input_size(model, big)
    assert "small resizes 2048x1536 images (median) to 192x144 (x0.09" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING and "--min-size" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="huale"):
        log_input_size(build_detector("small", 2, min_size=256, max_size=256),
                       DetectionDataset([ImageRecord("0", Path("0.jpg"), 256, 256)], ["a", "b"]))
    assert "x1.00" in caplog.text and caplog.records[-1].levelno == logging.INFO


def test_help_describes_every_option_without_confusing_defaults():
    from huale.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("train", "evaluate", "select"):
        sub = commands[name]
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no description"
        text = " ".join(sub.format_help().split())
        assert "(default: True)" not in text and "(default: False)" not in text
        assert "(default: None)" not in text
    train_help = " ".join(commands["train"].format_help().split())
    assert train_help.count("no evaluation") == 1 and "no evaluation) (default" not in train_help
    assert "small 192/192" in train_help  # the small detector's input size is shown


def test_skipped_pool_images_are_counted_at_the_end(tmp_path, capsys):
    from tests.workspaces import write_select_workspace

    write_select_workspace(tmp_path)
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image at all")
    png = (tmp_path / "images" / "img5.png").read_bytes()
    (tmp_path / "images" / "truncated.png").write_bytes(png[: len(png) // 2])
    out = tmp_path / "out"
    assert main(["-q", "select", "--checkpoint", str(tmp_path / "model.pt"), "--pool",
                 str(tmp_path / "images"), "--budget", "2", "--out", str(out), *CPU]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("skipped 2 unreadable pool images")
    report = json.loads((out / SELECTION_JSON).read_text())
    assert sorted(Path(s["path"]).name for s in report["skipped_files"]) == [
        "broken.png", "truncated.png"
    ]


@pytest.mark.parametrize("strategy", ["cald", "coreset"])
def test_selection_json_explains_cald_and_coreset_picks_by_objects(strategy, tmp_path):
    from tests.workspaces import write_select_workspace

    args = write_select_workspace(tmp_path)
    out = tmp_path / "out"
    assert main(["-q", *args, "--out", str(out), "--strategy", strategy]) == 0
    report = json.loads((out / SELECTION_JSON).read_text())
    explained = [s for s in report["selected"] if s["objects"]]
    assert explained, "at least one pick is explained by its objects"
    for entry in explained:
        for obj in entry["objects"]:
            assert len(obj["box"]) == 4 and obj["class_name"] in ("red", "green")
            assert obj["levels"]
