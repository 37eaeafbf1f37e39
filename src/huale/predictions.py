"""Compact per-image prediction records: what pool scoring keeps of a detector's output.

A record holds no pixels, only the detections of each *view* of the image (the original and its
augmented copies), so that memory stays flat as the pool grows and records can be sharded to disk.

Coordinates: every view's boxes are in the ORIGINAL image's pixel frame. Views whose geometry
changes are mapped back: ``flip`` by x -> W - x (x1/x2 swapped), ``resize`` by 1/scale,
``rotate`` by the inverse rotation (enclosing box of the rotated corners, clipped). ``cutout``
keeps the geometry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

ORIGINAL = "orig"
FLIP = "flip"
CUTOUT = "cutout"
RESIZE = "resize"
ROTATE = "rotate"
VIEW_NAMES = (ORIGINAL, FLIP, CUTOUT, RESIZE, ROTATE)


@dataclass
class Detections:
    """Detections of one view (or the pre-NMS boxes of one view).

    boxes: (K, 4) float32 xyxy, original-image pixels; labels: (K,) int64 in 1..C;
    scores: (K,) float32; class_probs: (K, C+1) float32 softmax posterior of the producing RoI
    (column 0 = background); max_fg_prob: (K,) float32 = p̂; fpn_level: (K,) int64.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    class_probs: np.ndarray
    max_fg_prob: np.ndarray
    fpn_level: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def empty(cls, num_classes: int) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            labels=np.zeros((0,), np.int64),
            scores=np.zeros((0,), np.float32),
            class_probs=np.zeros((0, num_classes + 1), np.float32),
            max_fg_prob=np.zeros((0,), np.float32),
            fpn_level=np.zeros((0,), np.int64),
        )

    @classmethod
    def build(
        cls,
        boxes: np.ndarray,
        labels: np.ndarray,
        scores: np.ndarray,
        num_classes: int,
        *,
        class_probs: np.ndarray | None = None,
        max_fg_prob: np.ndarray | None = None,
        fpn_level: np.ndarray | None = None,
    ) -> Detections:
        """Detections of a detector that may lack some fields, with the documented stand-ins:

        class_probs None: :func:`score_posterior` (the score on the label, the rest on the
        background); max_fg_prob None: the largest foreground posterior; fpn_level None:
        :func:`fpn_level_from_boxes`. Arrays are copied to the record dtypes.
        """
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        labels = np.asarray(labels, np.int64).reshape(-1)
        scores = np.asarray(scores, np.float32).reshape(-1)
        if class_probs is None:
            class_probs = score_posterior(labels, scores, num_classes)
        class_probs = np.asarray(class_probs, np.float32).reshape(-1, num_classes + 1)
        if max_fg_prob is None:
            max_fg_prob = class_probs[:, 1:].max(axis=1) if len(labels) else np.zeros(0)
        if fpn_level is None:
            fpn_level = fpn_level_from_boxes(boxes)
        return cls(
            boxes=np.array(boxes, np.float32),
            labels=np.array(labels, np.int64),
            scores=np.array(scores, np.float32),
            class_probs=np.array(class_probs, np.float32),
            max_fg_prob=np.array(max_fg_prob, np.float32).reshape(-1),
            fpn_level=np.array(fpn_level, np.int64).reshape(-1),
        )

    def select(self, keep: np.ndarray) -> Detections:
        """The detections at boolean mask or index array ``keep``."""
        return Detections(
            self.boxes[keep], self.labels[keep], self.scores[keep], self.class_probs[keep],
            self.max_fg_prob[keep], self.fpn_level[keep],
        )


# Stand-ins for what a detector cannot give (docs/method.md, "Detectors other than huale's").
# The FPN rule of Lin et al. (FPN, eq. 1) as torchvision's LevelMapper applies it (its eps too)
FPN_CANONICAL_LEVEL = 4
FPN_CANONICAL_SIZE = 224.0
FPN_LEVEL_RANGE = (2, 5)
_FPN_EPS = 1e-6


