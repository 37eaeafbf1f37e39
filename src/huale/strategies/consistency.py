"""Flip consistency of AL-SSL (Elezi et al., CVPR 2022; NVlabs/AL-SSL ``active_learning.py``).

method.md §4.1 [CODE]: for every original-view detection with score ≥ 0.5, robustness
``½[KL(p‖p_f) + KL(p_f‖p)]`` between its class posterior and that of its counterpart in the
flipped view; image score = max; no detections -> 0. Optional cascade: keep the top ``N_f`` images
by entropy (``entropy_prefilter``, AL-SSL: 3000), the others stop at stage 1.

Counterpart [INF]: AL-SSL's SSD pairs a prior with its mirrored prior; Faster R-CNN boxes have no
anchor identity, so the counterpart is the flip-view detection (already in the original frame)
with the highest IoU. With no overlapping flip detection (flip view empty or IoU 0) the
counterpart posterior is background-only ``[1, 0, …, 0]``: maximal disagreement, whose value is
bounded through the probability floor of :data:`huale.strategies.divergence.PROB_FLOOR`.
"""

from __future__ import annotations

import numpy as np

from huale.predictions import FLIP, ORIGINAL
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
from huale.strategies.checks import check_int, check_number
from huale.strategies.divergence import symmetric_kl
from huale.strategies.entropy import EntropySampling
from huale.strategies.matching import best_match


class FlipConsistency(Strategy):
    """AL-SSL robustness score; see the module docstring.

    score_threshold: original-view detections below it are ignored (AL-SSL ``--thresh`` 0.5);
    entropy_prefilter: None, or N_f = keep the top N_f images by max normalized entropy (same
    threshold) and rank only those by robustness.
    """

    name = "consistency"

    def __init__(self, *, score_threshold: float = 0.5, entropy_prefilter: int | None = None):
        self.score_threshold = check_number("score_threshold", score_threshold, low=0, high=1)
        self.entropy_prefilter = (
            None
            if entropy_prefilter is None
            else check_int("entropy_prefilter", entropy_prefilter, low=1)
        )

    @property
    def needs(self) -> Needs:
        return Needs(views=(ORIGINAL, FLIP))

    def score(
        self, records: Records, context: SelectionContext
    ) -> list[ImageScore]:
        out = []
        for record in records:
            dets = view_of(record, ORIGINAL, self.name, min_score=self.score_threshold)
            flipped = view_of(record, FLIP, self.name)
            if len(dets) == 0:
                out.append(ImageScore(record.image_id, 0.0))
                continue
            index, iou = best_match(dets.boxes, flipped.boxes)
            counterpart = np.zeros_like(dets.class_probs, dtype=np.float64)
            counterpart[:, 0] = 1.0  # background-only posterior for unmatched boxes [INF]
            matched = iou > 0
            counterpart[matched] = flipped.class_probs[index[matched]]
            robustness = symmetric_kl(dets.class_probs, counterpart)
            top = int(np.argmax(robustness))
            explanation = explain_box(
                dets, top, robustness[top], context, matched_iou=float(iou[top])
            )
            out.append(ImageScore(record.image_id, float(robustness[top]), objects=[explanation]))
        return out

    def select(
        self,
        records: Records,
        budget: int,
        context: SelectionContext,
        *,
        costs: dict[str, int] | None = None,
    ) -> Selection:
        if self.entropy_prefilter is None:
            return super().select(records, budget, context, costs=costs)
        cascade = TwoStage(
            EntropySampling(reduction="max", score_threshold=self.score_threshold),
            FlipConsistency(score_threshold=self.score_threshold),
            pool_size=self.entropy_prefilter,
        )
        return cascade.select(records, budget, context, costs=costs)
