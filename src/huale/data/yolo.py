"""YOLO (Ultralytics) reader: a ``data.yaml`` plus one ``cls cx cy w h`` label file per image.

Layout: ``data.yaml`` has an optional ``path`` (the dataset root), ``train`` / ``val`` / ``test``
entries that are each a folder of images, a ``.txt`` list of image paths (relative lines are
relative to the list's folder) or a list of those, and ``names`` as a list or an
``{index: name}`` dict (or only ``nc``, giving names ``class_0``...).

Paths are resolved as Ultralytics' ``check_det_dataset`` does: the root is ``path`` when given
(a relative ``path`` is tried against the yaml's folder first, then the current folder), else the
yaml's folder; a relative split entry is relative to the root, and an entry starting with
``../`` that does not exist there is tried without its ``../`` (Roboflow writes
``train: ../train/images`` into a yaml that sits next to ``train/``). A split the yaml does not
name is a :class:`DataError` that lists the splits it has: huale never reads ``val`` in place of
a missing ``test`` unless asked for ``val``. Class ids: the dataset's ``category_ids`` are the
YOLO class indices (0-based), so files huale writes (COCO results) keep them. The label file of ``.../images/.../x.jpg`` is ``.../labels/.../x.txt``; a missing
label file means an image without objects (the YOLO convention), counted in the report.

Values: ``cx cy w h`` are fractions of the image size in [0, 1]. Values at most ``TOLERANCE``
outside (round-off of exporters) are accepted; a box whose corners leave the image is clipped to
it, and one left without area is dropped, both counted in the report. Values further outside, a
wrong field count, a non-number or an unknown class index are a :class:`DataError` naming the
label file and the line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from huale.data.images import IMAGE_SUFFIXES, image_size, list_images
from huale.data.records import (
    DetectionDataset,
    ImageRecord,
    LoadReport,
    assign_category_ids,
    sanitize_boxes,
)
from huale.data.textfiles import read_list_file, read_text_lines
from huale.errors import ConfigError, DataError

__all__ = ["TOLERANCE", "read_yolo", "yolo_label_path"]

TOLERANCE = 0.01
_NO_LABEL_FILE = "images without a label file (no objects)"


def read_yolo(
    data_yaml: str | Path,
    split: str = "train",
    *,
    class_names: Sequence[str] | None = None,
    fallback_ids: Mapping[str, int] | None = None,
) -> DetectionDataset:
    """Read split ``split`` of a YOLO dataset described by ``data_yaml``.

    ``class_names`` maps the yaml's names onto the given label order (a box of a class not in it
    is a :class:`DataError`); by default label ``i + 1`` is the yaml's class ``i``. A class of
    ``class_names`` the yaml does not name gets ``fallback_ids[name]`` (or a free id) as its
    category id. Image ids are image paths relative to the split's folder (for a list file, the
    list's folder), without suffix.
    """
    data_yaml = Path(data_yaml)
    config = _load_yaml(data_yaml)
    yolo_names = _class_names(data_yaml, config)
    if class_names is None:
        class_names = yolo_names
    class_names = list(class_names)
    label_of_name = {name: i + 1 for i, name in enumerate(class_names)}
    if len(label_of_name) != len(class_names):
        raise ConfigError(f"class_names has duplicates: {class_names}")
    # 0: a yaml class the caller does not know (an error only if a label file uses it)
    label_of_index = np.array([label_of_name.get(name, 0) for name in yolo_names], dtype=np.int64)
    category_ids = assign_category_ids(
        class_names, {name: i for i, name in enumerate(yolo_names)}, fallback_ids
    )

    root = dataset_root(data_yaml, config)
    if split not in config or config[split] in (None, "", []):
        present = [key for key in ("train", "val", "test") if config.get(key)]
        hint = " (pass split 'val' to read the val images)" if split == "test" and "val" in present else ""
        raise DataError(
            data_yaml, f"no {split!r} entry (entries: {', '.join(present) or 'none'}){hint}"
        )
    images = _split_images(data_yaml, root, config[split])

    report = LoadReport(source=f"{data_yaml} [{split}]")
    records = []
    seen: dict[str, Path] = {}
    for image_id, path in images:
        if image_id in seen:
            raise DataError(
                data_yaml, f"{split}: image id {image_id!r} for both {seen[image_id]} and {path}"
            )
        seen[image_id] = path
        records.append(_record(image_id, path, label_of_index, yolo_names, class_names, report))
    report.images = len(records)
    report.boxes = sum(r.num_boxes for r in records)
    report.log()
    return DetectionDataset(records, class_names, category_ids=category_ids, report=report)


def dataset_root(data_yaml: Path, config: dict) -> Path:
    """The folder split entries are relative to (see the module docstring)."""
    path_entry = config.get("path")
    if path_entry in (None, ""):
        return data_yaml.parent
    if not isinstance(path_entry, str):
        raise DataError(data_yaml, f"'path' must be a folder path, got {path_entry!r}")
    root = Path(os.path.expanduser(os.path.expandvars(path_entry)))
    if root.is_absolute():
        return root
    for base in (data_yaml.parent, Path.cwd()):
        if (base / root).is_dir():
            return base / root
    return data_yaml.parent / root  # missing: the split entries' error names this path


def resolve_entry(root: Path, entry: str) -> Path:
    """A split entry's path: ``root / entry``, or without a leading ``../`` when only that
    exists (Ultralytics' rule for Roboflow exports)."""
    path = Path(os.path.expanduser(entry))
    if path.is_absolute():
        return path
    candidate = root / path
    if not candidate.exists() and entry.startswith("../"):
        stripped = root / entry[3:]
        if stripped.exists():
            return Path(os.path.normpath(stripped))
    return Path(os.path.normpath(candidate))


def yolo_label_path(image_path: str | Path) -> Path:
    """``.../images/.../x.jpg`` -> ``.../labels/.../x.txt`` (last ``images`` folder replaced);
    an image outside any ``images`` folder has its label file next to it."""
    parts = list(Path(image_path).with_suffix(".txt").parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts)


def _record(
    image_id: str, path: Path, label_of_index: np.ndarray, yolo_names: list[str],
    class_names: list[str], report: LoadReport,
) -> ImageRecord:
    width, height = image_size(path)
    label_file = yolo_label_path(path)
    if not label_file.is_file():
        report.note(_NO_LABEL_FILE)
        return ImageRecord(image_id, path, width, height)
    classes, cxcywh = _parse_label_file(label_file, len(label_of_index))
    unknown = classes[label_of_index[classes] == 0]
    if len(unknown):
        name = yolo_names[int(unknown[0])]
        raise DataError(
            label_file, f"class {name!r} is not in class_names {class_names} (index {unknown[0]})"
        )
    boxes = np.empty_like(cxcywh)
    boxes[:, 0] = (cxcywh[:, 0] - cxcywh[:, 2] / 2) * width
    boxes[:, 1] = (cxcywh[:, 1] - cxcywh[:, 3] / 2) * height
    boxes[:, 2] = (cxcywh[:, 0] + cxcywh[:, 2] / 2) * width
    boxes[:, 3] = (cxcywh[:, 1] + cxcywh[:, 3] / 2) * height
    boxes, labels, difficult = sanitize_boxes(
        boxes, width, height, report, label_of_index[classes], np.zeros(len(classes), bool)
    )
    return ImageRecord(image_id, path, width, height, boxes, labels, difficult)


def _parse_label_file(label_file: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class indices (N,) and normalized ``cx cy w h`` (N, 4) of one label file."""
    lines = read_text_lines(label_file)
    classes: list[int] = []
    values: list[list[float]] = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number}"
        if len(fields) != 5:
            raise DataError(
                label_file, f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)}"
            )
        try:
            numbers = [float(field) for field in fields]
        except ValueError:
            raise DataError(label_file, f"{where}: non-numeric field in {line.strip()!r}") from None
        if not all(math.isfinite(v) for v in numbers):
            raise DataError(label_file, f"{where}: non-finite value in {line.strip()!r}")
        cls = numbers[0]
        if cls != int(cls) or not 0 <= cls < num_classes:
            raise DataError(
                label_file, f"{where}: class index {fields[0]} is outside 0..{num_classes - 1}"
            )
        if any(v < -TOLERANCE or v > 1 + TOLERANCE for v in numbers[1:]):
            raise DataError(
                label_file, f"{where}: cx cy w h must be fractions in [0, 1], got {fields[1:]}"
            )
        classes.append(int(cls))
        values.append(numbers[1:])
    return np.array(classes, dtype=np.int64), np.array(values, dtype=np.float64).reshape(-1, 4)


def _load_yaml(data_yaml: Path) -> dict:
    if not data_yaml.is_file():
        raise DataError(data_yaml, "dataset yaml not found")
    try:
        config = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(data_yaml, f"invalid YAML ({exc})") from None
    if not isinstance(config, dict):
        raise DataError(data_yaml, "expected a mapping with 'names' and 'train'/'val'/'test'")
    return config


def _class_names(data_yaml: Path, config: dict) -> list[str]:
    """Class names by YOLO index 0..nc-1 from ``names`` (list or dict) or ``nc``."""
    names: Any = config.get("names")
    count = config.get("nc")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise DataError(data_yaml, f"'nc' must be a non-negative integer, got {count!r}")
    if names is None:
        if count is None:
            raise DataError(data_yaml, "neither 'names' nor 'nc' is given")
        return [f"class_{i}" for i in range(count)]
    if isinstance(names, dict):
        keys = list(names)  # checked to be integers before sorting: mixed types do not sort
        if not all(isinstance(k, int) for k in keys) or sorted(keys) != list(range(len(keys))):
            raise DataError(data_yaml, f"'names' keys must be 0..{len(keys) - 1}, got {keys}")
        names = [names[k] for k in sorted(keys)]
    if not isinstance(names, list):
        raise DataError(data_yaml, "'names' must be a list or an {index: name} mapping")
    names = [str(name) for name in names]
    if len(set(names)) != len(names):
        raise DataError(data_yaml, f"'names' has duplicates: {names}")
    if count is not None and count != len(names):
        raise DataError(data_yaml, f"'nc' is {count} but 'names' has {len(names)} entries")
    return names


def _split_images(data_yaml: Path, root: Path, entry: Any) -> list[tuple[str, Path]]:
    """``(image id, path)`` of every image of a split entry (folder, list file, or a list)."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[tuple[str, Path]] = []
    for item in entries:
        if not isinstance(item, str):
            raise DataError(data_yaml, f"split entry {item!r} is not a path")
        path = resolve_entry(root, item)
        if path.is_dir():
            images += [(_image_id(image, path, root), image) for image in list_images(path)]
        elif path.is_file() and path.suffix.lower() == ".txt":
            images += [(_image_id(image, path.parent, root), image) for image in _list_file(path)]
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            images.append((_image_id(path, path.parent, root), path))
        elif not path.exists():
            raise DataError(
                path, f"split entry {item!r} of {data_yaml} not found (resolved against {root})"
            )
        else:
            raise DataError(path, f"split entry of {data_yaml} is not an image folder or a list")
    return images


def _list_file(list_file: Path) -> list[Path]:
    """Image paths listed one per line; relative lines are relative to the list's folder."""
    paths = []
    for line in read_list_file(list_file, what="image list"):
        path = Path(line)
        paths.append(
            Path(os.path.normpath(path if path.is_absolute() else list_file.parent / path))
        )
    return paths


def _image_id(image: Path, split_root: Path, root: Path) -> str:
    for base in (split_root, root):
        try:
            return image.with_suffix("").relative_to(base).as_posix()
        except ValueError:
            continue
    return image.with_suffix("").as_posix()