def fpn_level_from_boxes(boxes: np.ndarray) -> np.ndarray:
    """Stand-in scale level of boxes (K, 4) xyxy: k = floor(4 + log2(sqrt(wh) / 224)) clamped
    to [2, 5], as a ResNet-50-FPN Faster R-CNN would pool a box of that size. (K,) int64."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    with np.errstate(divide="ignore"):
        level = np.floor(
            FPN_CANONICAL_LEVEL + np.log2(np.sqrt(area) / FPN_CANONICAL_SIZE) + _FPN_EPS
        )
    low, high = FPN_LEVEL_RANGE
    return np.clip(np.nan_to_num(level, neginf=low), low, high).astype(np.int64)


def score_posterior(labels: np.ndarray, scores: np.ndarray, num_classes: int) -> np.ndarray:
    """Stand-in class posterior of detections that carry only a score: (K, C+1) float32 with
    the score s on the detection's label, 1 - s on the background (column 0), 0 elsewhere.

    Its normalised entropy is the binary entropy of s over log(C+1) (the entropy fallback)."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    scores = np.clip(np.asarray(scores, np.float32).reshape(-1), 0.0, 1.0)
    probs = np.zeros((labels.shape[0], num_classes + 1), np.float32)
    rows = np.arange(labels.shape[0])
    probs[rows, 0] = 1.0 - scores
    probs[rows, labels] = scores
    return probs


@dataclass
class PredictionRecord:
    """Everything a strategy may use about one pool image.

    views: view name (see ``VIEW_NAMES``) -> its post-NMS detections.
    prenms: view name -> pre-NMS argmax-class boxes of RoIs with p̂ above a threshold (optional).
    feature: (D,) float32 pooled backbone feature of the original view (optional).
    """

    image_id: str
    width: int
    height: int
    views: dict[str, Detections]
    prenms: dict[str, Detections] = field(default_factory=dict)
    feature: np.ndarray | None = None

    @property
    def original(self) -> Detections:
        return self.views[ORIGINAL]


@runtime_checkable
class RecordSource(Protocol):
    """A pool's records without holding them all in memory (e.g. read back from scoring shards).

    ``len`` and ``ids`` (pool order), ``iter`` (a fresh pass over the records, pool order),
    ``load(ids)``: the full records of a few images (in the order asked), ``features()``:
    ``(ids in pool order, (N, D) float32 pooled features or None when not scored)``.
    Strategies take a list of records or a source (:mod:`huale.strategies.base`).
    """

    @property
    def ids(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[PredictionRecord]: ...

    def load(self, ids: Sequence[str]) -> list[PredictionRecord]: ...

    def features(self) -> tuple[list[str], np.ndarray | None]: ...


@dataclass(frozen=True)
class Needs:
    """What pool scoring must produce for a strategy.

    views: which views to predict (``huale.predictions.VIEW_NAMES``); prenms: keep pre-NMS boxes
    (above ``prenms_threshold``); features: pooled backbone features; labeled_features: also the
    features of the labeled images (core-set); class_quality: per-class detection quality of the
    current model measured on the labeled set (class-difficulty weights).
    """

    views: tuple[str, ...] = (ORIGINAL,)
    prenms: bool = False
    prenms_threshold: float = 0.3
    features: bool = False
    labeled_features: bool = False
    class_quality: bool = False

    def union(self, other: Needs) -> Needs:
        views = tuple(dict.fromkeys(self.views + other.views))
        return Needs(
            views=views,
            prenms=self.prenms or other.prenms,
            prenms_threshold=min(self.prenms_threshold, other.prenms_threshold),
            features=self.features or other.features,
            labeled_features=self.labeled_features or other.labeled_features,
            class_quality=self.class_quality or other.class_quality,
        )
