"""Core-set (Sener & Savarese, ICLR 2018): k-center greedy on pooled backbone features.

Each pick is the pool image farthest (L2) from its nearest center; the centers start as the
labeled images' features and grow with every pick. Deterministic: records are processed in
image-id order and ties go to the smallest id. Without labeled features the first pick is the
image farthest from the pool's mean feature [INF].

Used alone, or as the diversity stage after any strategy: ``CoreSet(base="entropy",
pool_multiplier=4)`` retrieves the top 4·B by entropy, then picks B by k-center greedy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from huale.errors import ConfigError
from huale.predictions import ORIGINAL, PredictionRecord
from huale.strategies.base import (
    ImageScore,
    Needs,
    Selection,
    SelectionContext,
    Strategy,
    explain_box,
    tie_order,
)
from huale.strategies.cascade import TwoStage
from huale.strategies.checks import check_number

EXPLAINED_OBJECTS = 5  # detections listed per image in selection.json
EXACT = "donot_use_mm_for_euclid_dist"  # exact distances, so ties stay ties


def k_center_greedy(
    features: np.ndarray,
    centers: np.ndarray | None,
    count: int,
    *,
    costs: np.ndarray | None = None,
    budget: float | None = None,
) -> tuple[list[int], list[float], np.ndarray]:
    """Greedy k-center picks among ``features (N, D)`` given initial ``centers (L, D)``.

    Picks ``count`` points (fewer if the pool runs out); with ``costs (N,)`` and ``budget``, a
    point whose cost would exceed the remaining budget is passed over. Ties go to the lowest
    index. Returns ``(picked indices, distance of each pick to its nearest center when picked,
    final distance (N,) of every point to its nearest center)``.
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float64))
    n, dim = x.shape
    has_centers = centers is not None and len(centers) > 0
    if has_centers:
        c = torch.as_tensor(np.asarray(centers, dtype=np.float64))
        if c.ndim != 2 or c.shape[1] != dim:
            raise ConfigError(
                f"labeled features have shape {tuple(c.shape)}; pool features have {dim} dims"
            )
        nearest = torch.full((n,), float("inf"), dtype=torch.float64)
        for chunk in torch.split(c, 1024):
            chunk_nearest = torch.cdist(x, chunk, compute_mode=EXACT).min(dim=1).values
            nearest = torch.minimum(nearest, chunk_nearest)
    else:
        # no labeled set: the distance to the pool mean decides the first pick only
        nearest = torch.cdist(x, x.mean(dim=0, keepdim=True), compute_mode=EXACT).reshape(-1)
    available = torch.ones(n, dtype=torch.bool)
    remaining = budget
    picks, pick_dist = [], []
    while len(picks) < count:
        candidates = available.clone()
        if costs is not None:
            candidates &= torch.as_tensor(np.asarray(costs) <= remaining)
        if not candidates.any():
            break
        masked = torch.where(candidates, nearest, torch.tensor(-1.0, dtype=torch.float64))
        i = int(torch.argmax(masked))  # first maximum = lowest index
        picks.append(i)
        pick_dist.append(float(nearest[i]))
        available[i] = False
        if costs is not None:
            remaining -= costs[i]
        dist = torch.cdist(x, x[i : i + 1], compute_mode=EXACT).reshape(-1)
        nearest = torch.minimum(nearest, dist) if has_centers else dist
        has_centers = True
    return picks, pick_dist, nearest.numpy().astype(np.float64)


def _explain(record: PredictionRecord, distance: float, context: SelectionContext) -> list:
    """The image's most confident detections (original view, at most ``EXPLAINED_OBJECTS``): what
    the picked image holds; each carries the image's feature distance, the reason of the pick."""
    dets = record.views.get(ORIGINAL)
    if dets is None or len(dets) == 0:
        return []
    top = np.argsort(-dets.scores, kind="stable")[:EXPLAINED_OBJECTS]
    return [
        explain_box(dets, int(k), distance, context, feature_distance=float(distance),
                    detection_score=float(dets.scores[k]))
        for k in top
    ]


