"""Entropy sampling: the normalized entropy of the class posterior of each detection."""

from __future__ import annotations

import numpy as np

from huale.predictions import ORIGINAL
from huale.strategies.base import (
    ImageScore,
    Needs,
    Records,
    SelectionContext,
    Strategy,
    aggregate,
    explain_box,
    view_of,
)
from huale.strategies.checks import check_choice, check_number
from huale.strategies.divergence import normalized_entropy

REDUCTIONS = ("max", "mean", "sum")


class EntropySampling(Strategy):
    """Per-box entropy of ``class_probs`` over the C+1 classes divided by log(C+1), reduced per image.

    score_threshold: boxes with a lower detection score are ignored; reduction: max | mean | sum.
    Images without (kept) detections score 0. The explanation is the most uncertain box.
    """

    name = "entropy"

    def __init__(self, *, reduction: str = "max", score_threshold: float = 0.05):
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.score_threshold = check_number("score_threshold", score_threshold, low=0, high=1)

    @property
    def needs(self) -> Needs:
        return Needs(views=(ORIGINAL,))

    def score(
        self, records: Records, context: SelectionContext
    ) -> list[ImageScore]:
        out = []
        for record in records:
            dets = view_of(record, ORIGINAL, self.name, min_score=self.score_threshold)
            entropy = normalized_entropy(dets.class_probs)
            objects = []
            if entropy.size:
                top = int(np.argmax(entropy))
                objects.append(explain_box(dets, top, entropy[top], context))
            out.append(
                ImageScore(record.image_id, aggregate(entropy, self.reduction), objects=objects)
            )
        return out
