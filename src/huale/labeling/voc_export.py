"""Reader of Pascal VOC exports: a folder (or zip) of VOC XML files, e.g. CVAT's "PASCAL VOC 1.1"
export (``Annotations/*.xml``, ``ImageSets/``, ``labelmap.txt``) or LabelImg's XML files.

Each XML is one annotated image: ``filename``, ``size/width``/``height`` and ``object`` entries
with ``name`` and ``bndbox`` ``xmin/ymin/xmax/ymax``. Coordinates are read as written, as CVAT
(datumaro) writes and reads them: 0-based, continuous pixels. ``one_based=True`` follows the VOC
devkit instead (and huale's own VOC reader): ``xmin - 1, ymin - 1``. An XML without ``filename``
names its image by its own stem.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np

from huale.errors import DataError
from huale.labeling.returned import ANNOTATED, ReturnedImage


def read_voc_export(path: str | Path, *, one_based: bool = False) -> list[ReturnedImage]:
    """The images of a VOC folder or zip: every ``*.xml`` under ``Annotations/`` if present,
    else every ``*.xml`` under ``path`` (sorted)."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if n.endswith(".xml"))
            annotated = [n for n in names if "Annotations/" in n] or names
            return [parse_voc_xml(archive.read(n), f"{path}:{n}", Path(n).stem, one_based=one_based)
                    for n in annotated]
    if not path.is_dir():
        raise DataError(path, "a VOC export is a folder (or zip) of XML annotation files")
    folder = path / "Annotations" if (path / "Annotations").is_dir() else path
    files = sorted(folder.rglob("*.xml"))
    if not files:
        raise DataError(path, "no VOC XML files found")
    return [parse_voc_xml(f.read_bytes(), f, f.stem, one_based=one_based) for f in files]


def parse_voc_xml(content: bytes, source: str | Path, stem: str, *, one_based: bool = False) -> ReturnedImage:
    """One VOC XML document (bytes) as a :class:`ReturnedImage`."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise DataError(source, f"not valid XML ({exc})") from None
    if root.tag != "annotation":
        raise DataError(source, f"root element is <{root.tag}>, not <annotation>")
    file_name = (root.findtext("filename") or "").strip() or None
    width = _number(root.findtext("size/width"))
    height = _number(root.findtext("size/height"))
    boxes, names = [], []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(source, f"object #{k + 1} has no <name>")
        values = [_number(obj.findtext(f"bndbox/{key}")) for key in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in values):
            raise DataError(source, f"object #{k + 1} ({name}) needs numeric bndbox xmin/ymin/xmax/ymax")
        x1, y1, x2, y2 = values
        if one_based:
            x1, y1 = x1 - 1.0, y1 - 1.0
        boxes.append([x1, y1, x2, y2])
        names.append(name)
    return ReturnedImage(
        where=str(source),
        file_name=file_name or stem,
        width=width if width and width > 0 else None,
        height=height if height and height > 0 else None,
        boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
        class_names=names,
        status=ANNOTATED,
    )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None and text.strip() else None
    except ValueError:
        return None
