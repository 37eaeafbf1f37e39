"""Exports written the way each tool writes them (field sets of Label Studio 1.23's JSON export,
CVAT's COCO 1.0 zip and PASCAL VOC 1.1 folder)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path


def ls_region(x, y, w, h, label, *, width=64, height=64, rotation=0, region_id="r1"):
    return {
        "original_width": width, "original_height": height, "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                  "rectanglelabels": [label]},
        "id": region_id, "from_name": "label", "to_name": "image", "type": "rectanglelabels",
        "origin": "manual",
    }


def ls_annotation(annotation_id, result, *, cancelled=False, updated="2026-12-01T03:00:00.000000Z"):
    return {
        "id": annotation_id, "completed_by": 1, "result": result, "was_cancelled": cancelled,
        "ground_truth": False, "created_at": updated, "updated_at": updated,
        "draft_created_at": None, "lead_time": 4.2, "prediction": {}, "result_count": len(result),
        "unique_id": f"u{annotation_id}", "import_id": None, "last_action": None,
        "bulk_created": False, "task": 1, "project": 1, "updated_by": 1,
        "parent_prediction": None, "parent_annotation": None, "last_created_by": None,
    }


def ls_task(task_id, data, annotations):
    return {
        "id": task_id, "annotations": annotations, "file_upload": None, "drafts": [],
        "predictions": [], "data": data, "meta": {}, "created_at": "2026-12-01T02:00:00.000000Z",
        "updated_at": "2026-12-01T03:00:00.000000Z", "inner_id": task_id,
        "total_annotations": len(annotations),
        "cancelled_annotations": sum(a["was_cancelled"] for a in annotations),
        "total_predictions": 0, "comment_count": 0, "unresolved_comment_count": 0,
        "last_comment_updated_at": None, "project": 1, "updated_by": 1, "comment_authors": [],
    }


def cvat_coco(images, categories=("red", "green")) -> dict:
    """images: [(file_name, width, height, [(x, y, w, h, label), ...])]"""
    out = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(categories)],
        "images": [], "annotations": [],
    }
    for n, (name, width, height, boxes) in enumerate(images, start=1):
        out["images"].append({"id": n, "width": width, "height": height, "file_name": name,
                              "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0})
        for x, y, w, h, label in boxes:
            out["annotations"].append({
                "id": len(out["annotations"]) + 1, "image_id": n,
                "category_id": list(categories).index(label) + 1, "segmentation": [],
                "area": w * h, "bbox": [x, y, w, h], "iscrowd": 0,
                "attributes": {"occluded": False, "rotation": 0.0},
            })
    return out


def write_cvat_zip(path: Path, coco: dict) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("annotations/instances_default.json", json.dumps(coco))
    return path


def write_cvat_voc(folder: Path, images, labels=("red", "green")) -> Path:
    """images: [(file_name, width, height, [(xmin, ymin, xmax, ymax, label), ...])]"""
    (folder / "Annotations").mkdir(parents=True)
    (folder / "ImageSets" / "Main").mkdir(parents=True)
    (folder / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\n" + "".join(f"{name}:250,50,83::\n" for name in labels))
    (folder / "ImageSets" / "Main" / "default.txt").write_text(
        "".join(Path(name).stem + "\n" for name, *_ in images))
    for name, width, height, boxes in images:
        objects = "".join(
            f"<object><name>{label}</name><truncated>0</truncated><occluded>0</occluded>"
            f"<difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
            f"<ymax>{y2}</ymax></bndbox><attributes><attribute><name>rotation</name>"
            f"<value>0.0</value></attribute></attributes></object>"
            for x1, y1, x2, y2, label in boxes
        )
        (folder / "Annotations" / (Path(name).stem + ".xml")).write_text(
            f"<annotation><folder></folder><filename>{name}</filename><source><database>Unknown"
            f"</database><annotation>Unknown</annotation><image>Unknown</image></source><size>"
            f"<width>{width}</width><height>{height}</height><depth></depth></size>"
            f"<segmented>0</segmented>{objects}</annotation>"
        )
    return folder
