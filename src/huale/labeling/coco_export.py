"""Reader of COCO exports from labeling tools: CVAT's "COCO 1.0" (a zip holding
``annotations/instances_<subset>.json``, or that JSON alone) and any plain COCO detection JSON.

Boxes come from ``bbox`` (``[x, y, w, h]`` pixels); ``segmentation`` is ignored. Every image the
file lists counts as annotated, so an image without annotations is returned as labeled with no
objects (CVAT exports every image of the task: skip unfinished ones in CVAT before exporting).
Several ``instances_*.json`` in one zip (CVAT subsets) are read together.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from huale.errors import DataError
from huale.labeling.returned import ANNOTATED, ReturnedImage


def read_coco_export(path: str | Path) -> list[ReturnedImage]:
    """The images of a COCO export: a ``.zip`` (CVAT COCO 1.0) or a ``.json`` file."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return [image for name, data in _zip_jsons(path) for image in parse_coco(data, f"{path}:{name}")]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read the COCO file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_coco(data, path)


def is_coco(data: object) -> bool:
    """Whether parsed JSON looks like COCO (an object with ``images`` and ``annotations``)."""
    return isinstance(data, dict) and "images" in data and "annotations" in data


def _zip_jsons(path: Path) -> list[tuple[str, object]]:
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist()
                       if n.endswith(".json") and Path(n).name.startswith("instances_"))
        if not names:
            names = sorted(n for n in archive.namelist() if n.endswith(".json"))
        if not names:
            raise DataError(path, "the zip holds no annotations/instances_*.json (CVAT COCO 1.0)")
        out = []
        for name in names:
            try:
                out.append((name, json.loads(archive.read(name).decode("utf-8"))))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(f"{path}:{name}", f"not valid JSON ({exc})") from None
        return out


def parse_coco(data: object, source: str | Path) -> list[ReturnedImage]:
    """The images of an in-memory COCO dict, in ``images`` order."""
    if not is_coco(data) or not isinstance(data.get("categories", []), list):
        raise DataError(source, "not a COCO file (needs 'images', 'annotations', 'categories' lists)")
    names = {}
    for c in data.get("categories", []):
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise DataError(source, f"category {c!r} needs an 'id' and a 'name'")
        names[c["id"]] = c["name"]
    images: dict = {}
    for k, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            raise DataError(source, f"images[{k}] needs an 'id' and a 'file_name'")
        if entry["id"] in images:
            raise DataError(source, f"duplicate image id {entry['id']!r}")
        images[entry["id"]] = (entry, [], [])
    for k, a in enumerate(data["annotations"]):
        where = f"annotation id {a.get('id', f'#{k}')}" if isinstance(a, dict) else f"annotations[{k}]"
        if not isinstance(a, dict) or a.get("image_id") not in images:
            raise DataError(source, f"{where} points to no image of 'images'")
        if a.get("category_id") not in names:
            raise DataError(source, f"{where} has unknown category id {a.get('category_id')!r}")
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            raise DataError(source, f"{where}: bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        _, boxes, labels = images[a["image_id"]]
        boxes.append([x, y, x + w, y + h])
        labels.append(names[a["category_id"]])
    out = []
    for coco_id, (entry, boxes, labels) in images.items():
        width, height = entry.get("width"), entry.get("height")
        out.append(ReturnedImage(
            where=f"{source} image id {coco_id}",
            file_name=entry["file_name"],
            width=float(width) if isinstance(width, (int, float)) and width > 0 else None,
            height=float(height) if isinstance(height, (int, float)) and height > 0 else None,
            boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
            class_names=labels,
            status=ANNOTATED,
        ))
    return out
