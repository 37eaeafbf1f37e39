"""Random sampling: the baseline every active-learning curve is compared with."""

from __future__ import annotations

import zlib

import numpy as np

from huale.strategies.base import ImageScore, Records, SelectionContext, Strategy


def image_uniform(seed: int, image_id: str) -> float:
    """A uniform number in [0, 1) determined by ``(seed, image_id)`` alone.

    Seeded from CRC32 (stable across processes, unlike Python's salted ``hash``), so the order of
    the pool never depends on the order of the records or on which other images are in it.
    """
    key = [zlib.crc32(str(int(seed)).encode()), zlib.crc32(image_id.encode())]
    return float(np.random.default_rng(key).random())


class RandomSampling(Strategy):
    """Uniformly random order, seeded by ``context.seed``."""

    name = "random"

    def score(
        self, records: Records, context: SelectionContext
    ) -> list[ImageScore]:
        return [ImageScore(r.image_id, image_uniform(context.seed, r.image_id)) for r in records]
