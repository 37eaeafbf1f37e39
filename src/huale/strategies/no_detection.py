"""The one rule of ``huale``, ``hua`` and ``cald`` for images on which the model detects nothing.

[INF] (docs/method.md, "Images without detections"): an image has *no detection* when the
original view holds no detection with score ≥ the strategy's detection threshold (``huale`` and
``hua``: ``detection_threshold``, default 0.05; ``cald``: any detection the model outputs).
These images carry no evidence of uncertainty for these strategies, so:

1. they are ranked after every image with a detection (stage ``"no_detection"``, score ``-inf``,
   written as ``null``), among themselves in a seeded random order;
2. ``empty_fill_fraction`` f (default 0) reserves ⌊f·B⌋ of the budget B for a seeded random
   sample of them (stage ``"fill"``; with per-image costs, their total cost stays within ⌊f·B⌋);
3. when the images with detections cannot use the budget, the rest goes to no-detection images
   in the same random order: a budget is always spent;
4. a warning gives their count when they are more than half of the pool.

(CALD's reference code ranks them *first*: C = 0 in its consistency stage and v = 0 in its
class-balance stage; HUALE's stage 1 ranked them last. One rule for both is our choice.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from huale.predictions import ORIGINAL, PredictionRecord
from huale.strategies.base import (
    ImageScore,
    Records,
    RecordsWithout,
    Selection,
    SelectionContext,
    take_budget,
    tie_order,
)
from huale.strategies.cascade import pool_budget

log = logging.getLogger(__name__)

NO_DETECTION = "no_detection"
FILL = "fill"
MANY_EMPTY_SHARE = 0.5

SelectFn = Callable[[Records, int, dict[str, int] | None], Selection]


def has_detection(record: PredictionRecord, threshold: float) -> bool:
    """Whether the original view holds a detection with score ≥ ``threshold``."""
    dets = record.views.get(ORIGINAL)
    return dets is not None and bool(np.any(dets.scores >= threshold))


def select_with_no_detection_rule(
    records: Records,
    budget: int,
    context: SelectionContext,
    costs: dict[str, int] | None,
    *,
    threshold: float,
    fill_fraction: float,
    select_detected: SelectFn,
    strategy: str,
) -> Selection:
    """Apply the module's rule around ``select_detected(records, budget, costs)``, the strategy's
    own selection, which only ever sees images with a detection."""
    # one pass keeping ids only; the detected images stay a lazy view (memory flat in the pool)
    empty_ids = [r.image_id for r in records if not has_detection(r, threshold)]
    detected = RecordsWithout(records, empty_ids) if empty_ids else records
    empty = sorted(
        (ImageScore(i, -np.inf, stage=NO_DETECTION) for i in empty_ids),
        key=lambda s: tie_order(context.seed, s.image_id),
    )
    if len(empty) > MANY_EMPTY_SHARE * len(records):
        log.warning(
            "%s: %d of %d pool images have no detection with score >= %g: they are ranked after "
            "the others (in random order) and only fill a budget the others cannot use; "
            "set empty_fill_fraction to reserve part of the budget for them",
            strategy, len(empty), len(records), threshold,
        )
    elif empty:
        log.info("%s: %d of %d pool images have no detection with score >= %g",
                 strategy, len(empty), len(records), threshold)

    def cost(image_ids: Sequence[str]) -> int:
        return len(image_ids) if costs is None else sum(costs.get(i, 0) for i in image_ids)

    fill_budget = min(pool_budget(budget, fill_fraction), budget)
    fill = take_budget(empty[:fill_budget], fill_budget, costs=costs) if fill_budget else []
    remaining = budget - cost(fill)
    if len(detected) and remaining > 0:
        chosen = select_detected(detected, remaining, costs)
    else:
        chosen = Selection(ranked=[], selected=[])
        if len(detected):  # nothing left to spend: the detected images keep a (stage-1) order
            chosen = select_detected(detected, 0, costs)
    remaining -= cost(chosen.selected)
    taken = set(fill)
    leftover = [s for s in empty if s.image_id not in taken]
    extra = take_budget(leftover, remaining, costs=costs) if remaining > 0 else []
    taken |= set(extra)

    selected = set(chosen.selected)
    head = [s for s in chosen.ranked if s.image_id in selected]
    tail = [s for s in chosen.ranked if s.image_id not in selected]
    filled = [replace(s, stage=FILL) for s in empty if s.image_id in taken]
    rest = [s for s in empty if s.image_id not in taken]
    return Selection(
        ranked=head + filled + tail + rest,
        selected=list(chosen.selected) + fill + extra,
    )


class NoDetectionRule:
    """Mixin for a :class:`~huale.strategies.base.Strategy` that applies the module's rule.

    The strategy sets ``empty_fill_fraction`` and ``no_detection_threshold`` and implements
    :meth:`select_detected`, its own selection among the images with a detection; put the mixin
    first among the bases so that its :meth:`select` is the one called.
    """

    name: str
    empty_fill_fraction: float
    no_detection_threshold: float

    def select_detected(
        self, records: Records, budget: int, context: SelectionContext,
        costs: dict[str, int] | None,
    ) -> Selection:
        raise NotImplementedError

    def select(
        self,
        records: Records,
        budget: int,
        context: SelectionContext,
        *,
        costs: dict[str, int] | None = None,
    ) -> Selection:
        """The shared rule for images without detections around :meth:`select_detected`."""
        return select_with_no_detection_rule(
            records, budget, context, costs, threshold=self.no_detection_threshold,
            fill_fraction=self.empty_fill_fraction, strategy=self.name,
            select_detected=lambda recs, b, c: self.select_detected(recs, b, context, c),
        )
