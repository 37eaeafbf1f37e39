"""CALD (Yu et al., CVPR-W 2022; we1pingyu/CALD ``cald_train.py``), method.md §3, all [CODE].

Stage 1 (consistency): for each augmented view a and each reference detection k of the original,
``j* = argmax_j IoU(b_k, b'_j)`` (every view is already in the original frame) and
``M_k = IoU + ½(1 − JS(s_k, s'_j*))(p̂_k + p̂'_j*)``;
``C_a = min(1, min_k |M_k − β|)`` (0 if view a has no detections); ``C = mean_a C_a``
(0 if the original has no detections). Images are ranked by ascending C — stage-1 score ``−C`` —
and the first ⌊μ·B⌋ form the pool. More than 40 reference detections: the 50 indices
``round(linspace(0, K−1, 50))`` are kept (CALD's code, duplicates included).

Stage 2 (class balance): ``v_c`` = mean over the views {original (subsampled), each aug} of the
highest detection score of class c (0 if none); ``u_c`` = mean GT count of class c per labeled
image; ``d = JS(softmax(u), softmax(v))``. Images with ``v = 0`` come first, then descending d.
The stage-2 score is ``d``, plus 1 when ``v = 0`` (``d ≤ ln 2 < 1``, so they rank first).

Deviation [INF]: :class:`Cald` applies the rule shared with ``huale`` and ``hua`` to images whose
original view has no detection (:mod:`huale.strategies.no_detection`: ranked last in a seeded
random order, ``empty_fill_fraction`` of the budget reserved for them, default 0), where CALD's
code ranks them first (C = 0, v = 0); the two stage classes keep CALD's values for such images.
Explanations: stage 1 lists, per augmented view, the reference detection whose agreement is
closest to β (``|M − β|``); stage 2 the best detection of each class the image shows, with
``v_c`` and the labeled set's ``u_c``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from huale.errors import ConfigError
from huale.predictions import CUTOUT, FLIP, ORIGINAL, RESIZE, ROTATE, Detections, PredictionRecord
from huale.strategies.base import (
    ImageScore,
    Needs,
    Records,
    Selection,
    SelectionContext,
    Strategy,
    explain_box,
    view_of,
)
from huale.strategies.cascade import TwoStage
from huale.strategies.checks import check_number
from huale.strategies.divergence import js_divergence, softmax
from huale.strategies.matching import cald_agreement
from huale.strategies.no_detection import NoDetectionRule

log = logging.getLogger(__name__)

CALD_AUGS = (FLIP, CUTOUT, RESIZE, ROTATE)  # CALD's default "FCDR"
MAX_REFERENCE = 40
REFERENCE_SAMPLES = 50


def parse_augs(augs: str | Sequence[str]) -> tuple[str, ...]:
    """Augmented view names from a sequence or a comma-separated string."""
    names = [a.strip() for a in augs.split(",")] if isinstance(augs, str) else list(augs)
    unknown = [a for a in names if a not in CALD_AUGS]
    if not names or unknown:
        raise ConfigError(
            f"augs must be a non-empty subset of {', '.join(CALD_AUGS)}; got {augs!r}"
        )
    return tuple(dict.fromkeys(names))


def reference_detections(dets: Detections) -> Detections:
    """CALD's reference set: all detections, or 50 evenly spaced ones when there are > 40."""
    if len(dets) <= MAX_REFERENCE:
        return dets
    return dets.select(np.round(np.linspace(0, len(dets) - 1, REFERENCE_SAMPLES)).astype(int))


def view_consistency(reference: Detections, augmented: Detections, beta: float) -> float:
    """C_a(x) = min(1, min_k |M_k − β|); 0 when the augmented view has no detections."""
    if len(augmented) == 0:
        return 0.0
    agreement, _ = cald_agreement(reference, augmented)
    return float(min(1.0, np.abs(agreement - beta).min()))


def class_max_scores(dets: Detections, num_classes: int) -> np.ndarray:
    """(C,) highest detection score of each class in one view, 0 for absent classes."""
    out = np.zeros(num_classes)
    np.maximum.at(out, dets.labels.astype(np.int64) - 1, dets.scores.astype(np.float64))
    return out


