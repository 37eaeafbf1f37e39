"""COCO JSON: read a dataset, write one, and convert detections to / from COCO results.

Reading: categories sorted by id become labels 1..C; the dataset keeps each one's id
(``category_ids``), so writing (:func:`dataset_to_coco`, :func:`predictions_to_coco_results`)
gives back the file's own category ids, whatever they are (0-based, with gaps). A category
without any box is kept as a class (it is in the file; ``huale train`` warns about it). ``bbox`` is ``[x, y, w, h]`` in pixels and
becomes xyxy. An annotation with ``"iscrowd": 1``, ``"difficult": 1`` or ``"ignore": 1`` is kept
as *difficult*: like VOC's difficult objects, crowd regions are neither counted as misses nor as
false positives by huale's evaluation. The image id string is the entry's ``"huale_id"`` when
present (huale writes it so that non-numeric ids survive a round trip), else ``str(id)``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from huale.data.images import image_size
from huale.data.records import (
    DetectionDataset,
    ImageRecord,
    LoadReport,
    assign_category_ids,
    sanitize_boxes,
)
from huale.errors import ConfigError, DataError
from huale.io import atomic_write_json

__all__ = [
    "coco_image_ids",
    "dataset_to_coco",
    "predictions_to_coco_results",
    "read_coco",
    "read_coco_results",
    "write_coco",
]

_SIZE_FROM_IMAGE = "image sizes read from the image file (no width/height in the JSON)"


def read_coco(
    annotation_file: str | Path,
    image_root: str | Path | None = None,
    *,
    class_names: Sequence[str] | None = None,
    fallback_ids: Mapping[str, int] | None = None,
) -> DetectionDataset:
    """Read a COCO detection JSON; image paths are ``image_root / file_name``.

    ``image_root`` defaults to the JSON's folder, then ``<JSON folder>/images`` for files not
    found there. ``class_names`` maps categories by name onto the given label order (a category
    not in it is a :class:`DataError` if it has boxes, and is left out if it has none); by
    default the categories' own names, sorted by id. ``category_ids`` of the dataset are the
    file's ids of its classes; a class of ``class_names`` the file does not list gets
    ``fallback_ids[name]`` if given, else an id above the file's. Images without annotations are
    kept with empty targets.
    """
    json_file = Path(annotation_file)
    data = _load_json(json_file)
    if not isinstance(data, dict):
        raise DataError(json_file, "top level is not a JSON object")
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise DataError(json_file, f"missing top-level key(s): {', '.join(missing)}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(json_file, f"{key!r} is not a list")

    category_names = _read_categories(json_file, data["categories"])
    if class_names is None:
        class_names = list(category_names.values())
    class_names = list(class_names)
    label_of_name = {name: i + 1 for i, name in enumerate(class_names)}
    if len(label_of_name) != len(class_names):
        raise ConfigError(f"class_names has duplicates: {class_names}")
    # ids the annotations use (a malformed id, e.g. a list, is reported by _read_annotations)
    used = {
        a.get("category_id") for a in data["annotations"]
        if isinstance(a, dict) and isinstance(a.get("category_id"), int)
    }
    label_of_category = {}
    for category_id, name in category_names.items():
        if name in label_of_name:
            label_of_category[category_id] = label_of_name[name]
        elif category_id in used:
            raise DataError(json_file, f"category {name!r} is not in class_names {class_names}")
    category_ids = assign_category_ids(
        class_names, {name: i for i, name in category_names.items()}, fallback_ids
    )

    report = LoadReport(source=str(json_file))
    roots = [Path(image_root)] if image_root is not None else [json_file.parent]
    if image_root is None:
        roots.append(json_file.parent / "images")
    images = _read_images(json_file, data["images"], roots, report)
    objects = _read_annotations(json_file, data["annotations"], images, label_of_category)

    records = []
    for coco_id, (image_id, path, width, height) in images.items():
        boxes, labels, difficult = objects.get(coco_id, ([], [], []))
        xyxy = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        xyxy[:, 2:] += xyxy[:, :2]
        xyxy, labels_array, difficult_array = sanitize_boxes(
            xyxy,
            width,
            height,
            report,
            np.array(labels, dtype=np.int64),
            np.array(difficult, dtype=bool),
        )
        records.append(
            ImageRecord(image_id, path, width, height, xyxy, labels_array, difficult_array)
        )
    report.images = len(records)
    report.boxes = sum(r.num_boxes for r in records)
    report.log()
    return DetectionDataset(records, class_names, category_ids=category_ids, report=report)


def coco_image_ids(dataset: DetectionDataset) -> dict[str, int]:
    """COCO integer id of every image id: ``int(image_id)`` when all ids are distinct decimal
    integers, else 1..N in dataset order. :func:`dataset_to_coco` uses the same mapping."""
    ids = dataset.ids
    if all(i.isascii() and i.isdecimal() for i in ids) and len({int(i) for i in ids}) == len(ids):
        return {i: int(i) for i in ids}
    return {image_id: n for n, image_id in enumerate(ids, start=1)}


def dataset_to_coco(
    dataset: DetectionDataset,
    *,
    image_root: str | Path | None = None,
    info: Mapping[str, Any] | None = None,
) -> dict:
    """The dataset as a COCO dict (``info``, ``images``, ``annotations``, ``categories``).

    ``file_name`` is relative to ``image_root`` when given, else the path as stored. Each image
    keeps its huale id as ``"huale_id"``; each annotation has ``"difficult"`` 0/1 and
    ``"iscrowd"`` 0. Category ids are the dataset's ``category_ids`` (the ids of the file it was
    read from; 1..C for formats without ids).
    """
    coco_ids = coco_image_ids(dataset)
    images, annotations = [], []
    for record in dataset.records:
        if image_root is not None:
            file_name = Path(os.path.relpath(record.path, image_root)).as_posix()
        else:
            file_name = record.path.as_posix()
        coco_id = coco_ids[record.image_id]
        images.append(
            {
                "id": coco_id,
                "file_name": file_name,
                "width": int(record.width),
                "height": int(record.height),
                "huale_id": record.image_id,
            }
        )
        boxes = record.boxes.astype(np.float64)
        for box, label, difficult in zip(boxes, record.labels, record.difficult, strict=True):
            width, height = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": coco_id,
                    "category_id": dataset.category_id(label),
                    "bbox": [float(box[0]), float(box[1]), width, height],
                    "area": width * height,
                    "iscrowd": 0,
                    "difficult": int(bool(difficult)),
                }
            )
    categories = [
        {"id": category_id, "name": name, "supercategory": "object"}
        for category_id, name in zip(dataset.category_ids, dataset.class_names, strict=True)
    ]
    return {
        "info": dict(info) if info is not None else {"description": "written by huale"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write_coco(
    dataset: DetectionDataset,
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`dataset_to_coco` to ``path`` atomically. Returns the path."""
    return atomic_write_json(path, dataset_to_coco(dataset, image_root=image_root, info=info))


