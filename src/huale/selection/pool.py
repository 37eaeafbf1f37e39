"""The images ``huale select`` chooses from, and the ones it must leave out (already labeled).

Pool sources (:func:`load_pool`): a ``.txt`` image list, a folder of images (no annotations
needed), or any dataset :func:`huale.data.load_dataset` reads (its annotations are ignored).

Already-labeled images are removed from the pool by **resolved absolute file path**: a pool
image is labeled when its file is the file of an image of the labeled dataset (symlinks and
``..`` resolved). An id list (``--labeled-ids``) names images one per line, each line matching a
pool image whose id equals it or whose file it is (relative lines are resolved against the
list's folder).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from huale.data.loading import detect_format, load_dataset, load_image_folder, load_image_list
from huale.data.records import DetectionDataset, ImageRecord
from huale.data.textfiles import read_list_file
from huale.errors import DataError

log = logging.getLogger(__name__)

LIST_SUFFIXES = (".txt",)


def load_pool(
    source: str | Path,
    class_names: Sequence[str],
    *,
    split: str = "train",
    category_ids: Sequence[int] | None = None,
) -> DetectionDataset:
    """The pool at ``source`` as a dataset without annotations, labelled with ``class_names``
    (whose ids in the user's files are ``category_ids``, default 1..C).

    A ``.txt`` file is an image list, a folder holding a dataset layout (VOC, ``<split>.json``,
    YOLO yaml) is that dataset, any other folder is a folder of images; ``.json``/``.yaml`` files
    are datasets. Dataset annotations are dropped: the pool is treated as unlabeled.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(
            source, "pool not found (expected an image folder, a .txt list or a dataset)"
        )
    if source.is_file() and source.suffix.lower() in LIST_SUFFIXES:
        found = load_image_list(source)
    elif source.is_dir() and not _is_dataset_folder(source, split):
        found = load_image_folder(source)
    else:
        found = load_dataset(source, split)
    # no annotations: every record shares the same empty arrays (ImageRecord's defaults)
    records = [ImageRecord(r.image_id, r.path, r.width, r.height) for r in found.records]
    return DetectionDataset(records, class_names, category_ids=category_ids, report=found.report)


def load_labeled(
    source: str | Path,
    class_names: Sequence[str],
    *,
    split: str = "train",
    category_ids: Sequence[int] | None = None,
) -> DetectionDataset:
    """The labeled dataset at ``source`` with labels mapped onto ``class_names`` (by name)."""
    fallback = None if category_ids is None else dict(zip(class_names, category_ids, strict=True))
    return load_dataset(source, split, class_names=class_names, fallback_ids=fallback)


def read_id_list(path: str | Path) -> list[str]:
    """Non-empty, non-comment lines of a text file of image ids or paths."""
    return read_list_file(path, what="labeled id list")


def labeled_in_pool(
    pool: DetectionDataset,
    labeled: DetectionDataset | None = None,
    labeled_ids: Sequence[str] = (),
    ids_folder: str | Path = ".",
) -> list[str]:
    """Ids of the pool images that are already labeled (see module docstring), in pool order."""
    labeled_files = {_resolved(r.path) for r in labeled.records} if labeled is not None else set()
    names = set(labeled_ids)
    labeled_files |= {_resolved(Path(ids_folder) / line) for line in labeled_ids}
    return [
        r.image_id
        for r in pool.records
        if r.image_id in names or _resolved(r.path) in labeled_files
    ]


def unmatched_ids(
    pool: DetectionDataset, labeled_ids: Sequence[str], ids_folder: str | Path = "."
) -> list[str]:
    """Lines of an id list naming no pool image, by id or by file: images outside the pool, or
    typos that leave a labeled image selectable."""
    ids = {r.image_id for r in pool.records}
    files = {_resolved(r.path) for r in pool.records}
    return [
        line
        for line in labeled_ids
        if line not in ids and _resolved(Path(ids_folder) / line) not in files
    ]


def pool_root(source: str | Path) -> Path:
    """The folder image paths of the pool are reported relative to: the pool folder itself, or
    the folder of a list / annotation file (absolute, symlinks not resolved)."""
    source = Path(os.path.abspath(source))
    return source if source.is_dir() else source.parent


def _resolved(path: str | Path) -> str:
    return str(Path(path).resolve())


def _is_dataset_folder(folder: Path, split: str) -> bool:
    try:
        detect_format(folder, split)
    except DataError:
        return False
    return True
