import logging

import numpy as np
import pytest

from huale.errors import ConfigError
from huale.predictions import FLIP, ORIGINAL
from huale.strategies.base import tie_order
from huale.strategies.class_difficulty import difficulty_weights
from huale.strategies.huale import Huale, HualeScreening
from tests.strategies.fakes import context, dets, order, record

BOX = [10, 10, 40, 40]
POSTERIOR = [[0.1, 0.8, 0.1]]  # class 1, p̂ = 0.8


def one_view(image_id, posterior=POSTERIOR, box=BOX):
    """An object the original view sees and the flipped view misses."""
    det = dets([box], posterior)
    return record(image_id, det, dets(), prenms={ORIGINAL: det, FLIP: dets()})


def consistent(image_id):
    """The same object with the same posterior in both views."""
    det = dets([BOX], POSTERIOR)
    return record(image_id, det, det, prenms={ORIGINAL: det, FLIP: det})


def empty(image_id):
    return record(image_id, prenms={ORIGINAL: dets(), FLIP: dets()})


def test_stage1_object_in_one_view_ranks_high_and_no_detection_last():
    # one view: v = 1 (missing in the flip branch) -> S1 = p̂·v = 0.8
    # consistent: M = 1 + ½·1·(0.8 + 0.8) = 1.8, v = 1 − 0.9 = 0.1 -> S1 = 0.08
    # no detection in either branch -> S1 = −inf
    pool = [empty("a_empty"), consistent("b_consistent"), one_view("c_one_view")]
    scores = {s.image_id: s for s in HualeScreening().score(pool, context())}
    assert scores["c_one_view"].score == pytest.approx(0.8, abs=1e-6)
    assert scores["b_consistent"].score == pytest.approx(0.08, abs=1e-6)
    assert scores["a_empty"].score == -np.inf
    assert scores["c_one_view"].objects[0].levels == {"view": "orig", "inconsistency": 1.0}
    selection = Huale().select(pool, 1, context(class_quality=np.zeros(2)))
    assert order(selection)[-1] == "a_empty"
    assert selection.selected == ["c_one_view"]


def test_object_seen_only_in_the_flipped_view_counts_too():
    det = dets([BOX], POSTERIOR)
    flipped_only = record("f", dets(), det, prenms={ORIGINAL: dets(), FLIP: det})
    score = HualeScreening().score([flipped_only], context())[0]
    assert score.score == pytest.approx(0.8, abs=1e-6)
    assert score.objects[0].levels["view"] == "flip"
    # stage 2: the member comes from the flip branch and has v = 1 -> S2 = 1 (w = 1)
    hua_score = Huale(class_weights="none").second.score([flipped_only], context())[0]
    assert hua_score.score == pytest.approx(1.0)


def test_cald_style_stage1_alternative():
    # one view: M = 2(1 − 1) = 0 -> C = min(1, |0 − 1.3|) = 1 -> S1 = −1
    # consistent: M = 1.8 -> C = |1.8 − 1.3| = 0.5 -> S1 = −0.5 (CALD ranks it first)
    pool = [consistent("b"), one_view("c"), empty("a")]
    scores = {s.image_id: s.score for s in HualeScreening(stage1="cald").score(pool, context())}
    assert scores == pytest.approx({"a": -np.inf, "b": -0.5, "c": -1.0})


@pytest.mark.parametrize(("budget", "multiplier", "pool_size"), [(2, 2.0, 4), (3, 1.5, 4)])
def test_stage1_keeps_floor_mu_b_and_selected_come_from_stage2(budget, multiplier, pool_size):
    # 7 one-view images with distinct S1 = p̂ = 0.9 − 0.08·i, plus 2 consistent ones (S1 = 0.08)
    pool = [one_view(f"img{i}", [[0.1 + 0.08 * i, 0.9 - 0.08 * i, 0.0]]) for i in range(7)]
    pool += [consistent("z1"), consistent("z2")]
    selection = Huale(pool_multiplier=multiplier).select(pool, budget, context())
    stages = [s.stage for s in selection.ranked]
    assert stages.count("stage2") == pool_size  # ⌊μ·B⌋
    assert stages == ["stage2"] * pool_size + ["stage1"] * (len(pool) - pool_size)
    pool_ids = {s.image_id for s in selection.ranked if s.stage == "stage2"}
    assert set(selection.selected) <= pool_ids and len(selection.selected) == budget
    stage1 = sorted(HualeScreening().score(pool, context()), key=lambda s: -s.score)
    assert pool_ids == {s.image_id for s in stage1[:pool_size]}


