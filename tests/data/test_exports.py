"""Real exporters' layouts (tests/exports.py): ids come back as the user's files give them."""

import json

import numpy as np
import pytest

from huale.data.coco import dataset_to_coco, predictions_to_coco_results, read_coco
from huale.data.loading import load_dataset
from huale.data.yolo import read_yolo
from huale.errors import DataError
from huale.evaluation import evaluate_files
from tests.exports import ROBOFLOW_CATEGORIES, YOLO_NAMES, write_roboflow_coco, write_roboflow_yolo


@pytest.fixture
def roboflow_coco(tmp_path):
    return write_roboflow_coco(tmp_path / "rf-coco")


@pytest.fixture
def roboflow_yolo(tmp_path):
    return write_roboflow_yolo(tmp_path / "rf-yolo")


def _perfect_detections(dataset):
    """The ground truth as detections (score 1), in the format of ``predictions_to_coco_results``."""
    return [
        {"boxes": r.boxes, "labels": r.labels, "scores": np.ones(len(r.labels))}
        for r in dataset.records
    ]


def test_coco_zero_based_ids_with_gaps_and_an_unused_category(roboflow_coco):
    gt_file = roboflow_coco / "train" / "_annotations.coco.json"
    original = json.loads(gt_file.read_text())
    dataset = read_coco(gt_file)
    # every category is a class (the unused supercategory too), with its own id
    assert dataset.class_names == ["cells", "Platelets", "RBC", "WBC"]
    assert dataset.category_ids == [0, 1, 3, 7]
    assert dataset.class_counts().tolist()[0] == 0
    # image ids start at 0 and stay
    assert dataset.ids == [str(image["id"]) for image in original["images"]]

    written = dataset_to_coco(dataset)
    assert [(c["id"], c["name"]) for c in written["categories"]] == [
        (c["id"], c["name"]) for c in ROBOFLOW_CATEGORIES
    ]
    assert [(a["image_id"], a["category_id"]) for a in written["annotations"]] == [
        (a["image_id"], a["category_id"]) for a in original["annotations"]
    ]
    results = predictions_to_coco_results(dataset, _perfect_detections(dataset))
    assert {r["category_id"] for r in results} == {a["category_id"] for a in original["annotations"]}
    assert {r["image_id"] for r in results} <= {image["id"] for image in original["images"]}


def test_detections_evaluate_against_the_users_own_file(roboflow_coco, tmp_path):
    # before the ids were kept, results came back as 1..C: category 4 unknown to the file, and
    # every other class's AP credited to its neighbour
    gt_file = roboflow_coco / "train" / "_annotations.coco.json"
    dataset = read_coco(gt_file)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(predictions_to_coco_results(dataset, _perfect_detections(dataset))))
    for metric in ("coco", "voc"):
        result = evaluate_files(gt_file, dets, metric=metric)
        evaluated = {name: ap for name, ap in result["per_class"].items() if ap is not None}
        assert set(evaluated) == {"Platelets", "RBC", "WBC"}
        assert all(ap == pytest.approx(1.0) for ap in evaluated.values())


def test_coco_read_with_another_label_order_keeps_ids(roboflow_coco):
    gt_file = roboflow_coco / "valid" / "_annotations.coco.json"
    dataset = read_coco(gt_file, class_names=["WBC", "RBC", "Platelets", "cells", "new"],
                        fallback_ids={"new": 12})
    assert dataset.category_ids == [7, 3, 1, 0, 12]
    # a category without boxes may be left out of the classes; one with boxes may not
    assert read_coco(gt_file, class_names=["Platelets", "RBC", "WBC"]).category_ids == [1, 3, 7]
    with pytest.raises(DataError, match="'RBC' is not in class_names"):
        read_coco(gt_file, class_names=["Platelets", "WBC", "cells"])


def test_dropping_a_class_keeps_the_other_ids(roboflow_coco):
    dataset = read_coco(roboflow_coco / "train" / "_annotations.coco.json")
    dropped = dataset.without_classes(["cells"])
    assert dropped.class_names == ["Platelets", "RBC", "WBC"] and dropped.category_ids == [1, 3, 7]
    assert dropped.class_counts().tolist() == dataset.class_counts().tolist()[1:]
    assert [a["category_id"] for a in dataset_to_coco(dropped)["annotations"]] == [
        a["category_id"] for a in dataset_to_coco(dataset)["annotations"]
    ]


def test_roboflow_yolo_yaml_is_read_like_ultralytics(roboflow_yolo):
    # train: ../train/images next to the yaml: Ultralytics drops the "../" when only that exists
    train = load_dataset(roboflow_yolo, "train")
    assert len(train) == 8 and train.class_names == YOLO_NAMES
    assert train.category_ids == [0, 1, 2]  # the YOLO class indices
    assert all(r.path.parent == roboflow_yolo.parent / "train" / "images" for r in train.records)
    assert len(load_dataset(roboflow_yolo.parent, "val")) == 3
    # no test entry: an error that says which splits exist; val is read only when asked for
    with pytest.raises(DataError, match=r"no 'test' entry \(entries: train, val\).*split 'val'"):
        load_dataset(roboflow_yolo, "test")
    results = predictions_to_coco_results(train, _perfect_detections(train))
    assert {r["category_id"] for r in results} <= {0, 1, 2}


def test_yolo_path_entry_and_dot_dot_entries(roboflow_yolo, tmp_path, monkeypatch):
    root = roboflow_yolo.parent
    # "../" that does exist is taken as written (the yaml one level down)
    nested = root / "configs" / "data.yaml"
    nested.parent.mkdir()
    nested.write_text("train: ../train/images\nval: ../valid/images\nnames: [Platelets, RBC, WBC]\n")
    assert len(read_yolo(nested, "train")) == 8
    # path: relative to the yaml's folder, then the current folder
    (root / "with_path.yaml").write_text(
        "path: .\ntrain: train/images\nval: valid/images\nnames: [Platelets, RBC, WBC]\n"
    )
    assert len(read_yolo(root / "with_path.yaml", "val")) == 3
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.yaml").write_text(
        "path: rf-yolo\ntrain: train/images\nnames: [Platelets, RBC, WBC]\n"
    )
    monkeypatch.chdir(tmp_path)
    assert len(read_yolo(elsewhere / "data.yaml", "train")) == 8
    (elsewhere / "bad.yaml").write_text("train: ../nowhere/images\nnames: [a]\n")
    with pytest.raises(DataError, match="split entry '../nowhere/images' .* not found"):
        read_yolo(elsewhere / "bad.yaml", "train")
