"""The one internal dataset type every reader produces.

A :class:`DetectionDataset` is a list of :class:`ImageRecord` (annotations only, no pixels) plus
the class names. Indexing it loads the image and returns ``(image, target)`` in the format
torchvision detectors take:

- ``image``: float tensor ``(3, H, W)`` in [0, 1]
- ``target["boxes"]``: ``(N, 4)`` float32 xyxy in pixels
- ``target["labels"]``: ``(N,)`` int64 in 1..C (0 is background)
- ``target["difficult"]``: ``(N,)`` bool
- ``target["image_id"]``: the record's stable string id

Labels 1..C are internal. ``category_ids[label - 1]`` is the id the user's file gives that class
(a COCO ``category_id``, a YOLO class index; 1..C where the format has no ids, such as VOC):
every file huale writes for the user (COCO results, ``selected_coco.json``) uses those ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from huale.data.images import load_image_tensor
from huale.errors import DataError

log = logging.getLogger(__name__)


# one set of empty annotation arrays shared by every record without objects (a pool of 1M
# unlabeled images would otherwise hold 3M arrays); nothing is ever written into them
_NO_BOXES = np.zeros((0, 4), np.float32)
_NO_LABELS = np.zeros((0,), np.int64)
_NO_DIFFICULT = np.zeros((0,), bool)


@dataclass(frozen=True, slots=True, init=False)
class ImageRecord:
    """One image and its annotations.

    boxes: (N, 4) float32 xyxy pixels; labels: (N,) int64 in 1..C; difficult: (N,) bool.
    ``path`` is stored as a string and handed out as a :class:`~pathlib.Path`: a pool keeps one
    record per image, and a ``Path`` object costs ~0.6 KB more than its string.
    """

    image_id: str
    _path: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray

    def __init__(
        self,
        image_id: str,
        path: str | Path | None = None,
        width: int | None = None,
        height: int | None = None,
        boxes: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        difficult: np.ndarray | None = None,
        *,
        _path: str | None = None,  # what dataclasses.replace passes
    ):
        path = _path if path is None else path
        if path is None or width is None or height is None:
            raise TypeError("ImageRecord needs image_id, path, width and height")
        values = {
            "image_id": image_id, "_path": str(path), "width": width, "height": height,
            "boxes": _NO_BOXES if boxes is None else boxes,
            "labels": _NO_LABELS if labels is None else labels,
            "difficult": _NO_DIFFICULT if difficult is None else difficult,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen

    @property
    def path(self) -> Path:
        return Path(self._path)

    def with_path(self, path: str | Path) -> ImageRecord:
        """The same record pointing at ``path``."""
        return ImageRecord(self.image_id, path, self.width, self.height,
                           self.boxes, self.labels, self.difficult)

    @property
    def num_boxes(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class LoadReport:
    """What a reader fixed or skipped, so nothing is lost silently."""

    source: str = ""
    images: int = 0
    boxes: int = 0
    clipped_boxes: int = 0
    dropped_zero_area: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    notes: dict[str, int] = field(default_factory=dict)  # other fixes: what -> how many

    def note(self, what: str, count: int = 1) -> None:
        """Count a fix that is neither a clipped nor a dropped box (e.g. "sizes read from header")."""
        self.notes[what] = self.notes.get(what, 0) + count

    def summary(self) -> str:
        parts = [f"{self.images} images", f"{self.boxes} boxes"]
        if self.clipped_boxes:
            parts.append(f"{self.clipped_boxes} boxes clipped to the image")
        if self.dropped_zero_area:
            parts.append(f"{self.dropped_zero_area} zero-area boxes dropped")
        if self.skipped:
            parts.append(f"{len(self.skipped)} files skipped")
        parts.extend(f"{count} {what}" for what, count in self.notes.items())
        return f"{self.source}: " + ", ".join(parts)

    def log(self) -> None:
        noted = self.clipped_boxes or self.dropped_zero_area or self.skipped or self.notes
        level = logging.WARNING if noted else logging.INFO
        log.log(level, self.summary())
        for file, reason in self.skipped[:20]:
            log.warning("skipped %s: %s", file, reason)


def sanitize_boxes(
    boxes: np.ndarray,
    width: int,
    height: int,
    report: LoadReport,
    *keep_aligned: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Clip ``boxes`` (N, 4) xyxy to the image and drop zero-area ones, counting both in ``report``.

    ``keep_aligned`` arrays (labels, difficult, ...) are filtered with the boxes.
    Returns ``(boxes, *keep_aligned)``.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return (boxes, *keep_aligned)
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
    report.clipped_boxes += int(np.any(clipped != boxes, axis=1).sum())
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    report.dropped_zero_area += int((~keep).sum())
    return (clipped[keep], *(np.asarray(a)[keep] for a in keep_aligned))


class DetectionDataset(Dataset):
    """Records plus class names; yields ``(image, target)`` (see module docstring).

    ``class_names[i]`` is the name of label ``i + 1`` and ``category_ids[i]`` its id in the
    user's files (default ``i + 1``). ``transforms`` is called as
    ``transforms(image, target) -> (image, target)``.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        class_names: Sequence[str],
        *,
        category_ids: Sequence[int] | None = None,
        transforms: Callable | None = None,
        report: LoadReport | None = None,
    ):
        self.records = list(records)
        self.class_names = list(class_names)
        self.category_ids = check_category_ids(category_ids, len(self.class_names))
        self.transforms = transforms
        self.report = report or LoadReport(images=len(self.records))
        ids = [r.image_id for r in self.records]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DataError(self.report.source or "dataset", f"duplicate image id {dup!r}")
        self._index = {image_id: i for i, image_id in enumerate(ids)}
        num_classes = len(self.class_names)
        for record in self.records:
            if record.num_boxes and (record.labels.min() < 1 or record.labels.max() > num_classes):
                raise DataError(record.path, f"label outside 1..{num_classes}")

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        """Number of object classes C (background excluded)."""
        return len(self.class_names)

    @property
    def ids(self) -> list[str]:
        return [r.image_id for r in self.records]

    @property
    def num_boxes(self) -> int:
        """Ground-truth boxes of all images (difficult ones included: a labeler draws them too)."""
        return sum(r.num_boxes for r in self.records)

    def index_of(self, image_id: str) -> int:
        return self._index[image_id]

    def record(self, image_id: str) -> ImageRecord:
        return self.records[self._index[image_id]]

    def subset(self, image_ids: Iterable[str], *, transforms: Callable | None = None) -> DetectionDataset:
        """A dataset of the given ids (in the given order), same class names."""
        missing = [i for i in image_ids if i not in self._index]
        if missing:
            raise KeyError(f"unknown image ids: {missing[:5]}")
        return DetectionDataset(
            [self.records[self._index[i]] for i in image_ids],
            self.class_names,
            category_ids=self.category_ids,
            transforms=transforms if transforms is not None else self.transforms,
            report=self.report,
        )

    def concat(self, other: DetectionDataset) -> DetectionDataset:
        """This dataset followed by ``other`` (same class names; image ids must not collide)."""
        if other.class_names != self.class_names:
            raise DataError(
                other.report.source or "dataset",
                f"classes {other.class_names} differ from {self.class_names}; cannot combine",
            )
        if other.category_ids != self.category_ids:
            raise DataError(
                other.report.source or "dataset",
                f"category ids {other.category_ids} differ from {self.category_ids}; cannot combine",
            )
        return DetectionDataset(
            self.records + other.records, self.class_names, category_ids=self.category_ids,
            transforms=self.transforms,
        )

    def with_transforms(self, transforms: Callable | None) -> DetectionDataset:
        return DetectionDataset(
            self.records, self.class_names, category_ids=self.category_ids, transforms=transforms,
            report=self.report,
        )

    def category_id(self, label: int) -> int:
        """The user's category id of internal label ``label`` (1..C)."""
        return self.category_ids[int(label) - 1]

    def without_classes(self, names: Iterable[str]) -> DetectionDataset:
        """This dataset without the classes ``names``: their boxes are removed, the other
        classes keep their names and category ids and are numbered 1..C' in the same order."""
        drop = set(names)
        unknown = drop - set(self.class_names)
        if unknown:
            raise KeyError(f"unknown classes: {sorted(unknown)}")
        keep = [i for i, name in enumerate(self.class_names) if name not in drop]
        new_label = np.zeros(self.num_classes + 1, dtype=np.int64)
        new_label[[i + 1 for i in keep]] = np.arange(1, len(keep) + 1)
        records = []
        for r in self.records:
            kept = new_label[r.labels] > 0
            records.append(
                ImageRecord(r.image_id, r.path, r.width, r.height, r.boxes[kept],
                            new_label[r.labels[kept]], r.difficult[kept])
            )
        return DetectionDataset(
            records, [self.class_names[i] for i in keep],
            category_ids=[self.category_ids[i] for i in keep], transforms=self.transforms,
            report=self.report,
        )

    def target(self, i: int) -> dict:
        record = self.records[i]
        return {
            "boxes": torch.as_tensor(record.boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(record.labels, dtype=torch.int64),
            "difficult": torch.as_tensor(record.difficult, dtype=torch.bool),
            "image_id": record.image_id,
        }

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict]:
        record = self.records[i]
        image = load_image_tensor(record.path)
        if image.shape[1:] != (record.height, record.width):
            raise DataError(
                record.path,
                f"image is {image.shape[2]}x{image.shape[1]} but its annotation says "
                f"{record.width}x{record.height}",
            )
        target = self.target(i)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def class_counts(self) -> np.ndarray:
        """(C,) number of boxes per class."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for record in self.records:
            np.add.at(counts, record.labels - 1, 1)
        return counts


def check_category_ids(category_ids: Sequence[int] | None, num_classes: int) -> list[int]:
    """``category_ids`` as a list of C distinct integers (``1..C`` when None)."""
    if category_ids is None:
        return list(range(1, num_classes + 1))
    values = list(category_ids)
    if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in values):
        raise ValueError(f"category_ids must be integers, got {values}")
    ids = [int(i) for i in values]
    if len(ids) != num_classes or len(set(ids)) != len(ids):
        raise ValueError(f"category_ids must be {num_classes} distinct integers, got {ids}")
    return ids


def assign_category_ids(
    class_names: Sequence[str],
    file_ids: Mapping[str, int],
    fallback_ids: Mapping[str, int] | None = None,
) -> list[int]:
    """The category id of each class: the file's id of its name (``file_ids``), else
    ``fallback_ids[name]`` (e.g. a checkpoint's ids) when free, else the next id above all others."""
    ids: list[int | None] = [file_ids.get(name) for name in class_names]
    taken = {i for i in ids if i is not None}
    fallback_ids = fallback_ids or {}
    for k, name in enumerate(class_names):
        if ids[k] is None and fallback_ids.get(name) is not None and fallback_ids[name] not in taken:
            ids[k] = int(fallback_ids[name])
            taken.add(ids[k])
    for k in range(len(ids)):
        if ids[k] is None:
            ids[k] = max(taken, default=0) + 1
            taken.add(ids[k])
    return [int(i) for i in ids]


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """DataLoader ``collate_fn``: keep images and targets as lists (sizes differ)."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)
