"""CVAT export: the round's selected images with the model's detections as a "COCO 1.0" zip.

The zip holds ``annotations/instances_default.json`` laid out as CVAT writes it (CVAT docs,
format-coco): labels numbered from 1 in class order, every box with an empty ``segmentation``
and ``attributes`` (``occluded``, ``rotation``, plus huale's ``score`` = the detection's
confidence, ``huale_score`` = the image's acquisition score, ``huale_rank``). ``file_name`` is the
image's path relative to the pool folder, so the images uploaded to a CVAT task from that folder
match it. Import it in CVAT with "Upload annotations" -> "COCO 1.0"; CVAT keeps an attribute only
if the label defines it. No image files are written into the zip.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from huale.io import atomic_write_bytes

CVAT_ZIP = "cvat_coco.zip"
CVAT_MEMBER = "annotations/instances_default.json"


def cvat_coco(images: Sequence[dict], class_names: Sequence[str]) -> dict:
    """The COCO dict of ``images`` in rank order.

    Each image: ``file_name``, ``width``, ``height``, ``rank``, ``score`` (acquisition score or
    None), ``boxes`` (xyxy pixels), ``labels`` (1..C), ``scores`` (detection confidences).
    """
    out_images, annotations = [], []
    for n, image in enumerate(images, start=1):
        out_images.append({
            "id": n, "width": int(image["width"]), "height": int(image["height"]),
            "file_name": image["file_name"], "license": 0, "flickr_url": "", "coco_url": "",
            "date_captured": 0,
        })
        for box, label, score in zip(image["boxes"], image["labels"], image["scores"], strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            acquisition = image.get("score")
            annotations.append({
                "id": len(annotations) + 1, "image_id": n, "category_id": int(label),
                "segmentation": [], "area": (x2 - x1) * (y2 - y1), "bbox": [x1, y1, x2 - x1, y2 - y1],
                "iscrowd": 0,
                "attributes": {
                    "occluded": False, "rotation": 0.0, "score": float(score),
                    "huale_score": acquisition if acquisition is None or math.isfinite(acquisition) else None,
                    "huale_rank": int(image["rank"]),
                },
            })
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "huale: selected images "
                 "with model pre-annotations", "url": "", "version": "", "year": ""},
        "categories": [{"id": i + 1, "name": name, "supercategory": ""}
                       for i, name in enumerate(class_names)],
        "images": out_images,
        "annotations": annotations,
    }


def write_cvat_zip(path: str | Path, images: Sequence[dict], class_names: Sequence[str]) -> Path:
    """Write :func:`cvat_coco` as ``annotations/instances_default.json`` in a zip, atomically
    and byte-identically for the same input (fixed member time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(CVAT_MEMBER, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        archive.writestr(info, json.dumps(cvat_coco(images, class_names)))
    return atomic_write_bytes(path, buffer.getvalue())


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (posix), or its absolute path when outside."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(os.path.abspath(path)).as_posix()
