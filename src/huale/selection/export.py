"""Writers of ``huale select``'s outputs; each file is written atomically.

- ``selection.csv``: the whole pool in rank order (rank, selected, image id, path, score, stage,
  predicted boxes).
- ``selection.json``: the run's settings, the selected images with their most uncertain objects
  (box, class, uncertainty, per-level values) and the full ranking.
- ``selected_coco.json``: the selected images with the model's detections (original view,
  score >= the pre-annotation threshold) as COCO annotations, each with its ``score``.
- ``labelstudio_tasks.json``: Label Studio tasks with those detections as predictions, huale's
  rank and score in ``data``, and a prediction score whose ascending order is the rank.

Scores that are not finite (e.g. the -inf of images without any detection) are written as JSON
``null`` and as an empty CSV cell. Nothing time- or machine-dependent is written, so the same
inputs give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from huale.data.coco import dataset_to_coco
from huale.data.records import DetectionDataset, ImageRecord
from huale.io import atomic_write_json, atomic_write_text
from huale.labeling.regions import rectangle_regions
from huale.labeling.urls import LOCAL_FILES_PREFIX
from huale.predictions import Detections
from huale.strategies.base import ImageScore

SELECTION_CSV = "selection.csv"
SELECTION_JSON = "selection.json"
SELECTED_COCO = "selected_coco.json"
LABEL_STUDIO_TASKS = "labelstudio_tasks.json"
CSV_COLUMNS = ("rank", "selected", "image_id", "path", "score", "stage", "predicted_boxes")


@dataclass
class RankedImage:
    """One pool image as the exports see it.

    rank: 1-based position in the strategy's ranking; record: the pool image (path, size);
    predicted_boxes: how many pre-annotations (original view, score >= threshold) it has;
    detections: those pre-annotations, boxes (K, 4) — needed, and kept, for selected images only.
    """

    rank: int
    selected: bool
    score: ImageScore
    record: ImageRecord
    predicted_boxes: int
    detections: Detections | None = None

    def preannotations(self) -> Detections:
        """The detections of a selected image (a ValueError when they were not kept)."""
        if self.detections is None:
            raise ValueError(f"no detections kept for image {self.score.image_id!r}")
        return self.detections


def write_selection_csv(path: str | Path, ranked: Sequence[RankedImage]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in ranked:
        score = finite_or_none(item.score.score)
        writer.writerow(
            [
                item.rank,
                int(item.selected),
                item.score.image_id,
                item.record.path.as_posix(),
                "" if score is None else repr(score),
                item.score.stage,
                item.predicted_boxes,
            ]
        )
    return atomic_write_text(path, buffer.getvalue())


def write_selection_json(
    path: str | Path, ranked: Sequence[RankedImage], run: Mapping[str, Any]
) -> Path:
    """``run``: settings and counts of the run, written first as they are."""
    selected = []
    for item in ranked:
        if not item.selected:
            continue
        objects = sorted(item.score.objects, key=lambda o: -o.uncertainty)
        selected.append(
            {
                "rank": item.rank,
                "image_id": item.score.image_id,
                "path": item.record.path.as_posix(),
                "width": item.record.width,
                "height": item.record.height,
                "score": finite_or_none(item.score.score),
                "stage": item.score.stage,
                "predicted_boxes": item.predicted_boxes,
                "objects": [
                    {
                        "box": [float(v) for v in o.box],
                        "label": int(o.label),
                        "class_name": o.class_name,
                        "uncertainty": finite_or_none(o.uncertainty),
                        "levels": o.levels,
                    }
                    for o in objects
                ],
            }
        )
    ranking = [
        {
            "rank": item.rank,
            "image_id": item.score.image_id,
            "score": finite_or_none(item.score.score),
            "stage": item.score.stage,
            "selected": item.selected,
        }
        for item in ranked
    ]
    content = {**run, "selected": selected, "ranking": ranking}
    return atomic_write_json(path, to_json(content))


def write_selected_coco(
    path: str | Path,
    ranked: Sequence[RankedImage],
    class_names: Sequence[str],
    threshold: float,
    category_ids: Sequence[int] | None = None,
) -> Path:
    """The selected images (rank order) with their detections as COCO annotations + scores.

    Category ids are ``category_ids`` (the checkpoint's: the ids of the user's training data);
    image ``file_name`` is the image path as the pool gave it (absolute, symlinks kept)."""
    chosen = [item for item in ranked if item.selected]
    records = [
        ImageRecord(
            item.record.image_id,
            item.record.path,
            item.record.width,
            item.record.height,
            item.preannotations().boxes.astype(np.float32),
            item.preannotations().labels.astype(np.int64),
            np.zeros(len(item.preannotations()), bool),
        )
        for item in chosen
    ]
    info = {
        "description": "huale select: selected images, model detections as pre-annotations",
        "score_threshold": float(threshold),
    }
    coco = dataset_to_coco(
        DetectionDataset(records, class_names, category_ids=category_ids), info=info
    )
    scores = [float(s) for item in chosen for s in item.preannotations().scores]
    for annotation, score in zip(coco["annotations"], scores, strict=True):
        annotation["score"] = score
    return atomic_write_json(path, coco)


def label_studio_tasks(
    ranked: Sequence[RankedImage],
    class_names: Sequence[str],
    *,
    image_root: Path,
    url_prefix: str | None = LOCAL_FILES_PREFIX,
    model_version: str = "huale",
    extra_data: Mapping[str, Any] | None = None,
) -> list[dict]:
    """Label Studio import tasks of the selected images (rank order).

    Each task: ``data.image`` (``url_prefix`` + the path relative to ``image_root``, URL-quoted;
    by default Label Studio's local-files URL, so its document root must be ``image_root``; with
    ``url_prefix=None`` the absolute file path), ``data.huale_id``, ``data.huale_rank`` (1 = most
    informative), ``data.huale_score`` (the strategy's score, higher = more informative; null when
    not finite), ``data.huale_stage`` and ``extra_data`` (e.g. the round), all sortable columns of
    the Data Manager; and one prediction (``model_version``) whose ``result`` holds a
    ``rectanglelabels`` region per detection (from_name ``label``, to_name ``image``; x, y, width,
    height in percent of the image size; ``score`` = the detection's confidence).

    The prediction ``score`` orders the tasks for labeling: Label Studio puts the lowest
    prediction score first (its uncertainty sampling, and the Data Manager sorted ascending by
    "Prediction score"), so it is ``(rank - 1) / selected``, in [0, 1): ascending order is
    huale's rank. Every task carries it, with or without boxes.
    """
    chosen = [item for item in ranked if item.selected]
    tasks = []
    for position, item in enumerate(sorted(chosen, key=lambda i: i.rank)):
        record, dets = item.record, item.preannotations()
        width, height = record.width, record.height
        results = rectangle_regions(dets, width, height, class_names, id_prefix=f"{item.rank}-")
        prediction: dict[str, Any] = {
            "model_version": model_version,
            "score": position / len(chosen),
            "result": results,
        }
        data = {
            "image": image_location(record.path, image_root, url_prefix),
            "huale_id": record.image_id,
            "huale_rank": item.rank,
            "huale_score": finite_or_none(item.score.score),
            "huale_stage": item.score.stage,
            **(extra_data or {}),
        }
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks


def write_label_studio_tasks(path: str | Path, tasks: list[dict]) -> Path:
    return atomic_write_json(path, to_json(tasks))


def image_location(path: Path, image_root: Path, url_prefix: str | None) -> str:
    """``url_prefix`` + path relative to ``image_root`` (URL-quoted); else the absolute path.

    Paths are made absolute without resolving symlinks: a pool folder of links gives the link's
    path under the pool folder, not its target. An image outside ``image_root`` keeps its
    absolute path after the prefix.
    """
    path = Path(os.path.abspath(path))
    if url_prefix is None:
        return path.as_posix()
    try:
        relative = path.relative_to(os.path.abspath(image_root)).as_posix()
    except ValueError:
        relative = path.as_posix().lstrip("/")
    return url_prefix + quote(relative, safe="/")


def finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def to_json(value: Any) -> Any:
    """``value`` with numpy scalars/arrays as Python values and non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value)
    if isinstance(value, Path):
        return value.as_posix()
    return value