class CaldConsistency(Strategy):
    """CALD stage 1: score ``−C(x)`` (see the module docstring)."""

    name = "cald_consistency"

    def __init__(self, *, beta: float = 1.3, augs: str | Sequence[str] = CALD_AUGS):
        self.beta = check_number("beta", beta, low=0, high=2)
        self.augs = parse_augs(augs)

    @property
    def needs(self) -> Needs:
        return Needs(views=(ORIGINAL, *self.augs))

    def consistency(self, record: PredictionRecord) -> float:
        """C(x) in [0, 1]."""
        original = view_of(record, ORIGINAL, self.name)
        if len(original) == 0:
            return 0.0
        reference = reference_detections(original)
        return float(
            np.mean(
                [
                    view_consistency(reference, view_of(record, aug, self.name), self.beta)
                    for aug in self.augs
                ]
            )
        )

    def explain(self, record: PredictionRecord, context: SelectionContext) -> list:
        """Per augmented view, the reference detection with the smallest |M − β|."""
        original = view_of(record, ORIGINAL, self.name)
        if len(original) == 0:
            return []
        reference = reference_detections(original)
        out = []
        for aug in self.augs:
            augmented = view_of(record, aug, self.name)
            if len(augmented) == 0:
                continue
            agreement, _ = cald_agreement(reference, augmented)
            k = int(np.argmin(np.abs(agreement - self.beta)))
            gap = float(min(1.0, abs(agreement[k] - self.beta)))
            out.append(explain_box(reference, k, gap, context, view=aug,
                                   agreement=float(agreement[k])))
        return sorted(out, key=lambda o: o.uncertainty)

    def score(
        self, records: Records, context: SelectionContext
    ) -> list[ImageScore]:
        return [
            ImageScore(r.image_id, -self.consistency(r), objects=self.explain(r, context))
            for r in records
        ]


class CaldClassBalance(Strategy):
    """CALD stage 2: score d(x), +1 for images with v(x) = 0 (see the module docstring)."""

    name = "cald_class_balance"

    def __init__(self, *, augs: str | Sequence[str] = CALD_AUGS):
        self.augs = parse_augs(augs)

    @property
    def needs(self) -> Needs:
        return Needs(views=(ORIGINAL, *self.augs))

    def class_vector(self, record: PredictionRecord, num_classes: int) -> np.ndarray:
        """v(x) (C,); zeros when the original view is empty (CALD stops before the augs)."""
        original = view_of(record, ORIGINAL, self.name)
        if len(original) == 0:
            return np.zeros(num_classes)
        per_view = [class_max_scores(reference_detections(original), num_classes)]
        per_view += [
            class_max_scores(view_of(record, a, self.name), num_classes) for a in self.augs
        ]
        return np.mean(per_view, axis=0)

    @staticmethod
    def labeled_distribution(context: SelectionContext) -> np.ndarray:
        """u (C,): mean GT boxes per class per labeled image (zeros, logged, if unknown)."""
        if context.labeled_class_counts is None:
            log.warning("cald: no labeled class counts given; using a uniform labeled distribution")
            return np.zeros(context.num_classes)
        if not context.num_labeled_images:
            raise ConfigError("cald needs context.num_labeled_images (> 0) with the class counts")
        counts = np.asarray(context.labeled_class_counts, dtype=np.float64)
        if counts.shape != (context.num_classes,):
            raise ConfigError(
                f"labeled_class_counts has shape {counts.shape}, expected ({context.num_classes},)"
            )
        return counts / context.num_labeled_images

    def score(
        self, records: Records, context: SelectionContext
    ) -> list[ImageScore]:
        u = self.labeled_distribution(context)
        labeled = softmax(u)
        out = []
        for record in records:
            v = self.class_vector(record, context.num_classes)
            d = float(js_divergence(labeled, softmax(v)))
            objects = []
            original = view_of(record, ORIGINAL, self.name)
            for label in np.unique(original.labels):
                of_class = np.flatnonzero(original.labels == label)
                k = int(of_class[np.argmax(original.scores[of_class])])
                objects.append(explain_box(original, k, float(v[label - 1]), context,
                                           class_score=float(v[label - 1]),
                                           labeled_per_image=float(u[label - 1])))
            objects.sort(key=lambda o: -o.uncertainty)
            out.append(ImageScore(record.image_id, d + 1.0 if not v.any() else d, objects=objects))
        return out


class Cald(NoDetectionRule, TwoStage):
    """CALD: consistency retrieval (⌊μ·B⌋, μ = ``pool_multiplier``) then class-balance ranking.

    beta: base point β of ``|M − β|``; augs: augmented views compared with the original.
    """

    name = "cald"

    def __init__(
        self,
        *,
        beta: float = 1.3,
        pool_multiplier: float = 1.2,
        augs: str | Sequence[str] = CALD_AUGS,
        empty_fill_fraction: float = 0.0,
    ):
        super().__init__(
            CaldConsistency(beta=beta, augs=augs),
            CaldClassBalance(augs=augs),
            pool_multiplier=pool_multiplier,
        )
        self.beta = self.first.beta
        self.augs = self.first.augs
        self.empty_fill_fraction = check_number(
            "empty_fill_fraction", empty_fill_fraction, low=0, high=1
        )
        self.name = "cald"

    no_detection_threshold = 0.0  # any detection the model outputs

    def select_detected(self, records, budget, context, costs) -> Selection:
        """CALD's two stages, among the images with a detection."""
        return TwoStage.select(self, records, budget, context, costs=costs)
