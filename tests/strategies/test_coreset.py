import numpy as np
import pytest

from huale.errors import ConfigError
from huale.strategies.base import tie_order
from huale.strategies.coreset import CoreSet, k_center_greedy
from huale.strategies.registry import build_strategy
from tests.strategies.fakes import context, dets, order, record

LAYOUT = {"a": (1, 0), "b": (10, 0), "c": (10, 1), "d": (0, 10), "e": (5, 5)}
POOL = [record(i, feature=xy) for i, xy in LAYOUT.items()]


def test_picks_far_apart_points_around_the_labeled_set():
    # labeled at (0,0): distances a 1, b 10, c √101 = 10.05, d 10, e √50 = 7.07 -> c
    # then b -> 1 (near c), d stays 10, e -> min(7.07, √41 = 6.40) -> d
    # then e -> min(6.40, √50) = 6.40, a 1, b 1 -> e
    ctx = context(labeled_features=np.array([[0.0, 0.0]]))
    selection = CoreSet().select(POOL, 3, ctx)
    assert selection.selected == ["c", "d", "e"]
    assert [s.score for s in selection.ranked[:3]] == pytest.approx([101**0.5, 10.0, 41**0.5])
    # rest by final distance (1, 1); the tie goes to the seeded random order, not the id
    assert order(selection)[3:] == sorted(["a", "b"], key=lambda i: tie_order(0, i)) == ["b", "a"]


def test_without_labeled_set_starts_farthest_from_pool_mean():
    # mean = (5.2, 3.2): d is farthest (8.56) -> d; then b (√200 = 14.14);
    # then a: min(√101, 9) = 9, c: min(√181, 1) = 1, e: min(√50, √50) = 7.07 -> a
    assert CoreSet().select(POOL, 3, context()).selected == ["d", "b", "a"]


def test_respects_labeled_features_and_record_order():
    # a labeled point at (10, 0) makes b and c redundant
    ctx = context(labeled_features=np.array([[0.0, 0.0], [10.0, 0.5]]))
    first = CoreSet().select(POOL, 2, ctx)
    assert first.selected == ["d", "e"]
    assert CoreSet().select(POOL[::-1], 2, ctx).selected == first.selected


def test_ties_go_to_the_seeded_order_and_costs_are_respected():
    picks, dists, _ = k_center_greedy(np.array([[1.0, 0], [-1.0, 0]]), np.zeros((1, 2)), 1)
    assert picks == [0] and dists == [1.0]  # the greedy itself: first index of the maximum
    ctx = context(labeled_features=np.array([[0.0, 0.0]]))
    costs = {"a": 1, "b": 1, "c": 5, "d": 2, "e": 1}
    # budget 3 boxes: c (10.05, cost 5) never fits; b and d tie at 10 -> the seeded order decides
    # (seed 0: d before b; the file order would give b), then the other one (still 10 away)
    assert sorted(["b", "d"], key=lambda i: tie_order(0, i)) == ["d", "b"]
    assert CoreSet().select(POOL, 3, ctx, costs=costs).selected == ["d", "b"]
    # another seed may order them the other way; each seed is reproducible
    seeds = {tuple(CoreSet().select(POOL, 3, context(labeled_features=np.zeros((1, 2)), seed=s),
                                    costs=costs).selected) for s in range(8)}
    assert seeds == {("d", "b"), ("b", "d")}


def test_missing_features_is_a_clear_error():
    with pytest.raises(ConfigError, match="features"):
        CoreSet().select([record("x")], 1, context())
    with pytest.raises(ConfigError, match="labeled features"):
        CoreSet().select(POOL, 1, context(labeled_features=np.zeros((1, 3))))


def test_as_diversity_stage_after_entropy():
    # t1, t2: uncertain twins (same feature); u: uncertain, far away; s: certain, far away.
    # B = 2, μ = 1.5 -> pool = top 3 by entropy = {t1, t2, u}; core-set picks u and one twin.
    unsure = dets([[0, 0, 10, 10]], [[0.3, 0.4, 0.3]])
    sure = dets([[0, 0, 10, 10]], [[0.0, 1.0, 0.0]])
    pool = [
        record("t1", unsure, feature=(0, 0)),
        record("t2", unsure, feature=(0, 0)),
        record("u", unsure, feature=(9, 9)),
        record("s", sure, feature=(-9, 9)),
    ]
    strategy = build_strategy("coreset", base="entropy", pool_multiplier=1.5)
    selection = strategy.select(pool, 2, context())
    # one twin and u; which twin is the seeded order's (seed 0: t2), never the file order's
    assert sorted(selection.selected) == ["t2", "u"]
    assert {s.image_id: s.stage for s in selection.ranked}["s"] == "stage1"
    assert strategy.needs.features and strategy.needs.views == ("orig",)
    with pytest.raises(ConfigError, match="base"):
        build_strategy("coreset", base_options={"reduction": "max"})
    with pytest.raises(ConfigError, match="coreset as its base"):
        build_strategy("coreset", base="coreset")
