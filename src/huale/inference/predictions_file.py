"""The predictions file: a detector's pool predictions as JSON Lines, one image a line.

``huale predict`` writes it; ``huale select --predictions`` ranks a pool from it without any
detector, so a team can score its pool with whatever produced the lines. The JSON Schema is
``docs/predictions.schema.json``; one line (wrapped here)::

    {"file_name": "cells/0001.png", "width": 640, "height": 480,
     "boxes": [[12.5, 30.0, 80.25, 96.0]], "labels": ["rbc"], "scores": [0.91],
     "class_probs": [[0.05, 0.91, 0.04]],          # optional: background first, then --classes
     "fpn_level": [3],                             # optional: pyramid level of each box
     "prenms": {"boxes": ..., "labels": ..., "scores": ..., ...},   # optional: pre-NMS boxes
     "views": {"flip": {"boxes": ..., "labels": ..., "scores": ..., ...}}}  # optional views

- file_name: the image's path relative to the pool folder (POSIX separators), or its pool id.
- labels: class NAMES from the classes file (``--classes``: one name per line, background not
  listed); the posterior's columns are the background then those classes in that order.
- boxes: xyxy in the ORIGINAL image's pixels, for every view (a flipped view's boxes are mapped
  back, x -> W - x).
- Absent fields get the stand-ins of :mod:`huale.inference.adapters.base`: posterior from the
  score, FPN level from the box size, the final boxes as pre-NMS members.

Floats are written as the exact decimal of their float32 value (``float(np.float32)``'s repr),
so a file written and read back gives bit-identical records. Any malformed line is a
:class:`~huale.errors.DataError` naming the file and the line number.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from huale.data.records import DetectionDataset
from huale.errors import DataError
from huale.inference.adapters.base import Capabilities
from huale.io import atomic_write_lines
from huale.predictions import FLIP, ORIGINAL, VIEW_NAMES, Detections, Needs, PredictionRecord

log = logging.getLogger(__name__)

REQUIRED = ("file_name", "width", "height", "boxes", "labels", "scores")
DETECTION_KEYS = ("boxes", "labels", "scores", "class_probs", "fpn_level", "prenms")
# --views names accepted on the command line -> record view names
VIEW_ALIASES = {"hflip": FLIP, **{name: name for name in VIEW_NAMES}}


CLASSES_SUFFIX = ".classes.txt"


class PredictionsFile:
    """A predictions file in the place of a detector (for :func:`check_needs`): it may hold any
    view and everything but features; which views it holds is checked line by line."""

    name = "predictions file"
    capabilities = Capabilities(
        views=VIEW_NAMES, class_posteriors=True, prenms_boxes=True, fpn_level=True, features=False
    )

    def __init__(self, path: str | Path):
        self.path = Path(path)


def classes_file_of(predictions: str | Path) -> Path:
    """The class names file ``huale predict`` writes beside ``preds.jsonl``: ``preds.classes.txt``."""
    path = Path(predictions)
    return path.with_name(path.stem + CLASSES_SUFFIX)


def match_lines(
    path: str | Path,
    class_names: Sequence[str],
    dataset: DetectionDataset,
    root: str | Path,
    needs: Needs,
) -> dict[str, PredictionRecord]:
    """Records of the lines of ``path`` that name an image of ``dataset``, by its image id.

    A line names an image by its id or by its path relative to ``root``. The line's size must
    be the image's, and it must hold every view in ``needs.views`` (DataError naming the line);
    with ``needs.prenms``, a line without pre-NMS boxes gets the stand-in (its final boxes).
    """
    root = Path(root).resolve()
    key_of = {}
    for record in dataset.records:
        key_of[record.image_id] = record
        relative = os.path.relpath(Path(record.path).resolve(), root)
        key_of.setdefault(Path(relative).as_posix(), record)
    found: dict[str, PredictionRecord] = {}
    unmatched = 0
    for line in read_predictions(path, class_names):
        image = key_of.get(line.file_name)
        if image is None:
            unmatched += 1
            continue
        record = line.record
        where = f"line {line.line_number} ({line.file_name})"
        if image.width and image.height and (record.width, record.height) != (image.width, image.height):
            raise DataError(path, f"{where}: size {record.width}x{record.height} but the image is "
                                  f"{image.width}x{image.height}")
        missing = [view for view in needs.views if view not in record.views]
        if missing:
            raise DataError(path, f"{where}: no predictions of the view(s) {', '.join(missing)}, "
                                  "which the strategy needs (huale predict --views ...)")
        record.image_id = image.image_id
        if needs.prenms and not record.prenms:
            record.prenms = dict(record.views)
        found[image.image_id] = record
    if unmatched:
        log.info("%s: %d lines name no image of %s", path, unmatched, root)
    return found


@dataclass
class PredictionLine:
    """One parsed line: the record (image id = ``file_name``) and what the line held."""

    line_number: int
    file_name: str
    record: PredictionRecord
    has_posteriors: bool


def record_to_line(
    record: PredictionRecord, file_name: str, class_names: Sequence[str], *, posteriors: bool = True
) -> str:
    """The JSON line of ``record`` (all its views and pre-NMS boxes)."""
    line = {"file_name": file_name, "width": int(record.width), "height": int(record.height)}
    line.update(_detections_to_json(record.original, record.prenms.get(ORIGINAL), class_names,
                                    posteriors))
    others = {
        view: _detections_to_json(dets, record.prenms.get(view), class_names, posteriors)
        for view, dets in record.views.items()
        if view != ORIGINAL
    }
    if others:
        line["views"] = others
    return json.dumps(line, separators=(",", ":"), allow_nan=False)


def write_predictions(
    path: str | Path,
    lines: Iterable[tuple[str, PredictionRecord]],
    class_names: Sequence[str],
    *,
    posteriors: bool = True,
) -> Path:
    """Write ``(file name, record)`` pairs as a predictions file, atomically and streamed."""
    return atomic_write_lines(
        path, (record_to_line(r, name, class_names, posteriors=posteriors) for name, r in lines)
    )


def read_predictions(path: str | Path, class_names: Sequence[str]) -> Iterator[PredictionLine]:
    """Every line of predictions file ``path`` parsed into a record (blank lines skipped).

    DataError "<path>: line N: <problem>" on the first malformed line, and for a file name
    given twice."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "predictions file not found")
    index = {name: i for i, name in enumerate(class_names, start=1)}
    seen: dict[str, int] = {}
    try:
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    parsed = _parse_line(text, index, len(class_names))
                except (ValueError, TypeError, KeyError) as exc:
                    raise DataError(path, f"line {number}: {exc}") from None
                if parsed.file_name in seen:
                    raise DataError(path, f"line {number}: file_name {parsed.file_name!r} "
                                          f"already on line {seen[parsed.file_name]}")
                seen[parsed.file_name] = number
                parsed.line_number = number
                yield parsed
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc})") from None


