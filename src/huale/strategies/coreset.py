"""Core-set (Sener & Savarese, ICLR 2018): k-center greedy on pooled backbone features.

Each pick is the pool image farthest (L2) from its nearest center; the centers start as the
labeled images' features and grow with every pick. Deterministic: records are processed in a
seeded random order of their ids (never file order) and ties go to the first in that order.
Without labeled features the first pick is the image farthest from the pool's mean feature
[INF].

Used alone, or as the diversity stage after any strategy: ``CoreSet(base="entropy",
pool_multiplier=4)`` retrieves the top 4·B by entropy, then picks B by k-center greedy.
"""

from __future__ import annotations

import numpy as np
import torch

from huale.errors import ConfigError
from huale.predictions import ORIGINAL, PredictionRecord
from huale.strategies.base import (
    ImageScore,
    Needs,
    Records,
    Selection,
    SelectionContext,
    Strategy,
    explain_box,
    load_records,
    record_features,
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

    base: a built strategy (None = core-set over the whole pool); pool_multiplier: the base
    strategy's pool is ⌊pool_multiplier·B⌋. By name, with the base's options:
    ``build_strategy("coreset", base="entropy", base_options={...})``.
    """

    name = "coreset"

    def __init__(self, *, base: Strategy | None = None, pool_multiplier: float = 4.0):
        self.pool_multiplier = check_number("pool_multiplier", pool_multiplier, low=1.0)
        self.cascade: TwoStage | None = None
        if base is not None:
            if isinstance(base, CoreSet):
                raise ConfigError("coreset cannot use coreset as its base strategy")
            self.cascade = TwoStage(base, CoreSet(), pool_multiplier=self.pool_multiplier)
            self.name = f"{base.name}>coreset"

    @property
    def needs(self) -> Needs:
        own = Needs(features=True, labeled_features=True)
        return own if self.cascade is None else self.cascade.needs

    def _features(self, records: Records, seed: int = 0) -> tuple[list[str], np.ndarray]:
        """Image ids in a seeded random order and their (N, D) float32 features in that order
        (ties of the greedy argmax, the first maximum, are never file order)."""
        ids, features = record_features(records)
        if features is None:
            missing = [r.image_id for r in records if r.feature is None]  # error path only
            raise ConfigError(
                f"coreset needs pooled features, missing for {len(missing)} image(s) "
                f"(e.g. {missing[0]!r}); score the pool with the strategy's `needs`"
            )
        order = sorted(range(len(ids)), key=lambda k: tie_order(seed, ids[k]))
        return [ids[k] for k in order], features[order]

    def _run(self, records, context, count, costs=None, budget=None):
        ordered, features = self._features(records, context.seed)
        if len(ordered) == 0:
            return [], []
        cost_array = None
        if costs is not None:
            cost_array = np.array([costs.get(i, 0) for i in ordered], dtype=np.float64)
        picks, pick_dist, final = k_center_greedy(
            features, context.labeled_features, count, costs=cost_array, budget=budget
        )
        picked = set(picks)
        # only the picked images are loaded in full, to explain them (memory flat in the pool)
        explained = {
            r.image_id: r for r in load_records(records, [ordered[i] for i in picks])
        }
        head = [
            ImageScore(ordered[i], d, objects=_explain(explained[ordered[i]], d, context))
            for i, d in zip(picks, pick_dist, strict=True)
        ]
        rest = sorted(
            (
                ImageScore(ordered[i], float(final[i]))
                for i in range(len(ordered))
                if i not in picked
            ),
            key=lambda s: (-s.score, *tie_order(context.seed, s.image_id)),
        )
        return head, rest

    def score(self, records: Records, context: SelectionContext) -> list[ImageScore]:
        """The full greedy order: score = distance to the nearest center when picked (O(N²))."""
        if self.cascade is not None:
            return self.cascade.score(records, context)
        head, _ = self._run(records, context, len(records))
        return head

    def select(
        self,
        records: Records,
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
