"""Datasets written the way real exporters write them, drawn by the tests (no downloads).

- :func:`write_roboflow_coco`: a Roboflow "COCO" export: one folder per split (``train/``,
  ``valid/``, ``test/``) holding the images and ``_annotations.coco.json``; category ids start
  at 0 with a supercategory (id 0) that no box uses, and they have gaps; image ids start at 0.
- :func:`write_roboflow_yolo`: a Roboflow "YOLOv8" export: ``data.yaml`` next to ``train/`` and
  ``valid/`` with ``train: ../train/images``, ``val: ../valid/images``, no ``path:`` and no
  ``test:``; ``<split>/images/*.jpg`` and ``<split>/labels/*.txt``.

The images are 64x64 with coloured rectangles, one colour per class, so a tiny model can learn
them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Roboflow: the project's supercategory first (id 0, no boxes), then the classes; gaps on purpose
ROBOFLOW_CATEGORIES = [
    {"id": 0, "name": "cells", "supercategory": "none"},
    {"id": 1, "name": "Platelets", "supercategory": "cells"},
    {"id": 3, "name": "RBC", "supercategory": "cells"},
    {"id": 7, "name": "WBC", "supercategory": "cells"},
]
USED_CATEGORY_IDS = (1, 3, 7)
YOLO_NAMES = ["Platelets", "RBC", "WBC"]
COLORS = {1: (230, 200, 40), 3: (220, 30, 30), 7: (60, 60, 230)}
SIZE = 64


def _draw(rng: np.random.Generator, category_ids=USED_CATEGORY_IDS):
    """A 64x64 image and its boxes: ``[(category id, x, y, w, h)]`` in pixels."""
    image = Image.new("RGB", (SIZE, SIZE), (90, 90, 90))
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(int(rng.integers(1, 3))):
        w, h = (int(v) for v in rng.integers(SIZE // 5, SIZE // 2, size=2))
        x, y = int(rng.integers(0, SIZE - w)), int(rng.integers(0, SIZE - h))
        category = int(rng.choice(category_ids))
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=COLORS[category])
        objects.append((category, x, y, w, h))
    return image, objects


def write_roboflow_coco(root: Path, splits=(("train", 8), ("valid", 3)), seed: int = 0) -> Path:
    """A Roboflow COCO export under ``root`` (see module docstring). Returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in splits:
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for k in range(count):
            image, objects = _draw(rng)
            file_name = f"BloodImage_{k:05d}_jpg.rf.{k:08x}.jpg"
            image.save(folder / file_name, quality=95)
            images.append({"id": k, "license": 1, "file_name": file_name, "height": SIZE,
                           "width": SIZE, "date_captured": "2026-12-01T00:00:00+00:00"})
            for category, x, y, w, h in objects:
                annotations.append({"id": len(annotations), "image_id": k,
                                    "category_id": category, "bbox": [x, y, w, h],
                                    "area": w * h, "segmentation": [], "iscrowd": 0})
        coco = {
            "info": {"year": "2026", "version": "1", "description": "Exported from roboflow.com"},
            "licenses": [{"id": 1, "url": "https://opensource.org/licenses/MIT", "name": "MIT"}],
            "categories": ROBOFLOW_CATEGORIES,
            "images": images,
            "annotations": annotations,
        }
        (folder / "_annotations.coco.json").write_text(json.dumps(coco))
    return root


def write_roboflow_yolo(root: Path, splits=(("train", 8), ("valid", 3)), seed: int = 0) -> Path:
    """A Roboflow YOLOv8 export under ``root``; returns its ``data.yaml``."""
    rng = np.random.default_rng(seed)
    index_of = {1: 0, 3: 1, 7: 2}
    for split, count in splits:
        for kind in ("images", "labels"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            image, objects = _draw(rng)
            stem = f"BloodImage_{k:05d}_jpg.rf.{k:08x}"
            image.save(root / split / "images" / f"{stem}.jpg", quality=95)
            lines = [
                f"{index_of[c]} {(x + w / 2) / SIZE:.6f} {(y + h / 2) / SIZE:.6f} "
                f"{w / SIZE:.6f} {h / SIZE:.6f}"
                for c, x, y, w, h in objects
            ]
            (root / split / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        "train: ../train/images\n"
        "val: ../valid/images\n"
        "\n"
        f"nc: {len(YOLO_NAMES)}\n"
        f"names: {json.dumps(YOLO_NAMES)}\n"
        "\n"
        "roboflow:\n"
        "  workspace: example\n"
        "  project: bccd\n"
        "  version: 1\n"
        "  license: MIT\n"
        "  url: https://universe.roboflow.com/example/bccd/dataset/1\n"
    )
    return data_yaml
