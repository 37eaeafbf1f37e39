"""The strategy interface: score a pool from prediction records, rank it, pick a budget.

A strategy implements :meth:`Strategy.score` (per-image scores, higher = more worth labeling,
plus per-image explanations) and declares in :class:`Needs` what the scoring run must produce.
Multi-stage strategies (CALD, HUALE, an uncertainty stage followed by core-set) override
:meth:`Strategy.select` instead; the engine only ever calls ``needs`` and ``select``, never a
strategy by name.

Ties [INF]: images with equal scores are ordered by a seeded random draw per image
(:func:`image_uniform` of ``context.seed`` and the image id), never by file name, so a weak
model whose scores tie does not pick consecutive frames of one video. :func:`warn_if_tied` warns
when most candidates share one score.

``records`` is a list of :class:`PredictionRecord` or a :class:`~huale.predictions.RecordSource`
(records streamed from scoring shards). Strategies make passes over it (``for record in
records``) keeping only scalars, and load full records only for the candidates a later stage
needs (:func:`load_records`), so memory stays flat in the pool size.
"""

from __future__ import annotations

import logging
import zlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from huale.errors import ConfigError
from huale.predictions import Detections, Needs, PredictionRecord, RecordSource

Records = Sequence[PredictionRecord] | RecordSource

log = logging.getLogger(__name__)

TIE_WARNING_SHARE = 0.5  # warn when more than this share of >= TIE_WARNING_MIN candidates tie
TIE_WARNING_MIN = 4


@dataclass
class SelectionContext:
    """Facts about the labeled set and the run that strategies may use.

    labeled_class_counts: (C,) GT boxes per class in the labeled set.
    num_labeled_images: number of labeled images (CALD's per-image class distribution).
    labeled_features: (L, D) features of the labeled images (core-set), if requested.
    class_quality: (C,) in [0, 1], quality of the current model per class, if requested.
    """

    num_classes: int
    class_names: list[str]
    labeled_class_counts: np.ndarray | None = None
    num_labeled_images: int | None = None
    labeled_features: np.ndarray | None = None
    class_quality: np.ndarray | None = None
    seed: int = 0

    def class_name(self, label: int) -> str:
        """Name of class ``label`` (1..C); the number as text when it is out of range."""
        return self.class_names[label - 1] if 0 < label <= len(self.class_names) else str(label)


@dataclass(slots=True)  # one per pool image stays in memory: no per-instance __dict__
class ObjectExplanation:
    """One uncertain object of an image: why the image was picked.

    box: xyxy original pixels; uncertainty: the object's aggregated value; levels: optional
    per-level values (e.g. {"scale": {...}, "class": {...}}) for hierarchical strategies.
    """

    box: list[float]
    label: int
    class_name: str
    uncertainty: float
    levels: dict = field(default_factory=dict)


def explain_box(
    dets: Detections, index: int, value: float, context: SelectionContext, **levels
) -> ObjectExplanation:
    """An :class:`ObjectExplanation` for detection ``index`` of ``dets``; ``levels`` as given."""
    label = int(dets.labels[index])
    return ObjectExplanation(
        box=[float(x) for x in dets.boxes[index]],
        label=label,
        class_name=context.class_name(label),
        uncertainty=float(value),
        levels=levels,
    )


@dataclass(slots=True)
class ImageScore:
    """A strategy's verdict on one image."""

    image_id: str
    score: float
    stage: str = "ranked"  # the last stage the image reached, e.g. "stage1", "stage2"
    objects: list[ObjectExplanation] = field(default_factory=list)


@dataclass
class Selection:
    """Ranked pool (best first) and the chosen prefix."""

    ranked: list[ImageScore]
    selected: list[str]

    @property
    def scores(self) -> dict[str, float]:
        return {s.image_id: s.score for s in self.ranked}


_REDUCERS = {"sum": np.sum, "mean": np.mean, "avg": np.mean, "max": np.max}


