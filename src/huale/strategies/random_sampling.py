"""Random sampling: the baseline every active-learning curve is compared with."""

from __future__ import annotations

from collections.abc import Sequence

from huale.predictions import PredictionRecord
from huale.strategies.base import ImageScore, SelectionContext, Strategy, image_uniform

__all__ = ["RandomSampling", "image_uniform"]


class RandomSampling(Strategy):
    """Uniformly random order, seeded by ``context.seed``."""

    name = "random"

    def score(
        self, records: Sequence[PredictionRecord], context: SelectionContext
    ) -> list[ImageScore]:
        return [ImageScore(r.image_id, image_uniform(context.seed, r.image_id)) for r in records]
