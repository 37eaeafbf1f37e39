"""Records read back from scoring shards rank exactly as the same records held in memory."""

from __future__ import annotations

import numpy as np
import pytest

from huale.inference.shards import ShardStore
from huale.inference.stored import StoredRecords
from huale.predictions import CUTOUT, FLIP, ORIGINAL, RESIZE, ROTATE, PredictionRecord
from huale.strategies import build_strategy
from huale.strategies.base import RecordsWithout, load_records, record_features
from tests.strategies.fakes import NUM_CLASSES, context, dets

VIEWS = (ORIGINAL, FLIP, CUTOUT, RESIZE, ROTATE)


def random_dets(rng: np.random.Generator, count: int):
    xy = rng.uniform(0, 80, size=(count, 2))
    wh = rng.uniform(5, 20, size=(count, 2))
    probs = rng.dirichlet(np.ones(NUM_CLASSES + 1), size=count)
    levels = rng.integers(2, 6, size=count)
    return dets(np.hstack([xy, xy + wh]), probs, levels=levels)


def random_records(count: int, seed: int = 0) -> list[PredictionRecord]:
    """Pool records with every view, pre-NMS boxes and features; some images detect nothing."""
    rng = np.random.default_rng(seed)
    records = []
    for n in range(count):
        empty = n % 7 == 3
        views = {v: random_dets(rng, 0 if empty else int(rng.integers(0, 5))) for v in VIEWS}
        prenms = {v: random_dets(rng, 0 if empty else int(rng.integers(0, 8))) for v in (ORIGINAL, FLIP)}
        records.append(PredictionRecord(
            f"img{n:03d}", 100, 100, views, prenms, rng.normal(size=6).astype(np.float32)
        ))
    return records


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    records = random_records(40)
    folder = tmp_path_factory.mktemp("shards")
    store = ShardStore(folder, {"image_ids": [r.image_id for r in records] + ["broken"],
                                "shard_size": 16})
    for k in range(store.num_shards):
        ids = set(store.shard_ids(k))
        skipped = [("broken", "unreadable")] if "broken" in ids else []
        store.write(k, [r for r in records if r.image_id in ids], skipped)
    return records, StoredRecords(folder)


def _same(a: PredictionRecord, b: PredictionRecord) -> bool:
    if (a.image_id, a.width, a.height, sorted(a.views), sorted(a.prenms)) != (
        b.image_id, b.width, b.height, sorted(b.views), sorted(b.prenms)
    ):
        return False
    pairs = [(a.views[v], b.views[v]) for v in a.views] + [(a.prenms[v], b.prenms[v]) for v in a.prenms]
    fields = ("boxes", "labels", "scores", "class_probs", "max_fg_prob", "fpn_level")
    return all(np.array_equal(getattr(x, f), getattr(y, f)) for x, y in pairs for f in fields) and (
        np.array_equal(a.feature, b.feature)
    )


def test_iteration_load_features_and_counts(stored):
    records, source = stored
    assert len(source) == 40 and source.ids == [r.image_id for r in records]  # "broken" skipped
    assert all(_same(a, b) for a, b in zip(records, source, strict=True))
    assert all(_same(a, b) for a, b in zip(records, source, strict=True))  # a second pass
    wanted = ["img031", "img002", "img017"]
    assert [r.image_id for r in source.load(wanted)] == wanted
    with pytest.raises(KeyError):
        source.load(["broken"])
    ids, features = source.features()
    assert ids == source.ids and features.dtype == np.float32
    np.testing.assert_array_equal(features, np.stack([r.feature for r in records]))
    expected = [int((r.original.scores >= 0.4).sum()) for r in records]
    assert source.original_box_counts(0.4).tolist() == expected


def test_views_without_some_images(stored):
    records, source = stored
    view = RecordsWithout(source, ["img000", "img005"])
    assert len(view) == 38 and [r.image_id for r in view] == view.ids
    ids, features = record_features(view)
    assert ids == view.ids and features.shape == (38, 6)
    assert [r.image_id for r in load_records(view, ["img007"])] == ["img007"]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("random", {}),
        ("entropy", {}),
        ("consistency", {"entropy_prefilter": 10}),
        ("cald", {}),
        ("hua", {}),
        ("huale", {}),
        ("huale", {"empty_fill_fraction": 0.5, "stage1": "cald"}),
        ("coreset", {}),
        ("coreset", {"base": "entropy", "pool_multiplier": 2}),
    ],
)
@pytest.mark.parametrize("costs", [False, True])
def test_every_strategy_selects_the_same_from_shards(stored, name, options, costs):
    records, source = stored
    strategy = build_strategy(name, **options)
    box_costs = {r.image_id: max(1, len(r.original)) for r in records} if costs else None
    ctx = context(seed=3, labeled_class_counts=np.array([4, 1]), num_labeled_images=3,
                  class_quality=np.array([0.7, 0.2]), labeled_features=np.zeros((1, 6)))
    in_memory = strategy.select(records, 6, ctx, costs=box_costs)
    streamed = strategy.select(source, 6, ctx, costs=box_costs)
    assert streamed == in_memory
    assert in_memory.selected