class CoreSet(Strategy):
    """k-center greedy selection; with ``base`` the diversity stage after that strategy.

    base: a registered strategy name (None = core-set over the whole pool); base_options: its
    options; pool_multiplier: the base strategy's pool is ⌊pool_multiplier·B⌋.
    """

    name = "coreset"

    def __init__(
        self,
        *,
        base: str | None = None,
        base_options: Mapping[str, object] | None = None,
        pool_multiplier: float = 4.0,
    ):
        self.pool_multiplier = check_number("pool_multiplier", pool_multiplier, low=1.0)
        self.cascade: TwoStage | None = None
        if base is not None:
            from huale.strategies.registry import build_strategy  # the registry imports us

            if base == self.name:
                raise ConfigError("coreset cannot use coreset as its base strategy")
            first = build_strategy(base, **dict(base_options or {}))
            self.cascade = TwoStage(first, CoreSet(), pool_multiplier=self.pool_multiplier)
            self.name = f"{first.name}>coreset"
        elif base_options:
            raise ConfigError("coreset: base_options given without a base strategy")

    @property
    def needs(self) -> Needs:
        own = Needs(features=True, labeled_features=True)
        return own if self.cascade is None else self.cascade.needs

    def _features(
        self, records: Sequence[PredictionRecord], seed: int = 0
    ) -> tuple[list, np.ndarray]:
        # a seeded random order: ties of the greedy argmax (first maximum) are never file order
        ordered = sorted(records, key=lambda r: tie_order(seed, r.image_id))
        missing = [r.image_id for r in ordered if r.feature is None]
        if missing:
            raise ConfigError(
                f"coreset needs pooled features, missing for {len(missing)} image(s) "
                f"(e.g. {missing[0]!r}); score the pool with the strategy's `needs`"
            )
        features = np.stack([np.asarray(r.feature, np.float32).reshape(-1) for r in ordered])
        return ordered, features

    def _run(self, records, context, count, costs=None, budget=None):
        ordered, features = self._features(records, context.seed)
        if len(ordered) == 0:
            return [], []
        cost_array = None
        if costs is not None:
            cost_array = np.array([costs.get(r.image_id, 0) for r in ordered], dtype=np.float64)
        picks, pick_dist, final = k_center_greedy(
            features, context.labeled_features, count, costs=cost_array, budget=budget
        )
        picked = set(picks)
        head = [
            ImageScore(ordered[i].image_id, d, objects=_explain(ordered[i], d, context))
            for i, d in zip(picks, pick_dist, strict=True)
        ]
        rest = sorted(
            (
                ImageScore(ordered[i].image_id, float(final[i]),
                           objects=_explain(ordered[i], float(final[i]), context))
                for i in range(len(ordered))
                if i not in picked
            ),
            key=lambda s: (-s.score, *tie_order(context.seed, s.image_id)),
        )
        return head, rest

    def score(
        self, records: Sequence[PredictionRecord], context: SelectionContext
    ) -> list[ImageScore]:
        """The full greedy order: score = distance to the nearest center when picked (O(N²))."""
        if self.cascade is not None:
            return self.cascade.score(records, context)
        head, _ = self._run(records, context, len(records))
        return head

    def select(
        self,
        records: Sequence[PredictionRecord],
        budget: int,
        context: SelectionContext,
        *,
        costs: dict[str, int] | None = None,
    ) -> Selection:
        if self.cascade is not None:
            return self.cascade.select(records, budget, context, costs=costs)
        if budget < 0:
            raise ConfigError(f"budget must be >= 0, got {budget}")
        count = budget if costs is None else len(records)
        head, rest = self._run(
            records, context, count, costs=costs, budget=None if costs is None else budget
        )
        return Selection(ranked=head + rest, selected=[s.image_id for s in head])
