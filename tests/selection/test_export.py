"""Export writers of ``huale select``: Label Studio coordinates, CSV/JSON details."""

import json
from pathlib import Path

import numpy as np

from huale.data.records import ImageRecord
from huale.predictions import Detections
from huale.selection.export import (
    RankedImage,
    image_location,
    label_studio_tasks,
    to_json,
    write_selection_csv,
    write_selection_json,
)
from huale.strategies.base import ImageScore, ObjectExplanation


def _detections(boxes, labels, scores):
    k = len(labels)
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64),
        np.asarray(scores, np.float32), np.zeros((k, 3), np.float32), np.zeros(k, np.float32),
        np.zeros(k, np.int64),
    )


def _item(rank, image_id, score, dets, selected=True, width=64, height=32):
    record = ImageRecord(image_id, Path("/data/pool/sub dir") / image_id, width, height)
    return RankedImage(
        rank, selected, ImageScore(image_id, score, stage="stage2"), record, len(dets), dets
    )


def test_label_studio_box_in_percent_hand_computed():
    # 64x32 image, box [16, 8, 48, 32]: x = 16/64 = 25 %, y = 8/32 = 25 %,
    # width = (48-16)/64 = 50 %, height = (32-8)/32 = 75 %
    dets = _detections([[16, 8, 48, 32], [0, 0, 64, 32]], [2, 1], [0.75, 0.25])
    tasks = label_studio_tasks(
        [_item(1, "a.jpg", 3.0, dets)], ["cat", "dog"], image_root=Path("/data/pool"),
        url_prefix=None, model_version="huale-round-001", extra_data={"huale_round": 1},
    )
    assert len(tasks) == 1
    task = tasks[0]
    assert task["data"] == {
        "image": "/data/pool/sub dir/a.jpg", "huale_id": "a.jpg", "huale_rank": 1,
        "huale_score": 3.0, "huale_stage": "stage2", "huale_round": 1,
    }
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "huale-round-001"
    assert prediction["score"] == 0.0  # rank 1 of 1: first in Label Studio's ascending order
    first = prediction["result"][0]
    assert first["type"] == "rectanglelabels"
    assert (first["from_name"], first["to_name"]) == ("label", "image")
    assert (first["original_width"], first["original_height"]) == (64, 32)
    assert first["value"] == {
        "x": 25.0, "y": 25.0, "width": 50.0, "height": 75.0, "rotation": 0,
        "rectanglelabels": ["dog"],
    }
    assert first["score"] == 0.75
    assert prediction["result"][1]["value"]["width"] == 100.0


def test_label_studio_url_prefix_and_unselected_images():
    empty = _detections([], [], [])
    tasks = label_studio_tasks(
        [_item(1, "a.jpg", float("-inf"), empty), _item(2, "b.jpg", 1.0, empty, selected=False)],
        ["cat"], image_root=Path("/data/pool"), url_prefix="/data/local-files/?d=pool/",
    )
    assert len(tasks) == 1
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=pool/sub%20dir/a.jpg"
    assert tasks[0]["data"]["huale_score"] is None
    assert tasks[0]["predictions"][0]["score"] == 0.0  # no detection, still a score
    assert tasks[0]["predictions"][0]["result"] == []
    outside = image_location(Path("/elsewhere/x.png"), Path("/data/pool"), "http://h/")
    assert outside == "http://h/elsewhere/x.png"


def test_csv_and_json_write_non_finite_scores_as_empty_and_null(tmp_path):
    dets = _detections([[1, 2, 3, 4]], [1], [0.9])
    best = _item(1, "a.jpg", 2.5, dets)
    best.score.objects = [
        ObjectExplanation([1, 2, 3, 4], 1, "cat", 0.2, {"scale": {"P3": np.float32(0.2)}}),
        ObjectExplanation([5, 6, 7, 8], 1, "cat", 0.7),
    ]
    ranked = [best, _item(2, "b.jpg", float("-inf"), dets, selected=False)]
    csv_text = write_selection_csv(tmp_path / "s.csv", ranked).read_text()
    assert csv_text.splitlines() == [
        "rank,selected,image_id,path,score,stage,predicted_boxes",
        "1,1,a.jpg,/data/pool/sub dir/a.jpg,2.5,stage2,1",
        "2,0,b.jpg,/data/pool/sub dir/b.jpg,,stage2,1",
    ]
    content = json.loads(write_selection_json(tmp_path / "s.json", ranked, {"k": 1}).read_text())
    assert content["k"] == 1
    assert [o["uncertainty"] for o in content["selected"][0]["objects"]] == [0.7, 0.2]  # most first
    levels = content["selected"][0]["objects"][1]["levels"]
    assert levels == {"scale": {"P3": np.float32(0.2).item()}}
    assert content["ranking"][1] == {
        "rank": 2, "image_id": "b.jpg", "score": None, "stage": "stage2", "selected": False,
    }


def test_to_json_converts_numpy_and_non_finite():
    value = {"a": np.arange(2), "b": np.float64("nan"), "c": (np.int32(3), np.bool_(True))}
    assert to_json(value) == {"a": [0, 1], "b": None, "c": [3, True]}


def test_label_studio_prediction_score_ascends_with_rank_and_default_is_local_files():
    # Label Studio labels the lowest prediction score first: rank 1 -> 0, rank 2 -> 1/3, ...
    empty = _detections([], [], [])
    dets = _detections([[0, 0, 8, 8]], [1], [0.99])  # a confident box must not move the order
    ranked = [_item(3, "c.jpg", 1.0, dets), _item(1, "a.jpg", 9.0, empty),
              _item(2, "b.jpg", 5.0, dets), _item(4, "d.jpg", 0.5, empty, selected=False),
              _item(5, "e.jpg", 0.1, dets)]
    tasks = label_studio_tasks(ranked, ["cat"], image_root=Path("/data/pool"))
    assert [t["data"]["huale_rank"] for t in tasks] == [1, 2, 3, 5]
    scores = [t["predictions"][0]["score"] for t in tasks]
    assert scores == [0.0, 0.25, 0.5, 0.75]
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=sub%20dir/a.jpg"
    assert all(" " not in t["predictions"][0]["model_version"] for t in tasks)