def test_class_weights_change_the_order():
    # both images: one object seen in one view only, u = 1 -> S2 = w_c.
    # Without weights they tie and the seeded order breaks the tie (seed 0: b_, seed 1: a_).
    # With q = [1, 0]: w = [1, 1.2] -> the class-2 image b_ wins whatever the seed.
    pool = [one_view("a_class1"), one_view("b_class2", [[0.1, 0.1, 0.8]])]
    for seed, first in ((0, "b_class2"), (1, "a_class1")):
        assert sorted(["a_class1", "b_class2"], key=lambda i: tie_order(seed, i))[0] == first
        plain = Huale(class_weights="none").select(pool, 1, context(seed=seed))
        assert plain.selected == [first]
        weighted = Huale().select(pool, 1, context(class_quality=np.array([1.0, 0.0]), seed=seed))
        assert weighted.selected == ["b_class2"]
    assert weighted.ranked[0].score == pytest.approx(1.2)


def test_missing_class_quality_falls_back_to_unit_weights_with_a_note(caplog):
    with caplog.at_level(logging.WARNING):
        selection = Huale().select([one_view("a")], 1, context())
    assert selection.ranked[0].score == pytest.approx(1.0)
    assert "class quality" in caplog.text


def test_difficulty_weight_formula():
    # w = 1 + δα·ln(b(1−q) + 1), b = e^{1/α} − 1:
    # q = 0 -> 1 + δα·ln(e^{1/α}) = 1 + δ = 1.2;  q = 1 -> 1 + δα·ln1 = 1
    # q = ½, α = .3: b = e^{10/3} − 1 = 27.031624; ln(13.515812 + 1) = 2.675238 -> 1 + .06·2.675238 = 1.160514
    w = difficulty_weights(np.array([0.0, 1.0, 0.5]))
    np.testing.assert_allclose(w, [1.2, 1.0, 1.160514], atol=1e-6)
    assert difficulty_weights(np.array([0.0]), alpha=0.5, delta=0.4)[0] == pytest.approx(1.4)


def test_empty_fill_fraction_takes_random_empty_images():
    pool = [empty(f"e{i}") for i in range(4)] + [one_view(f"o{i}") for i in range(3)]
    # B = 4, fill ⌊0.5·4⌋ = 2 empty images, the cascade picks the other 2
    selection = Huale(empty_fill_fraction=0.5).select(pool, 4, context(seed=7))
    filled = [s.image_id for s in selection.ranked if s.stage == "fill"]
    assert len(filled) == 2 and all(i.startswith("e") for i in filled)
    assert set(filled) <= set(selection.selected) and len(selection.selected) == 4
    assert sum(i.startswith("o") for i in selection.selected) == 2
    again = Huale(empty_fill_fraction=0.5).select(pool, 4, context(seed=7))
    assert again.selected == selection.selected
    # without the option, no empty image is selected while non-empty ones remain
    plain = Huale().select(pool, 3, context())
    assert sorted(plain.selected) == ["o0", "o1", "o2"]


def test_needs_and_options():
    needs = Huale().needs
    assert needs.views == ("orig", "flip") and needs.prenms and needs.class_quality
    assert not Huale(class_weights="none").needs.class_quality
    with pytest.raises(ConfigError, match="stage1"):
        Huale(stage1="entropy")
    with pytest.raises(ConfigError, match="pool_multiplier"):
        Huale(pool_multiplier=0.5)
