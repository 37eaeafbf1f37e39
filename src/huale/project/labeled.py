"""The project's labeled set: huale's own COCO copy (``PROJECT/labeled.json``).

It keeps the user's category ids and names and the user's image ids: ``huale init`` copies the
given COCO file's ``categories``, ``images`` and ``annotations`` as they are (other formats go
through :func:`huale.data.coco.dataset_to_coco`), and images labeled later get new ids above the
largest one. Every ``file_name`` is rewritten to the image's absolute path, so the file is
readable from anywhere (:func:`huale.data.coco.read_coco`); the user's ``file_name`` is kept in the
image's ``huale`` field together with where the labels came from::

    "huale": {"round": 0, "source": "initial", "file_name": "img/001.jpg"}
    "huale": {"round": 2, "source": "label-studio", "export": "/abs/export.json",
              "updated_at": "2026-12-01T03:04:05Z", "pool_id": "a/b.jpg"}

Class names are the category names sorted by category id (label ``k`` = the ``k``-th of them),
the order :func:`~huale.data.coco.read_coco` uses.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from huale.data.coco import dataset_to_coco
from huale.data.loading import detect_format, load_dataset
from huale.data.records import DetectionDataset
from huale.errors import DataError
from huale.io import atomic_write_json

ADDED, REPLACED, UNCHANGED = "added", "replaced", "unchanged"


class LabeledSet:
    """A COCO dict with the operations ingestion needs; ``path``: where it is stored."""

    def __init__(self, coco: dict, path: str | Path | None = None):
        self.coco = coco
        self.path = Path(path) if path is not None else None
        self._by_path = {str(Path(im["file_name"])): im for im in coco["images"]}

    # ------------------------------------------------------------------ building and storing
    @classmethod
    def from_annotations(cls, source: str | Path, *, split: str = "train") -> LabeledSet:
        """The user's labeled set at ``source`` (COCO JSON, VOC, YOLO: anything huale reads)."""
        source = Path(source)
        dataset = load_dataset(source, split)
        if detect_format(source, split) == "coco" and source.is_file():
            coco = _copy_user_coco(source, dataset)
        else:
            coco = dataset_to_coco(_resolved(dataset), info={"description": f"huale: from {source}"})
            for image in coco["images"]:
                image.pop("huale_id", None)
                image["huale"] = {"round": 0, "source": "initial", "file_name": image["file_name"]}
        return cls(coco)

    @classmethod
    def load(cls, path: str | Path) -> LabeledSet:
        path = Path(path)
        try:
            coco = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(path, f"cannot read the project's labeled set ({exc})") from None
        return cls(coco, path)

    def save(self, path: str | Path | None = None) -> Path:
        """Write atomically to ``path`` (default: where it was loaded from)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to save the labeled set to")
        atomic_write_json(target, self.coco)
        self.path = target
        return target

    def dataset(self, class_names: Sequence[str] | None = None) -> DetectionDataset:
        """The set as a :class:`DetectionDataset` (read from its stored file)."""
        if self.path is None:
            raise ValueError("save the labeled set before reading it as a dataset")
        from huale.data.coco import read_coco

        return read_coco(self.path, class_names=class_names)

    # ------------------------------------------------------------------ facts
    @property
    def categories(self) -> list[dict]:
        return sorted(self.coco["categories"], key=lambda c: c["id"])

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.categories]

    @property
    def images(self) -> list[dict]:
        return self.coco["images"]

    def __len__(self) -> int:
        return len(self.coco["images"])

    def num_boxes(self) -> int:
        return len(self.coco["annotations"])

    def image_at(self, path: str | Path) -> dict | None:
        """The image entry of the file at ``path`` (absolute, resolved), or None."""
        return self._by_path.get(str(Path(path).resolve()))

    def paths(self) -> list[Path]:
        return [Path(im["file_name"]) for im in self.images]

    def annotations_of(self, image_id) -> list[dict]:
        return [a for a in self.coco["annotations"] if a["image_id"] == image_id]

    # ------------------------------------------------------------------ changing
    def put(self, path: str | Path, width: int, height: int, boxes: np.ndarray,
            labels: Sequence[str], meta: dict) -> str:
        """Set the labels of the image at ``path`` (xyxy pixel ``boxes``, class names ``labels``).

        Returns ADDED (new image, next free image id), REPLACED (its boxes changed; the entry keeps
        its id) or UNCHANGED (same boxes and classes: nothing is modified, ``meta`` included).
        """
        path = Path(path).resolve()
        category_of = {c["name"]: c["id"] for c in self.coco["categories"]}
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        new = [
            (category_of[name], [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])])
            for b, name in zip(boxes, labels, strict=True)
        ]
        image = self._by_path.get(str(path))
        if image is not None:
            old = [(a["category_id"], a["bbox"]) for a in self.annotations_of(image["id"])]
            if _same_objects(old, new):
                return UNCHANGED
            self.coco["annotations"] = [a for a in self.coco["annotations"] if a["image_id"] != image["id"]]
            image["huale"] = dict(meta)
            status = REPLACED
        else:
            image = {"id": self._next_image_id(), "file_name": str(path), "width": int(width),
                     "height": int(height), "huale": dict(meta)}
            self.coco["images"].append(image)
            self._by_path[str(path)] = image
            status = ADDED
        next_id = self._next_annotation_id()
        for k, (category_id, bbox) in enumerate(new):
            self.coco["annotations"].append({
                "id": next_id + k, "image_id": image["id"], "category_id": category_id,
                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0, "segmentation": [],
            })
        return status

    def _next_image_id(self) -> int:
        ints = [im["id"] for im in self.images if isinstance(im["id"], int)]
        return max(ints, default=0) + 1

    def _next_annotation_id(self) -> int:
        ints = [a["id"] for a in self.coco["annotations"] if isinstance(a.get("id"), int)]
        return max(ints, default=0) + 1

    def copy(self) -> LabeledSet:
        return LabeledSet(copy.deepcopy(self.coco), self.path)


def _same_objects(old: list, new: list, tol: float = 1e-6) -> bool:
    if len(old) != len(new):
        return False
    key = lambda o: (o[0], *(round(v, 4) for v in o[1]))  # noqa: E731
    for (c1, b1), (c2, b2) in zip(sorted(old, key=key), sorted(new, key=key), strict=True):
        if c1 != c2 or any(abs(float(u) - float(v)) > tol for u, v in zip(b1, b2, strict=True)):
            return False
    return True


def _copy_user_coco(source: Path, dataset: DetectionDataset) -> dict:
    """The user's COCO dict as it is, ``file_name`` made absolute (original kept in ``huale``)."""
    raw = json.loads(source.read_text(encoding="utf-8"))
    path_of = {r.image_id: Path(r.path).resolve() for r in dataset.records}
    images = []
    for entry in raw["images"]:
        key = entry.get("huale_id", str(entry["id"]))
        entry = dict(entry)
        entry["huale"] = {"round": 0, "source": "initial", "file_name": entry["file_name"]}
        entry["file_name"] = str(path_of[key])
        images.append(entry)
    return {
        "info": raw.get("info", {"description": f"huale: from {source}"}),
        "licenses": raw.get("licenses", []),
        "images": images,
        "annotations": raw["annotations"],
        "categories": raw["categories"],
    }


def _resolved(dataset: DetectionDataset) -> DetectionDataset:
    return DetectionDataset([r.with_path(r.path.resolve()) for r in dataset.records],
                            dataset.class_names)
