"""One entry point for every dataset layout huale reads, plus unlabeled image pools.

Accepted layouts for :func:`load_dataset`:

- a ``.json`` file: COCO (the split argument is not used);
- a ``.yaml`` / ``.yml`` file: YOLO, or a folder holding ``data.yaml`` (or a single yaml);
- a folder with ``Annotations/`` (a VOC year folder) or a VOCdevkit holding one: VOC;
- a folder with ``<split>.json``: COCO on that file, images relative to the folder (the layout of
  huale's synthetic dataset: ``DIR/train.json``, ``DIR/test.json``, ``DIR/images/*.jpg``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from huale.data.coco import read_coco
from huale.data.images import image_size, list_images
from huale.data.records import DetectionDataset, ImageRecord, LoadReport, assign_category_ids
from huale.data.textfiles import read_list_file
from huale.data.voc import read_voc, voc_year_folder
from huale.data.yolo import read_yolo
from huale.errors import ConfigError, DataError

__all__ = ["detect_format", "load_dataset", "load_image_folder", "load_image_list"]

LAYOUTS = (
    "expected a COCO .json file, a YOLO data .yaml, a VOC folder (with Annotations/, "
    "JPEGImages/, ImageSets/Main/) or a VOCdevkit holding one, or a folder with <split>.json"
)


def detect_format(source: str | Path, split: str | None = None) -> str:
    """``"voc"``, ``"coco"`` or ``"yolo"`` for a dataset file or folder (see module docstring).

    For a folder, COCO means ``<split>.json`` is in it (any ``.json`` when ``split`` is None).
    """
    source = Path(source)
    if source.is_file():
        suffix = source.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix in (".yaml", ".yml"):
            return "yolo"
        raise DataError(source, f"unknown dataset file type {suffix!r}; {LAYOUTS}")
    if not source.is_dir():
        raise DataError(source, "dataset not found")
    if _is_voc(source):
        return "voc"
    if (source / f"{split}.json").is_file() if split else any(source.glob("*.json")):
        return "coco"
    if _yaml_files(source):
        return "yolo"
    jsons = sorted(p.name for p in source.glob("*.json"))
    found = f" (found {', '.join(jsons)}, but no {split}.json)" if jsons else ""
    raise DataError(source, f"unrecognised dataset layout{found}; {LAYOUTS}")


def load_dataset(
    source: str | Path,
    split: str = "train",
    *,
    class_names: Sequence[str] | None = None,
    image_root: str | Path | None = None,
    fallback_ids: Mapping[str, int] | None = None,
) -> DetectionDataset:
    """Read split ``split`` of the dataset at ``source``, whatever its layout.

    ``image_root`` overrides where COCO images are looked up (COCO only). The dataset's
    ``category_ids`` are the file's own ids (COCO category ids, YOLO class indices; 1..C for
    VOC); a class of ``class_names`` the file has no id for gets ``fallback_ids[name]`` (e.g.
    the ids a checkpoint stores) when given.
    """
    source = Path(source)
    kind = detect_format(source, split)
    if image_root is not None and kind != "coco":
        raise ConfigError(f"image_root applies to COCO datasets only, {source} is {kind}")
    if kind == "voc":
        dataset = read_voc(source, split, class_names=class_names)
        if fallback_ids:
            dataset.category_ids = assign_category_ids(dataset.class_names, {}, fallback_ids)
        return dataset
    if kind == "yolo":
        return read_yolo(
            _yolo_yaml(source), split, class_names=class_names, fallback_ids=fallback_ids
        )
    json_file = source if source.is_file() else source / f"{split}.json"
    return read_coco(json_file, image_root, class_names=class_names, fallback_ids=fallback_ids)


def load_image_folder(folder: str | Path, *, class_names: Sequence[str] = ()) -> DetectionDataset:
    """Every image under ``folder`` (recursive, sorted) as an unlabeled dataset.

    Image ids are paths relative to ``folder`` (posix, with suffix); sizes come from the image
    headers. Files that cannot be read as images are skipped and counted in the report.
    """
    folder = Path(folder)
    report = LoadReport(source=str(folder))
    records = []
    for path in list_images(folder):
        try:
            width, height = image_size(path)
        except DataError as exc:
            report.skipped.append((str(path), exc.problem))
            continue
        records.append(ImageRecord(path.relative_to(folder).as_posix(), path, width, height))
    if not records:
        raise DataError(folder, "no readable images found in the folder")
    report.images = len(records)
    report.log()
    return DetectionDataset(records, class_names, report=report)


def load_image_list(txt_file: str | Path, *, class_names: Sequence[str] = ()) -> DetectionDataset:
    """The images listed in ``txt_file`` (one path per line) as an unlabeled dataset.

    Relative paths are relative to the list's folder; blank lines and ``#`` comments are
    ignored. Image ids are paths relative to the list's folder (posix, with suffix) or, for
    images elsewhere, the absolute path. A listed file that is missing or unreadable is a
    :class:`DataError`.
    """
    txt_file = Path(txt_file)
    entries = read_list_file(txt_file, what="image list")
    base = txt_file.parent
    records = []
    seen: set[str] = set()
    for line in entries:
        path = Path(os.path.normpath(base / line))
        try:
            image_id = path.relative_to(base).as_posix()
        except ValueError:
            image_id = path.resolve().as_posix()
        if image_id in seen:
            raise DataError(txt_file, f"image {line!r} is listed twice")
        seen.add(image_id)
        width, height = image_size(path)
        records.append(ImageRecord(image_id, path, width, height))
    report = LoadReport(source=str(txt_file), images=len(records))
    report.log()
    return DetectionDataset(records, class_names, report=report)


def _is_voc(folder: Path) -> bool:
    try:
        voc_year_folder(folder)
    except DataError:
        return False
    return True


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml"))


def _yolo_yaml(source: Path) -> Path:
    if source.is_file():
        return source
    if (source / "data.yaml").is_file():
        return source / "data.yaml"
    candidates = _yaml_files(source)
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates)
        raise DataError(source, f"several yaml files ({names}); pass the dataset yaml itself")
    return candidates[0]
