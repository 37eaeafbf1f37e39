"""Random sampling: the baseline every active-learning curve is compared with."""

from __future__ import annotations

from huale.strategies.base import ImageScore, Records, SelectionContext, Strategy, image_uniform

__all__ = ["RandomSampling", "image_uniform"]


class RandomSampling(Strategy):
    """Uniformly random order, seeded by ``context.seed``."""

    name = "random"

    def score(
        self, records: Records, context: SelectionContext
    ) -> list[ImageScore]:
        return [ImageScore(r.image_id, image_uniform(context.seed, r.image_id)) for r in records]
