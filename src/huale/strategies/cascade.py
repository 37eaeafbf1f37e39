"""Two-stage "retrieve then rank" composition of any two strategies.

Stage 1 ranks the whole pool with ``first.score`` (one pass, scalars kept) and keeps a candidate
pool; stage 2 runs ``second.select`` on the candidates only, the only records loaded in full. CALD, HUALE, AL-SSL's entropy prefilter and
"uncertainty then core-set" are all instances; the engine sees one :class:`Strategy`.
"""

from __future__ import annotations

import math

from huale.strategies.base import (
    ImageScore,
    Needs,
    Records,
    Selection,
    SelectionContext,
    Strategy,
    load_records,
    rank,
    take_budget,
)
from huale.strategies.checks import check_int, check_number

STAGE1 = "stage1"
STAGE2 = "stage2"


def pool_budget(budget: int, pool_multiplier: float) -> int:
    """⌊μ·B⌋, robust to float rounding (1.2·500 = 600, not 599)."""
    return int(math.floor(pool_multiplier * budget + 1e-9))


class TwoStage(Strategy):
    """Keep the stage-1 top of the pool, let ``second`` pick the budget from it.

    Pool size: ``pool_size`` images (a fixed count, e.g. AL-SSL's N_f = 3000) or, by default,
    the first ``⌊pool_multiplier·B⌋`` of the stage-1 ranking — with per-image ``costs`` (a box
    budget) ``⌊pool_multiplier·B⌋`` is a cost and the pool is taken as :func:`take_budget` does.

    Result: ``ranked`` = the pool in stage-2 order (stage ``"stage2"``, stage-2 scores) followed by
    the rest in stage-1 order (stage ``"stage1"``, stage-1 scores); scores of the two stages are
    not comparable. ``score`` (no budget) is the stage-1 score: the cascade needs the budget.
    """

    def __init__(
        self,
        first: Strategy,
        second: Strategy,
        *,
        pool_multiplier: float = 2.0,
        pool_size: int | None = None,
    ):
        self.first = first
        self.second = second
        self.pool_multiplier = check_number("pool_multiplier", pool_multiplier, low=1.0)
        self.pool_size = None if pool_size is None else check_int("pool_size", pool_size, low=1)
        self.name = f"{first.name}>{second.name}"

    @property
    def needs(self) -> Needs:
        return self.first.needs.union(self.second.needs)

    def score(self, records: Records, context: SelectionContext) -> list[ImageScore]:
        """The stage-1 (retrieval) scores."""
        return _staged(self.first.score(records, context), STAGE1)

    def select(
        self,
        records: Records,
        budget: int,
        context: SelectionContext,
        *,
        costs: dict[str, int] | None = None,
    ) -> Selection:
        stage1 = rank(self.first.score(records, context), context.seed)  # one pass, scalars only
        if self.pool_size is not None:
            pool_ids = [s.image_id for s in stage1[: self.pool_size]]
        else:
            pool_ids = take_budget(stage1, pool_budget(budget, self.pool_multiplier), costs=costs)
        pool = set(pool_ids)
        # only the retrieved candidates are loaded in full (mu*B records, not the pool)
        chosen = self.second.select(load_records(records, pool_ids), budget, context, costs=costs)
        ranked = _staged(chosen.ranked, STAGE2)
        ranked += _staged([s for s in stage1 if s.image_id not in pool], STAGE1)
        return Selection(ranked=ranked, selected=chosen.selected)


def _staged(scores: list[ImageScore], stage: str) -> list[ImageScore]:
    """``scores`` tagged with ``stage``, in place: they are this call's own fresh objects, and a
    copy of each would double the peak memory of a large pool."""
    for score in scores:
        score.stage = stage
    return scores
