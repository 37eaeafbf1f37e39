"""A tiny project on disk: pool, user-labeled COCO (non-contiguous user ids), validation set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from huale.data.coco import dataset_to_coco
from huale.io import atomic_write_json
from huale.project.state import ROUND_RECORD, Project
from huale.selection.export import image_location
from tests.conftest import make_tiny_dataset

USER_CATEGORIES = [{"id": 7, "name": "red"}, {"id": 9, "name": "green"}]


def write_user_coco(dataset, path: Path) -> dict:
    """The dataset as a user's COCO: category ids 7/9, image ids 101, 102, ..."""
    coco = dataset_to_coco(dataset, image_root=path.parent)
    id_map = {im["id"]: 101 + k for k, im in enumerate(coco["images"])}
    for im in coco["images"]:
        im["id"] = id_map[im["id"]]
        im.pop("huale_id")
    for a in coco["annotations"]:
        a["image_id"] = id_map[a["image_id"]]
        a["category_id"] = {1: 7, 2: 9}[a["category_id"]]
    coco["categories"] = USER_CATEGORIES
    path.write_text(json.dumps(coco))
    return coco


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    make_tiny_dataset(tmp_path / "pool", num_images=10, seed=1)
    write_user_coco(make_tiny_dataset(tmp_path / "lab", num_images=4, seed=2), tmp_path / "lab" / "labeled.json")
    val = make_tiny_dataset(tmp_path / "val", num_images=4, seed=3)
    atomic_write_json(tmp_path / "val" / "val.json", dataset_to_coco(val, image_root=tmp_path / "val"))
    return tmp_path


@pytest.fixture
def project(workspace: Path) -> Project:
    return Project.create(workspace / "proj", pool=workspace / "pool",
                          labeled=workspace / "lab" / "labeled.json", val=workspace / "val" / "val.json")


def fake_round(project: Project, number: int, names: list[str]) -> dict:
    """A finished round that sent pool images ``names`` (no training): what ingest matches."""
    selected = []
    for rank, name in enumerate(names, start=1):
        path = (project.pool / name).resolve()
        selected.append({
            "image_id": name, "rank": rank, "score": 1.0 / rank, "stage": "ranked",
            "path": str(path), "file_name": name, "width": 64, "height": 64,
            "url": image_location(path, project.document_root, project.config.image_url_prefix),
            "predicted_boxes": 0, "objects": [],
        })
    record = {"round": number, "options": {"strategy": "random"}, "labeled_images": 4,
              "labeled_boxes": 7, "val": None, "pool_images": 10, "selected": selected}
    atomic_write_json(project.round_dir(number) / ROUND_RECORD, record)
    return record
