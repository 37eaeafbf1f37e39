"""The project's labeled set keeps the user's ids; put() adds, replaces, or leaves unchanged."""

import json

import numpy as np

from huale.project.labeled import ADDED, REPLACED, UNCHANGED, LabeledSet
from huale.project.state import Project


def test_init_keeps_user_category_and_image_ids(project, workspace):
    user = json.loads((workspace / "lab" / "labeled.json").read_text())
    stored = json.loads(project.labeled_path.read_text())
    assert stored["categories"] == user["categories"]
    assert [im["id"] for im in stored["images"]] == [101, 102, 103, 104]
    assert stored["annotations"] == user["annotations"]
    first = stored["images"][0]
    assert first["file_name"] == str((workspace / "lab" / "img0.png").resolve())
    assert first["huale"] == {"round": 0, "source": "initial", "file_name": "img0.png"}
    assert project.class_names == ["red", "green"]  # category id order (7, 9)
    reopened = Project.open(project.root)
    assert reopened.categories == [{"id": 7, "name": "red"}, {"id": 9, "name": "green"}]
    dataset = project.labeled().dataset(project.class_names)
    assert dataset.ids == ["101", "102", "103", "104"] and len(dataset) == 4


def test_put_adds_with_the_next_ids_then_replaces_or_leaves_unchanged(project, workspace):
    labeled = project.labeled()
    path = workspace / "pool" / "img0.png"
    boxes = np.array([[1.5, 2.0, 10.25, 20.0]])
    assert labeled.put(path, 64, 64, boxes, ["green"], {"round": 1}) == ADDED
    image = labeled.image_at(path)
    assert image["id"] == 105 and image["huale"] == {"round": 1}
    (annotation,) = labeled.annotations_of(105)
    assert annotation["category_id"] == 9 and annotation["bbox"] == [1.5, 2.0, 8.75, 18.0]
    assert annotation["id"] == max(a["id"] for a in labeled.coco["annotations"])
    assert labeled.put(path, 64, 64, boxes, ["green"], {"round": 9}) == UNCHANGED
    assert labeled.image_at(path)["huale"] == {"round": 1}  # unchanged: meta not touched
    assert labeled.put(path, 64, 64, boxes + 1, ["red"], {"round": 2}) == REPLACED
    assert labeled.image_at(path)["id"] == 105
    assert [a["category_id"] for a in labeled.annotations_of(105)] == [7]
    labeled.save()
    assert len(LabeledSet.load(project.labeled_path)) == 5