def predictions_to_coco_results(
    dataset: DetectionDataset, predictions: Sequence[Mapping[str, Any]]
) -> list[dict]:
    """Detections as COCO results ``{"image_id", "category_id", "bbox" (xywh), "score"}``.

    ``predictions[i]`` belongs to ``dataset.records[i]`` and holds ``boxes`` (K, 4) xyxy,
    ``labels`` (K,) in 1..C and ``scores`` (K,), as tensors or arrays. Image ids follow
    :func:`coco_image_ids`; category ids are the dataset's ``category_ids`` (the user's ids).
    """
    if len(predictions) != len(dataset):
        raise ValueError(f"{len(predictions)} predictions for a dataset of {len(dataset)} images")
    coco_ids = coco_image_ids(dataset)
    results = []
    for record, prediction in zip(dataset.records, predictions, strict=True):
        boxes = _as_numpy(prediction["boxes"], np.float64)
        labels = _as_numpy(prediction["labels"], np.int64)
        scores = _as_numpy(prediction["scores"], np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"image {record.image_id!r}: boxes must be (K, 4), got {boxes.shape}")
        if labels.shape != (len(boxes),) or scores.shape != (len(boxes),):
            raise ValueError(
                f"image {record.image_id!r}: boxes {boxes.shape}, labels {labels.shape} and "
                f"scores {scores.shape} do not align"
            )
        if len(labels) and (labels.min() < 1 or labels.max() > dataset.num_classes):
            raise ValueError(
                f"image {record.image_id!r}: labels must be in 1..{dataset.num_classes}"
            )
        coco_id = coco_ids[record.image_id]
        for box, label, score in zip(boxes, labels, scores, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": coco_id,
                    "category_id": dataset.category_id(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return results


def read_coco_results(path: str | Path) -> list[dict]:
    """Read a COCO results JSON: a list of ``{"image_id", "category_id", "bbox", "score"}``.

    Returns those four keys per entry (ids as int, bbox as 4 floats, score as float); anything
    else malformed is a :class:`DataError` naming the file and the entry.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(path, "COCO results must be a JSON list of detections")
    results = []
    for k, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise DataError(path, f"result {k} is not an object")
        missing = [key for key in ("image_id", "category_id", "bbox", "score") if key not in entry]
        if missing:
            raise DataError(path, f"result {k} has no {', '.join(missing)}")
        for key in ("image_id", "category_id"):
            if not _is_int(entry[key]):
                raise DataError(path, f"result {k}: {key} must be an integer, got {entry[key]!r}")
        bbox = entry["bbox"]
        if not _is_four_numbers(bbox):
            raise DataError(path, f"result {k}: bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
        if not _is_number(entry["score"]):
            raise DataError(path, f"result {k}: score must be a number, got {entry['score']!r}")
        results.append(
            {
                "image_id": int(entry["image_id"]),
                "category_id": int(entry["category_id"]),
                "bbox": [float(v) for v in bbox],
                "score": float(entry["score"]),
            }
        )
    return results


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(path, "JSON file not found")
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"invalid JSON ({exc})") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer beyond the float range
        return False


def _is_four_numbers(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)


def _as_numpy(values: Any, dtype: type) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def _read_categories(json_file: Path, categories: list) -> dict[int, str]:
    """``{category id: name}`` sorted by id."""
    names: dict[int, str] = {}
    for k, category in enumerate(categories):
        if not isinstance(category, dict) or not _is_int(category.get("id")):
            raise DataError(json_file, f"categories[{k}] has no integer 'id'")
        name = category.get("name")
        if not isinstance(name, str) or not name:
            raise DataError(json_file, f"category id {category['id']} has no 'name'")
        if category["id"] in names:
            raise DataError(json_file, f"duplicate category id {category['id']}")
        names[category["id"]] = name
    if len(set(names.values())) != len(names):
        raise DataError(json_file, "two categories share a name")
    return dict(sorted(names.items()))


def _read_images(
    json_file: Path, images: list, roots: list[Path], report: LoadReport
) -> dict[Any, tuple[str, Path, int, int]]:
    """``{coco id: (image id string, path, width, height)}`` in file order."""
    out: dict[Any, tuple[str, Path, int, int]] = {}
    seen_ids: set[str] = set()
    for k, entry in enumerate(images):
        if not isinstance(entry, dict):
            raise DataError(json_file, f"images[{k}] is not an object")
        coco_id = entry.get("id")
        if not (_is_int(coco_id) or isinstance(coco_id, str)):
            raise DataError(json_file, f"images[{k}] has no integer or string 'id'")
        if coco_id in out:
            raise DataError(json_file, f"duplicate image id {coco_id!r}")
        file_name = entry.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise DataError(json_file, f"image id {coco_id!r} has no 'file_name'")
        image_id = entry.get("huale_id", str(coco_id))
        if not isinstance(image_id, str) or not image_id:
            raise DataError(json_file, f"image id {coco_id!r}: 'huale_id' is not a string")
        if image_id in seen_ids:
            raise DataError(json_file, f"duplicate image id {image_id!r}")
        seen_ids.add(image_id)
        path = _resolve_image(json_file, file_name, roots)
        if "width" in entry and "height" in entry:
            width, height = entry["width"], entry["height"]
            if not (_is_number(width) and _is_number(height) and width > 0 and height > 0):
                raise DataError(
                    json_file, f"image id {coco_id!r}: width/height must be positive numbers"
                )
            width, height = round(width), round(height)
        else:
            width, height = image_size(path)
            report.note(_SIZE_FROM_IMAGE)
        out[coco_id] = (image_id, path, width, height)
    return out


def _resolve_image(json_file: Path, file_name: str, roots: list[Path]) -> Path:
    for root in roots:
        path = root / file_name
        if path.is_file():
            return path
    searched = " or ".join(str(root) for root in roots)
    raise DataError(json_file, f"image {file_name!r} not found under {searched}")


def _read_annotations(
    json_file: Path,
    annotations: list,
    images: dict[Any, tuple[str, Path, int, int]],
    label_of_category: dict[int, int],
) -> dict[Any, tuple[list, list, list]]:
    """``{coco image id: (xywh boxes, labels, difficult)}`` in annotation order."""
    objects: dict[Any, tuple[list, list, list]] = {}
    for k, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            raise DataError(json_file, f"annotations[{k}] is not an object")
        where = f"annotation id {annotation.get('id', f'#{k}')}"
        image = annotation.get("image_id")
        if isinstance(image, bool) or not isinstance(image, (int, str)) or image not in images:
            raise DataError(json_file, f"{where} points to image id {image!r}, not in 'images'")
        category = annotation.get("category_id")
        if not _is_int(category) or category not in label_of_category:
            raise DataError(json_file, f"{where} has unknown category id {category!r}")
        bbox = annotation.get("bbox")
        if not _is_four_numbers(bbox):
            raise DataError(
                json_file, f"{where}: bbox must be 4 numbers [x, y, w, h], got {bbox!r}"
            )
        difficult = any(bool(annotation.get(key, 0)) for key in ("iscrowd", "difficult", "ignore"))
        boxes, labels, flags = objects.setdefault(image, ([], [], []))
        boxes.append(bbox)
        labels.append(label_of_category[category])
        flags.append(difficult)
    return objects