def aggregate(values: Sequence[float] | np.ndarray, how: str) -> float:
    """sum | mean (or avg, HUA's name) | max of ``values`` (K,) as a float; 0 for none."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 0.0
    return float(_REDUCERS[how](values))


def image_uniform(seed: int, image_id: str) -> float:
    """A uniform number in [0, 1) determined by ``(seed, image_id)`` alone.

    Seeded from CRC32 (stable across processes, unlike Python's salted ``hash``), so the order of
    the pool never depends on the order of the records or on which other images are in it.
    """
    key = [zlib.crc32(str(int(seed)).encode()), zlib.crc32(image_id.encode())]
    return float(np.random.default_rng(key).random())


def tie_order(seed: int, image_id: str) -> tuple[float, str]:
    """Sort key among equal scores: a seeded random draw (never the file name), then the id."""
    return image_uniform(seed, image_id), image_id


def rank(scores: Sequence[ImageScore], seed: int = 0) -> list[ImageScore]:
    """Sort by descending score (non-finite scores last); ties in a seeded random order."""
    return sorted(
        scores,
        key=lambda s: (-s.score if np.isfinite(s.score) else np.inf, *tie_order(seed, s.image_id)),
    )


def warn_if_tied(scores: Sequence[ImageScore], strategy: str, what: str = "candidates") -> int:
    """Warn when most of ``scores`` share one value; returns the size of the largest tie."""
    values = Counter(float(s.score) for s in scores)
    if not values:
        return 0
    value, count = values.most_common(1)[0]
    if len(scores) >= TIE_WARNING_MIN and count > TIE_WARNING_SHARE * len(scores):
        log.warning(
            "%s: %d of %d %s share the score %g: the model tells them apart too little (a weak "
            "model?); they are ordered at random (seeded)",
            strategy, count, len(scores), what, value,
        )
    return count


def take_budget(
    ranked: Sequence[ImageScore], budget: int, *, costs: dict[str, int] | None = None
) -> list[str]:
    """The first images of ``ranked`` within ``budget``.

    costs: per-image cost (e.g. predicted boxes for a box budget); None counts images. With
    costs, images are taken in rank order while the running total stays within the budget
    (an image that would overshoot is skipped and later, cheaper ones may still fit).
    """
    if budget < 0:
        raise ConfigError(f"budget must be >= 0, got {budget}")
    if costs is None:
        return [s.image_id for s in ranked[:budget]]
    chosen, total = [], 0
    for s in ranked:
        cost = costs.get(s.image_id, 0)
        if total + cost <= budget:
            chosen.append(s.image_id)
            total += cost
    return chosen


def view_of(
    record: PredictionRecord,
    view: str,
    strategy: str,
    *,
    prenms: bool = False,
    min_score: float | None = None,
) -> Detections:
    """The post-NMS detections of ``view`` in ``record`` (its pre-NMS boxes with ``prenms``),
    only those with ``scores >= min_score`` when it is given.

    Raises ConfigError naming the strategy when the scoring run did not produce that view.
    """
    views = record.prenms if prenms else record.views
    if view not in views:
        kind = "pre-NMS boxes of view" if prenms else "view"
        raise ConfigError(
            f"strategy {strategy!r} needs the {kind} {view!r}, but the prediction record of "
            f"image {record.image_id!r} has only {sorted(views)}; score the pool with the "
            f"strategy's `needs`"
        )
    dets = views[view]
    return dets if min_score is None else dets.select(dets.scores >= min_score)


def record_ids(records: Records) -> list[str]:
    """Image ids of ``records`` in order."""
    if isinstance(records, RecordSource):
        return list(records.ids)
    return [r.image_id for r in records]


def records_by_id(records: Sequence[PredictionRecord]) -> dict[str, PredictionRecord]:
    """``image_id -> record``; a ConfigError on duplicate image ids."""
    by_id = {r.image_id: r for r in records}
    if len(by_id) != len(records):
        raise ConfigError("the pool holds duplicate image ids; each image must appear once")
    return by_id


def load_records(records: Records, ids: Sequence[str]) -> list[PredictionRecord]:
    """The full records of ``ids`` (in that order): a few candidates of a large pool."""
    if isinstance(records, RecordSource):
        return records.load(ids)
    by_id = records_by_id(records)
    return [by_id[i] for i in ids]


def record_features(records: Records) -> tuple[list[str], np.ndarray | None]:
    """``(ids, (N, D) float32 features)`` of ``records`` in order; None if any is missing."""
    if isinstance(records, RecordSource):
        return records.features()
    ids = [r.image_id for r in records]
    if not records:
        return ids, np.zeros((0, 0), np.float32)
    if any(r.feature is None for r in records):
        return ids, None
    return ids, np.stack([np.asarray(r.feature, np.float32).reshape(-1) for r in records])


class RecordsWithout:
    """``records`` less the images ``excluded``, as a :class:`RecordSource` (a lazy view)."""

    def __init__(self, records: Records, excluded: Iterable[str]):
        self.records = records
        self.excluded = set(excluded)

    @property
    def ids(self) -> list[str]:
        return [i for i in record_ids(self.records) if i not in self.excluded]

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[PredictionRecord]:
        return (r for r in self.records if r.image_id not in self.excluded)

    def load(self, ids: Sequence[str]) -> list[PredictionRecord]:
        if self.excluded.intersection(ids):
            raise KeyError("asked for records this view leaves out")
        return load_records(self.records, ids)

    def features(self) -> tuple[list[str], np.ndarray | None]:
        ids, features = record_features(self.records)
        keep = [k for k, i in enumerate(ids) if i not in self.excluded]
        return [ids[k] for k in keep], None if features is None else features[keep]


class Strategy(ABC):
    """Base class of every selection strategy (see module docstring)."""

    name: str = ""

    @property
    def needs(self) -> Needs:
        return Needs()

    @abstractmethod
    def score(self, records: Records, context: SelectionContext) -> list[ImageScore]:
        """One :class:`ImageScore` per record (higher = label first), in one pass."""

    def select(
        self,
        records: Records,
        budget: int,
        context: SelectionContext,
        *,
        costs: dict[str, int] | None = None,
    ) -> Selection:
        """Rank all records by :meth:`score` and take the budget."""
        ranked = rank(self.score(records, context), context.seed)
        return Selection(ranked=ranked, selected=take_budget(ranked, budget, costs=costs))
