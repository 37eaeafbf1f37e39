"""Detections as Label Studio ``rectanglelabels`` regions, and the names a labeling config uses.

A region's ``value`` holds ``x``, ``y``, ``width``, ``height`` in percent of the image size
(``original_width`` / ``original_height``), as Label Studio's JSON format defines it. Both the
task exports (:func:`huale.selection.export.label_studio_tasks`) and ``huale serve`` build their
predictions here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from huale.predictions import Detections

DEFAULT_FROM_NAME = "label"
DEFAULT_TO_NAME = "image"
DEFAULT_IMAGE_FIELD = "image"
MAX_CONFIG_CHARS = 1_000_000


@dataclass(frozen=True)
class ConfigNames:
    """Names the predictions must use: the ``RectangleLabels`` tag (from_name), the ``Image`` tag
    it labels (to_name), and the task data field that tag shows (``value="$field"``)."""

    from_name: str = DEFAULT_FROM_NAME
    to_name: str = DEFAULT_TO_NAME
    image_field: str = DEFAULT_IMAGE_FIELD
    labels: tuple[str, ...] = ()


def config_names(label_config: object) -> ConfigNames:
    """The names of the first ``RectangleLabels`` tag of a labeling config and of its image.

    A missing, unparsable or rectangle-free config gives the defaults of huale's own config
    (``label`` / ``image`` / ``$image``).
    """
    if not isinstance(label_config, str) or not label_config.strip():
        return ConfigNames()
    if len(label_config) > MAX_CONFIG_CHARS or "<!ENTITY" in label_config:
        return ConfigNames()
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError:
        return ConfigNames()
    rect = next((e for e in root.iter() if e.tag == "RectangleLabels" and e.get("name")), None)
    if rect is None:
        return ConfigNames()
    to_name = rect.get("toName") or DEFAULT_TO_NAME
    image = next((e for e in root.iter() if e.tag == "Image" and e.get("name") == to_name), None)
    value = (image.get("value") if image is not None else None) or f"${DEFAULT_IMAGE_FIELD}"
    field = value[1:] if value.startswith("$") else DEFAULT_IMAGE_FIELD
    labels = tuple(e.get("value") for e in rect.iter("Label") if e.get("value"))
    return ConfigNames(rect.get("name"), to_name, field, labels)


def rectangle_regions(
    detections: Detections,
    width: int,
    height: int,
    class_names: Sequence[str],
    names: ConfigNames = ConfigNames(),  # noqa: B008 - frozen, shared safely
    *,
    id_prefix: str = "",
) -> list[dict]:
    """One ``rectanglelabels`` region per detection (boxes xyxy pixels, labels 1..C)."""
    regions = []
    for k in range(len(detections)):
        x1, y1, x2, y2 = (float(v) for v in detections.boxes[k])
        regions.append(
            {
                "id": f"{id_prefix}{k}",
                "type": "rectanglelabels",
                "from_name": names.from_name,
                "to_name": names.to_name,
                "original_width": int(width),
                "original_height": int(height),
                "image_rotation": 0,
                "value": {
                    "x": 100.0 * x1 / width,
                    "y": 100.0 * y1 / height,
                    "width": 100.0 * (x2 - x1) / width,
                    "height": 100.0 * (y2 - y1) / height,
                    "rotation": 0,
                    "rectanglelabels": [class_names[int(detections.labels[k]) - 1]],
                },
                "score": float(detections.scores[k]),
            }
        )
    return regions
