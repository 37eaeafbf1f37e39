"""A first-cycle model whose best detection score is ~0.1: the flagship strategy must still rank
by the uncertainty that is there, never by file name (issue 11, item 4)."""

import logging

import numpy as np
import pytest

from huale.predictions import CUTOUT, FLIP, ORIGINAL, RESIZE, ROTATE
from huale.strategies import build_strategy
from huale.strategies.base import tie_order
from huale.strategies.no_detection import FILL, NO_DETECTION
from tests.strategies.fakes import context, dets, order, record

WEAK = 0.1  # every detection's score: far below HUA's thresholds (0.3)
BOX = [20.0, 20.0, 50.0, 50.0]


def weak_det(box):
    # posterior (background, c1, c2) = (0.85, 0.1, 0.05): label c1, score 0.1
    return dets([box], [[1 - WEAK - 0.05, WEAK, 0.05]])


def weak_frame(image_id: str, shift: float):
    """One weak detection; its flipped-view twin is shifted by ``shift`` px (0 = consistent).
    Pre-NMS boxes are stored above the member threshold (0.3) only: none for this model."""
    flipped = [BOX[0] + shift, BOX[1], BOX[2] + shift, BOX[3]]
    orig, flip = weak_det(BOX), weak_det(flipped)
    return record(image_id, orig, flip, prenms={ORIGINAL: dets(), FLIP: dets()},
                  **{CUTOUT: orig, RESIZE: orig, ROTATE: orig})


def empty_frame(image_id: str):
    return record(image_id, prenms={ORIGINAL: dets(), FLIP: dets()},
                  **{CUTOUT: dets(), RESIZE: dets(), ROTATE: dets()})


# 16 consecutive frames; how far the flip view disagrees does not follow the file order
SHIFTS = [3, 0, 12, 6, 0, 24, 9, 0, 15, 1, 21, 0, 18, 2, 27, 4]
POOL = [weak_frame(f"frame_{k:03d}", float(s)) for k, s in enumerate(SHIFTS)]
MOST_UNCERTAIN = [f"frame_{k:03d}" for k in np.argsort(SHIFTS, kind="stable")[::-1][:4]]


def test_huale_ranks_a_weak_models_pool_by_its_uncertainty_not_by_file_name(caplog):
    with caplog.at_level(logging.INFO, logger="huale.strategies"):
        selection = build_strategy("huale").select(POOL, 4, context())
    # the largest flip disagreements (shifts 27, 24, 21, 18) come first, in that order
    assert MOST_UNCERTAIN == ["frame_014", "frame_005", "frame_010", "frame_012"]
    assert selection.selected == MOST_UNCERTAIN
    assert selection.selected != sorted(selection.selected)
    stage2 = [s for s in selection.ranked if s.stage == "stage2"]
    assert [s.score for s in stage2] == sorted((s.score for s in stage2), reverse=True)
    assert len({s.score for s in stage2}) == len(stage2)  # no ties left to break
    # selection.json explains each pick by its objects
    assert all(s.objects and s.objects[0].class_name == "c1" for s in stage2)
    assert "the model's scores are low" in caplog.text


def test_hua_thresholds_stay_as_given_for_a_confident_model():
    confident = [
        record(f"c{k}", dets([BOX], [[0.02, 0.95, 0.03]]), dets([BOX], [[0.02, 0.95, 0.03]]),
               prenms={ORIGINAL: dets(), FLIP: dets()})
        for k in range(3)
    ]
    hua = build_strategy("hua")
    assert hua.thresholds(confident) == (0.3, 0.3)
    assert hua.thresholds(POOL) == pytest.approx((0.05, 0.05))  # ½ of the p90 best score 0.1
    assert build_strategy("hua", adaptive_thresholds=False).thresholds(POOL) == (0.3, 0.3)


def test_ties_are_broken_by_a_seeded_order_and_warned_about(caplog):
    # identical images: every score ties, for every strategy
    pool = [weak_frame(f"frame_{k:03d}", 0.0) for k in range(12)]
    for name in ("huale", "hua", "entropy", "cald"):
        picks = {seed: build_strategy(name).select(pool, 3, context(seed=seed)).selected
                 for seed in (0, 1)}
        for seed, selected in picks.items():
            expected = sorted((r.image_id for r in pool), key=lambda i: tie_order(seed, i))[:3]
            assert selected == expected, (name, seed)
        assert picks[0] != picks[1] and picks[0] != ["frame_000", "frame_001", "frame_002"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_strategy("hua").select(pool, 3, context())
    assert "12 of 12 candidates share the score" in caplog.text


@pytest.mark.parametrize("name", ["huale", "hua", "cald"])
def test_one_rule_for_images_without_detections(name, caplog):
    # 4 images with a detection, 8 without: the 8 come last, in the seeded order, with a warning
    pool = [weak_frame(f"a{k}", 6.0 * k) for k in range(4)]
    pool += [empty_frame(f"e{k}") for k in range(8)]
    with caplog.at_level(logging.WARNING):
        selection = build_strategy(name).select(pool, 3, context())
    assert "8 of 12 pool images have no detection" in caplog.text
    assert set(selection.selected) <= {f"a{k}" for k in range(4)}
    tail = selection.ranked[4:]
    assert [s.stage for s in tail] == [NO_DETECTION] * 8
    assert [s.image_id for s in tail] == sorted((f"e{k}" for k in range(8)),
                                                key=lambda i: tie_order(0, i))
    assert all(s.score == -np.inf for s in tail)

    # a budget the detected images cannot use goes to the others, in the same order
    larger = build_strategy(name).select(pool, 6, context())
    assert larger.selected[:4] == [s.image_id for s in larger.ranked[:4]]
    assert larger.selected[4:] == [s.image_id for s in tail[:2]]
    # empty_fill_fraction reserves part of the budget for them
    filled = build_strategy(name, empty_fill_fraction=0.5).select(pool, 4, context())
    assert sum(i.startswith("e") for i in filled.selected) == 2
    assert [s.stage for s in filled.ranked if s.image_id.startswith("e")][:2] == [FILL, FILL]
    assert order(filled)[:4] == filled.selected
