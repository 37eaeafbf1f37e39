"""The detector-adapter seam: capabilities, stand-ins, and failing before any scoring."""

from __future__ import annotations

import numpy as np
import pytest

from huale.augment import boxes_to_original
from huale.errors import ConfigError
from huale.inference import ScoringRequest, score_pool
from huale.inference.adapters import (
    Capabilities,
    DetectorAdapter,
    adapter_class,
    as_adapter,
    check_needs,
)
from huale.inference.adapters.faster_rcnn import FasterRCNNAdapter
from huale.predictions import (
    FLIP,
    ORIGINAL,
    Detections,
    PredictionRecord,
    fpn_level_from_boxes,
    score_posterior,
)
from huale.selection.run import select_with_model
from huale.strategies import build_strategy
from tests.conftest import make_tiny_dataset

CPU = ScoringRequest(device="cpu", progress=False, batch_size=2)


class ScoresOnly(DetectorAdapter):
    """A detector giving one box per view (the brightest column band), with a score only: no
    posterior, no FPN level, no pre-NMS boxes, no features; original and flipped views."""

    name = "scores-only"
    capabilities = Capabilities(views=(ORIGINAL, FLIP))

    def __init__(self):
        self.calls = 0

    def predict(self, items, views):
        self.calls += 1
        records = []
        for item in (i for i in items if i.error is None):
            per_view = {}
            for name, view, geometry in zip(views, item.views, item.geometries, strict=True):
                column = int(view.mean(dim=(0, 1)).argmax())
                box = np.array([[column, 0, column + 8, 16]], np.float32)
                score = np.array([float(view.mean())], np.float32)
                per_view[name] = Detections.build(
                    boxes_to_original(box, geometry), [1], score, num_classes=2
                )
            records.append(PredictionRecord(item.image_id, item.width, item.height, per_view))
        return records

    def manifest(self):
        return {"name": self.name}


def test_fpn_level_stand_in_follows_the_fpn_rule():
    # sqrt(wh) = 224 -> k = 4; 112 -> 3; 448 -> 5; 56 -> 2; 20 -> floor(4 + log2(20/224)) = 0
    # -> clamped to 2; 2000 -> 7 -> clamped to 5; a degenerate box -> the lowest level
    sides = [224, 112, 448, 56, 20, 2000, 0]
    boxes = np.array([[10, 10, 10 + s, 10 + s] for s in sides], np.float32)
    assert fpn_level_from_boxes(boxes).tolist() == [4, 3, 5, 2, 2, 5, 2]
    # a 100 x 400 box: sqrt = 200 -> floor(4 + log2(200/224)) = floor(3.84) = 3
    assert fpn_level_from_boxes(np.array([[0, 0, 100, 400]])).tolist() == [3]


def test_score_posterior_puts_the_score_on_the_label_and_the_rest_on_the_background():
    probs = score_posterior(np.array([2, 1]), np.array([0.75, 0.5]), num_classes=3)
    np.testing.assert_allclose(probs, [[0.25, 0, 0.75, 0], [0.5, 0.5, 0, 0]])
    dets = Detections.build(np.zeros((2, 4)), [2, 1], [0.75, 0.5], num_classes=3)
    np.testing.assert_allclose(dets.max_fg_prob, [0.75, 0.5])
    assert dets.class_probs.dtype == np.float32 and dets.fpn_level.dtype == np.int64


def test_a_strategy_needing_what_the_detector_cannot_give_fails_before_scoring(tmp_path):
    pool = make_tiny_dataset(tmp_path / "pool", num_images=3, size=32, seed=1)
    adapter = ScoresOnly()
    for name, field in (("cald", r"view\(s\) cutout"), ("coreset", "features")):
        with pytest.raises(ConfigError, match=f"strategy '{name}' needs .*{field}") as info:
            select_with_model(adapter, pool, None, build_strategy(name), 1, CPU)
        assert "\n" not in str(info.value) and "scores-only" in str(info.value)
    assert adapter.calls == 0
    check_needs("hua", build_strategy("hua").needs, adapter)  # stand-ins cover hua


def test_scores_only_detector_serves_hua_through_the_stand_ins(tmp_path):
    pool = make_tiny_dataset(tmp_path / "pool", num_images=4, size=32, seed=2)
    adapter = ScoresOnly()
    needs = build_strategy("hua").needs
    records = score_pool(adapter, pool, needs, CPU)
    assert adapter.calls == 2 and [r.image_id for r in records] == pool.ids
    for record in records:
        assert set(record.prenms) == {ORIGINAL, FLIP}  # the final boxes stand in
        assert record.prenms[FLIP] is record.views[FLIP]
        assert record.original.fpn_level.tolist() == [2]  # a 8 x 16 box
    for name in ("random", "entropy", "consistency", "hua", "huale"):
        selection = select_with_model(adapter, pool, None, build_strategy(name), 2, CPU)
        assert len(selection.selected) == 2, name


def test_registry_and_wrapping():
    assert adapter_class("torchvision") is FasterRCNNAdapter
    with pytest.raises(ConfigError, match="unknown detector 'nope'"):
        adapter_class("nope")
    adapter = ScoresOnly()
    assert as_adapter(adapter) is adapter
    with pytest.raises(TypeError):
        as_adapter("model.pt")