def _parse_line(text: str, index: dict[str, int], num_classes: int) -> PredictionLine:
    try:
        line = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(line, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in REQUIRED if key not in line]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    unknown = sorted(set(line) - set(REQUIRED) - set(DETECTION_KEYS) - {"views"})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    file_name = line["file_name"]
    if not isinstance(file_name, str) or not file_name:
        raise ValueError("file_name must be a non-empty string")
    width, height = line["width"], line["height"]
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    original = _detections(line, index, num_classes, ORIGINAL)
    views, prenms = {ORIGINAL: original[0]}, {}
    if original[1] is not None:
        prenms[ORIGINAL] = original[1]
    extra = line.get("views", {})
    if not isinstance(extra, dict):
        raise ValueError("views must be an object of view name -> detections")
    for view, value in extra.items():
        if view not in VIEW_NAMES or view == ORIGINAL:
            raise ValueError(
                f"unknown view {view!r} (views: {', '.join(v for v in VIEW_NAMES if v != ORIGINAL)})"
            )
        if not isinstance(value, dict):
            raise ValueError(f"views.{view} must be an object")
        views[view], pre = _detections(value, index, num_classes, f"views.{view}")
        if pre is not None:
            prenms[view] = pre
    posteriors = "class_probs" in line
    record = PredictionRecord(file_name, width, height, views, prenms)
    return PredictionLine(0, file_name, record, posteriors)


def _detections(
    value: dict, index: dict[str, int], num_classes: int, where: str
) -> tuple[Detections, Detections | None]:
    """(detections, pre-NMS boxes or None) of a line or view object."""
    where = "" if where == ORIGINAL else f"{where}."
    for key in ("boxes", "labels", "scores"):
        if key not in value:
            raise ValueError(f"missing {where}{key}")
    labels = value["labels"]
    if not isinstance(labels, list):
        raise ValueError(f"{where}labels must be a list of class names")
    unknown = sorted({str(n) for n in labels if n not in index})
    if unknown:
        raise ValueError(
            f"{where}labels: unknown class name(s) {', '.join(map(repr, unknown))} "
            f"(classes: {', '.join(index)})"
        )
    count = len(labels)
    boxes = _array(value["boxes"], (count, 4), f"{where}boxes")
    scores = _array(value["scores"], (count,), f"{where}scores")
    probs = value.get("class_probs")
    if probs is not None:
        probs = _array(probs, (count, num_classes + 1), f"{where}class_probs")
    level = value.get("fpn_level")
    if level is not None:
        level = _array(level, (count,), f"{where}fpn_level", np.int64)
    if not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError(f"{where}scores must be in [0, 1]")
    dets = Detections.build(
        boxes, [index[n] for n in labels], scores, num_classes, class_probs=probs, fpn_level=level
    )
    pre = value.get("prenms")
    if pre is not None:
        if not isinstance(pre, dict) or "prenms" in pre:
            raise ValueError(f"{where}prenms must be an object of boxes, labels, scores, ...")
        pre, _ = _detections(pre, index, num_classes, f"{where}prenms")
    return dets, pre


def _array(value, shape: tuple[int, ...], name: str, dtype=np.float64) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be numbers") from None
    if array.size == 0 and shape[0] == 0:
        return array.reshape(shape)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {list(array.shape)}, expected {list(shape)}")
    if dtype is np.float64 and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers")
    return array


def _detections_to_json(
    dets: Detections, prenms: Detections | None, class_names: Sequence[str], posteriors: bool
) -> dict:
    out = {
        "boxes": dets.boxes.astype(np.float64).tolist(),
        "labels": [class_names[int(label) - 1] for label in dets.labels],
        "scores": dets.scores.astype(np.float64).tolist(),
    }
    if posteriors:
        out["class_probs"] = dets.class_probs.astype(np.float64).tolist()
    out["fpn_level"] = dets.fpn_level.tolist()
    if prenms is not None:
        out["prenms"] = _detections_to_json(prenms, None, class_names, posteriors)
    return out
