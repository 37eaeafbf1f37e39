"""Hierarchical uncertainty aggregation (HUA; Park et al., ICLR 2023, MoonLab-YH/AOD_MEH_HUA),
applied to Faster R-CNN with flip views as in method.md §9.1.

Structure [CODE, §2]: objects -> member boxes -> cells (object, scale, class) -> bottom-up
aggregation ``U_{o,s} = agg_c w_c·u_{o,s,c}``, ``U_o = agg_s U_{o,s}``, ``U(x) = agg_o U_o``,
each agg from {sum, avg, max}; HUA's default is ``objectSum_scaleMax_classSum``.

Faster R-CNN adaptation [INF, §9.1]:
- objects: detections with score > ``object_threshold`` of the original and the flip view (boxes
  already in the original frame), merged by class-agnostic NMS (``object_nms_iou``); an object
  seen in both views is one object;
- members: pre-NMS argmax-class RoI boxes of both views (``use_prenms``; else the post-NMS
  detections of both views) with p̂ > ``member_threshold`` (HUA's anchor filter, 0.3); box j
  belongs to object o iff IoU(b_j, b_o) > ``member_iou`` (a box may belong to several objects);
- scale s(j) = FPN level of the RoI (P2–P5); class c(j) = argmax foreground class of its posterior;
- box uncertainty u_j: ``inconsistency`` = flip inconsistency against the other view's post-NMS
  detections (score ≥ ``detection_threshold``), see :func:`~huale.strategies.matching.flip_inconsistency`;
  or ``entropy`` = normalized entropy of its posterior (HUA's MC-Dirichlet mutual information
  needs an evidential head that Faster R-CNN lacks);
- cell value = mean u_j of its members; an object without members contributes U_o = 0;
  an image without objects scores 0;
- class weights w_c: 1 (``class_weights="none"``) or PPAL difficulty weights of
  ``context.class_quality`` (``"difficulty"``; w ≡ 1, logged, when the quality is missing).

Weak models [INF] (docs/method.md, "A weak model"): with ``adaptive_thresholds`` (default) the
object and member thresholds follow the model's score range, ``t = min(t_option, ½·s_ref)``
with ``s_ref`` the 90th percentile over the scored images of their highest detection score
(original view). A trained model (s_ref ≈ 1) keeps the options as given; a first-cycle model
whose best scores are ~0.1 gets thresholds ~0.05 instead of scoring every image 0. An image whose
stored pre-NMS boxes leave no member (they are stored above ``member_threshold`` only) uses its
post-NMS detections of both views as members. Images without any detection follow the shared
rule of :mod:`huale.strategies.no_detection` (``empty_fill_fraction``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import nms

from huale.predictions import FLIP, ORIGINAL, Detections, PredictionRecord
from huale.strategies.base import (
    ImageScore,
    Needs,
    ObjectExplanation,
    Records,
    Selection,
    SelectionContext,
    Strategy,
    aggregate,
    explain_box,
    rank,
    take_budget,
    view_of,
    warn_if_tied,
)
from huale.strategies.checks import check_choice, check_int, check_number
from huale.strategies.class_difficulty import difficulty_weights
from huale.strategies.divergence import normalized_entropy
from huale.strategies.matching import flip_inconsistency, pairwise_iou
from huale.strategies.no_detection import NoDetectionRule

log = logging.getLogger(__name__)

AGGREGATIONS = ("sum", "avg", "max")
ADAPTIVE_RATIO = 0.5  # thresholds at most this share of the model's reference score s_ref
ADAPTIVE_QUANTILE = 90  # s_ref: this percentile of the images' highest detection scores
BOX_UNCERTAINTIES = ("inconsistency", "entropy")
CLASS_WEIGHTS = ("none", "difficulty")


def _concat(parts: Sequence[Detections]) -> Detections:
    return Detections(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("boxes", "labels", "scores", "class_probs", "max_fg_prob", "fpn_level")
        )
    )


class Hua(NoDetectionRule, Strategy):
    """HUA image score; every knob of the module docstring is an option.

    max_objects: how many of the most uncertain objects an :class:`ImageScore` explains.
    """

    name = "hua"

    def __init__(
        self,
        *,
        object_threshold: float = 0.3,
        object_nms_iou: float = 0.5,
        member_iou: float = 0.5,
        member_threshold: float = 0.3,
        use_prenms: bool = True,
        box_uncertainty: str = "inconsistency",
        detection_threshold: float = 0.05,
        class_agg: str = "sum",
        scale_agg: str = "max",
        object_agg: str = "sum",
        class_weights: str = "none",
        difficulty_alpha: float = 0.3,
        difficulty_delta: float = 0.2,
        max_objects: int = 5,
        adaptive_thresholds: bool = True,
        empty_fill_fraction: float = 0.0,
    ):
        self.object_threshold = check_number("object_threshold", object_threshold, low=0, high=1)
        self.object_nms_iou = check_number("object_nms_iou", object_nms_iou, low=0, high=1)
        self.member_iou = check_number("member_iou", member_iou, low=0, high=1)
        self.member_threshold = check_number("member_threshold", member_threshold, low=0, high=1)
        self.use_prenms = bool(use_prenms)
        self.box_uncertainty = check_choice("box_uncertainty", box_uncertainty, BOX_UNCERTAINTIES)
        self.detection_threshold = check_number(
            "detection_threshold", detection_threshold, low=0, high=1
        )
        self.class_agg = check_choice("class_agg", class_agg, AGGREGATIONS)
        self.scale_agg = check_choice("scale_agg", scale_agg, AGGREGATIONS)
        self.object_agg = check_choice("object_agg", object_agg, AGGREGATIONS)
        self.class_weights = check_choice("class_weights", class_weights, CLASS_WEIGHTS)
        difficulty_weights(np.zeros(1), alpha=difficulty_alpha, delta=difficulty_delta)  # check
        self.difficulty_alpha = float(difficulty_alpha)
        self.difficulty_delta = float(difficulty_delta)
        self.max_objects = check_int("max_objects", max_objects, low=0)
        self.adaptive_thresholds = bool(adaptive_thresholds)
        self.empty_fill_fraction = check_number(
            "empty_fill_fraction", empty_fill_fraction, low=0, high=1
        )
        # the thresholds of the current scoring (object, member): set by score()
        self._thresholds = (self.object_threshold, self.member_threshold)

    @property
    def needs(self) -> Needs:
        return Needs(
            views=(ORIGINAL, FLIP),
            prenms=self.use_prenms,
            prenms_threshold=self.member_threshold,
            class_quality=self.class_weights == "difficulty",
        )

    def weights(self, context: SelectionContext) -> np.ndarray:
        """Class weights w (C,)."""
        if self.class_weights == "difficulty":
            if context.class_quality is not None:
                return difficulty_weights(
                    context.class_quality, alpha=self.difficulty_alpha, delta=self.difficulty_delta
                )
            log.warning("%s: no class quality in the context; using class weights w = 1", self.name)
        return np.ones(context.num_classes)

    def thresholds(self, records: Sequence[PredictionRecord]) -> tuple[float, float]:
        """(object, member) thresholds for these records (module docstring, weak models)."""
        if not self.adaptive_thresholds:
            return self.object_threshold, self.member_threshold
        best = [
            float(d.scores.max())
            for d in (r.views.get(ORIGINAL) for r in records)
            if d is not None and len(d)
        ]
        if not best:
            return self.object_threshold, self.member_threshold
        reference = float(np.percentile(best, ADAPTIVE_QUANTILE))
        cap = ADAPTIVE_RATIO * reference
        adapted = (min(self.object_threshold, cap), min(self.member_threshold, cap))
        if adapted != (self.object_threshold, self.member_threshold):
            log.info(
                "%s: the model's scores are low (90th percentile of the images' best score "
                "%.3f): object threshold %.3f, member threshold %.3f (options %.3f, %.3f)",
                self.name, reference, *adapted, self.object_threshold, self.member_threshold,
            )
        return adapted

    @property
    def no_detection_threshold(self) -> float:
        return self.detection_threshold

    def select_detected(self, records, budget, context, costs) -> Selection:
        """The ranking by U(x), among the images with a detection."""
        scores = self.score(records, context)
        warn_if_tied(scores, self.name)
        ranked = rank(scores, context.seed)
        return Selection(ranked=ranked, selected=take_budget(ranked, budget, costs=costs))

    def score(
        self, records: Records, context: SelectionContext
    ) -> list[ImageScore]:
        weights = self.weights(context)
        self._thresholds = self.thresholds(records)
        out = []
        for record in records:
            value, objects = self.image_uncertainty(record, weights, context)
            out.append(ImageScore(record.image_id, value, objects=objects))
        return out

    def _members(self, record: PredictionRecord, reference: dict[str, Detections]):
        """Member boxes of both views: (Detections, u (J,), class (J,)); the post-NMS
        detections when no stored pre-NMS box passes the member threshold."""
        members = self._members_from(record, reference, prenms=self.use_prenms)
        if self.use_prenms and len(members[0]) == 0:
            members = self._members_from(record, reference, prenms=False)
        return members

    def _members_from(self, record: PredictionRecord, reference: dict[str, Detections],
                      *, prenms: bool):
        parts, uncertainty = [], []
        member_threshold = self._thresholds[1]
        for view, other in ((ORIGINAL, FLIP), (FLIP, ORIGINAL)):
            boxes = (
                view_of(record, view, self.name, prenms=True) if prenms else reference[view]
            )
            boxes = boxes.select(boxes.max_fg_prob > member_threshold)
            if self.box_uncertainty == "inconsistency":
                uncertainty.append(flip_inconsistency(boxes, reference[other]))
            else:
                uncertainty.append(normalized_entropy(boxes.class_probs))
            parts.append(boxes)
        members = _concat(parts)
        classes = members.class_probs[:, 1:].argmax(axis=1) + 1 if len(members) else np.zeros(0)
        return members, np.concatenate(uncertainty), classes.astype(np.int64)

    def image_uncertainty(
        self, record: PredictionRecord, weights: np.ndarray, context: SelectionContext
    ) -> tuple[float, list[ObjectExplanation]]:
        """U(x) and the explanations of its top objects."""
        reference = {
            view: view_of(record, view, self.name, min_score=self.detection_threshold)
            for view in (ORIGINAL, FLIP)
        }
        object_threshold = self._thresholds[0]
        candidates = _concat(
            [d.select(d.scores > object_threshold) for d in reference.values()]
        )
        if len(candidates) == 0:
            return 0.0, []
        keep = nms(
            torch.as_tensor(candidates.boxes, dtype=torch.float32),
            torch.as_tensor(candidates.scores, dtype=torch.float32),
            self.object_nms_iou,
        ).numpy()
        objects = candidates.select(keep)
        members, uncertainty, classes = self._members(record, reference)
        belongs = pairwise_iou(members.boxes, objects.boxes) > self.member_iou  # (J, O)
        object_values, explanations = [], []
        for o in range(len(objects)):
            idx = np.flatnonzero(belongs[:, o])
            value, levels = self._object_value(
                uncertainty[idx], members.fpn_level[idx], classes[idx], weights, context
            )
            object_values.append(value)
            explanations.append(
                explain_box(objects, o, value, context, **levels, members=int(idx.size))
            )
        order = sorted(range(len(objects)), key=lambda o: -object_values[o])
        top = [explanations[o] for o in order[: self.max_objects]]
        return aggregate(object_values, self.object_agg), top

    def _object_value(
        self,
        uncertainty: np.ndarray,
        scales: np.ndarray,
        classes: np.ndarray,
        weights: np.ndarray,
        context: SelectionContext,
    ) -> tuple[float, dict]:
        """U_o from its members' u (J,), FPN level (J,), class (J,); plus per-level values."""
        if uncertainty.size == 0:
            return 0.0, {"scale": {}, "cell": {}}
        cells, cell_of = np.unique(np.stack([scales, classes], axis=1), axis=0, return_inverse=True)
        cell_of = cell_of.reshape(-1)
        means = np.bincount(cell_of, weights=uncertainty) / np.bincount(cell_of)
        scale_values, cell_values = {}, {}
        for scale in np.unique(cells[:, 0]):
            at = np.flatnonzero(cells[:, 0] == scale)
            weighted = [weights[cells[i, 1] - 1] * means[i] for i in at]
            key = f"P{int(scale)}"
            scale_values[key] = aggregate(weighted, self.class_agg)
            cell_values[key] = {context.class_name(int(cells[i, 1])): float(means[i]) for i in at}
        value = aggregate(list(scale_values.values()), self.scale_agg)
        return value, {"scale": scale_values, "cell": cell_values}
