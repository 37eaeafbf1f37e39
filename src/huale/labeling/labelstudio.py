"""Label Studio: the labeling config huale's tasks fit, and the reader of its JSON export.

Export format (Label Studio's "JSON" export, a list of tasks): each task has ``data`` (what was
imported: ``image`` and huale's ``huale_*`` fields) and ``annotations``; each annotation has
``result`` (regions), ``was_cancelled`` (the annotator skipped the task), ``created_at`` and
``updated_at``. A ``rectanglelabels`` region gives ``value.x/y/width/height`` in percent of
``original_width``/``original_height`` and a rotation in degrees (clockwise about the top-left
corner); a rotated box becomes its enclosing axis-aligned box (counted). Regions made with a
``Rectangle`` + ``Labels`` pair (two results sharing one ``id``) are read too.

Per task, the newest annotation that was not cancelled is the image's labels; a task whose
annotations were all cancelled is SKIPPED, one without annotations is UNLABELED: both stay
outstanding. :func:`parse_label_studio_export` takes the export already in memory (a list of
task dicts, as Label Studio's API or a webhook gives it), :func:`read_label_studio_export` a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from huale.errors import DataError
from huale.labeling.returned import ANNOTATED, SKIPPED, UNLABELED, ReturnedImage

FROM_NAME = "label"  # the RectangleLabels tag of the config, and from_name of predictions
TO_NAME = "image"  # the Image tag, and to_name of predictions; data field of the image
LABELING_CONFIG = "labelstudio_config.xml"

# distinct, readable region colours (Label Studio picks its own when ``background`` is absent)
_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
            "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3",
            "#808000", "#000075")


def labeling_config(class_names: Sequence[str]) -> str:
    """The Label Studio labeling config (XML) for ``class_names``: one ``Image`` named
    ``image`` (value ``$image``) and one ``RectangleLabels`` named ``label`` with a ``Label``
    per class, in class order."""
    if not class_names:
        raise ValueError("a labeling config needs at least one class")
    labels = "\n".join(
        f"    <Label value={quoteattr(name)} background={quoteattr(_COLOURS[i % len(_COLOURS)])}/>"
        for i, name in enumerate(class_names)
    )
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="${TO_NAME}" zoom="true"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
        "</View>\n"
    )


def read_label_studio_export(path: str | Path) -> list[ReturnedImage]:
    """The images of a Label Studio JSON export file (see module docstring)."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read the Label Studio export ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_label_studio_export(tasks, source=path)


def parse_label_studio_export(tasks: object, *, source: str | Path = "<export>") -> list[ReturnedImage]:
    """The images of an in-memory Label Studio export (a list of task dicts)."""
    if not isinstance(tasks, list):
        raise DataError(source, "a Label Studio JSON export is a list of tasks")
    return [_task(source, k, task) for k, task in enumerate(tasks)]


def is_label_studio_export(data: object) -> bool:
    """Whether parsed JSON looks like a Label Studio export (a list of tasks with ``data``)."""
    return isinstance(data, list) and all(isinstance(t, dict) and "data" in t for t in data)


def _task(source, k: int, task: object) -> ReturnedImage:
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise DataError(source, f"task #{k} has no 'data' object")
    data = task["data"]
    where = f"task {task.get('id', f'#{k}')}"
    url = data.get(TO_NAME)
    if url is not None and not isinstance(url, str):
        raise DataError(source, f"{where}: data.{TO_NAME} is not a string")
    huale_id = data.get("huale_id")
    returned = ReturnedImage(where=where, url=url,
                             huale_id=None if huale_id is None else str(huale_id))
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise DataError(source, f"{where}: 'annotations' is not a list")
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        returned.status = SKIPPED if annotations else UNLABELED
        return returned
    newest = max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                                      _as_int(a.get("id"))))
    where = f"{where} annotation {newest.get('id', '?')}"
    boxes, names, sizes, rotated = _regions(source, where, newest.get("result") or [])
    if sizes:
        if len(set(sizes)) > 1:
            raise DataError(source, f"{where}: regions state different image sizes {sorted(set(sizes))}")
        returned.width, returned.height = sizes[0]
    returned.where = where
    returned.boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    returned.class_names = names
    returned.status = ANNOTATED
    returned.updated_at = newest.get("updated_at") or newest.get("created_at")
    returned.rotated_boxes = rotated
    return returned


def _regions(source, where: str, result: list) -> tuple[list, list, list, int]:
    """(xyxy pixel boxes, class names, (width, height) per region, rotated count)."""
    if not isinstance(result, list):
        raise DataError(source, f"{where}: 'result' is not a list")
    labels_by_id = {
        r.get("id"): r["value"].get("labels")
        for r in result
        if isinstance(r, dict) and r.get("type") == "labels" and isinstance(r.get("value"), dict)
    }
    boxes, names, sizes, rotated = [], [], [], 0
    for r in result:
        if not isinstance(r, dict) or r.get("type") not in ("rectanglelabels", "rectangle"):
            continue
        value = r.get("value")
        if not isinstance(value, dict):
            raise DataError(source, f"{where}: region {r.get('id')!r} has no 'value'")
        labels = value.get("rectanglelabels") if r["type"] == "rectanglelabels" else labels_by_id.get(r.get("id"))
        if not labels or not isinstance(labels, list) or len(labels) != 1:
            raise DataError(source, f"{where}: region {r.get('id')!r} must carry exactly one label, got {labels!r}")
        try:
            width, height = float(r["original_width"]), float(r["original_height"])
            x, y = float(value["x"]), float(value["y"])
            w, h = float(value["width"]), float(value["height"])
            angle = float(value.get("rotation") or 0.0)
        except (KeyError, TypeError, ValueError):
            raise DataError(
                source, f"{where}: region {r.get('id')!r} needs original_width/height and "
                "value x, y, width, height (numbers)"
            ) from None
        if not all(math.isfinite(v) for v in (width, height, x, y, w, h, angle)) or width <= 0 or height <= 0:
            raise DataError(source, f"{where}: region {r.get('id')!r} has non-finite or empty values")
        x0, y0, pw, ph = x * width / 100.0, y * height / 100.0, w * width / 100.0, h * height / 100.0
        if angle % 360.0:
            rotated += 1
            boxes.append(_enclosing_rotated(x0, y0, pw, ph, angle))
        else:
            boxes.append([x0, y0, x0 + pw, y0 + ph])
        names.append(str(labels[0]))
        sizes.append((width, height))
    return boxes, names, sizes, rotated


def _enclosing_rotated(x0: float, y0: float, w: float, h: float, degrees: float) -> list[float]:
    """Enclosing xyxy box of a w x h rectangle rotated by ``degrees`` clockwise (y down) about
    its top-left corner (x0, y0), as Label Studio draws it."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    xs = [x0 + dx * c - dy * s for dx, dy in corners]
    ys = [y0 + dx * s + dy * c for dx, dy in corners]
    return [min(xs), min(ys), max(xs), max(ys)]


def _as_int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
