"""Paired statistics, gains at equal boxes and the validation choice, on records with known answers."""

import math

import pytest

from huale.reports import CycleRecord, load_records, summary_markdown, write_report
from huale.reports.stats import (
    equal_box_gains,
    image_gains,
    not_separated,
    paired_gain,
    pairwise_differences,
    t_critical_975,
    t_interval,
)

RANDOM = [0.30, 0.40, 0.50]  # every seed, cycles 0..2
# (strategy, seed) -> per-cycle test mAP; gains over cycles 1..2 chosen by hand:
#   huale   seed 0: +0.02, +0.04 -> 0.03; seed 1: +0.05, +0.07 -> 0.06; seed 2: +0.01, -0.01 -> 0.00
#   entropy seed 0: +0.10, +0.10 -> 0.10; seed 1: +0.11, +0.11 -> 0.11; seed 2: +0.12, +0.12 -> 0.12
TEST = {
    ("huale", 0): [0.30, 0.42, 0.54], ("huale", 1): [0.30, 0.45, 0.57], ("huale", 2): [0.30, 0.41, 0.49],
    ("entropy", 0): [0.30, 0.50, 0.60], ("entropy", 1): [0.30, 0.51, 0.61], ("entropy", 2): [0.30, 0.52, 0.62],
}
BOXES = {"random": [100, 200, 300], "huale": [100, 250, 400], "entropy": [100, 300, 500]}


def _write(run_dir, validation_offset=None):
    """Records of 3 seeds; validation metrics (when given) = test + offset[strategy]."""
    curves = {**{("random", s): RANDOM for s in range(3)}, **TEST}
    for (strategy, seed), values in curves.items():
        for cycle, value in enumerate(values):
            val = {}
            if validation_offset is not None:
                shift = validation_offset.get(strategy, 0.0) if cycle else 0.0
                val = {"voc": {"mAP": value + shift, "per_class": {}}}
            CycleRecord(strategy=strategy, seed=seed, cycle=cycle, num_labeled=100 * (cycle + 1),
                        metrics={"voc": {"mAP": value, "per_class": {}}}, validation_metrics=val,
                        num_boxes=BOXES[strategy][cycle]).write(run_dir)
    return load_records([run_dir])


def test_t_critical_values():
    assert t_critical_975(1) == pytest.approx(12.7062)
    assert t_critical_975(4) == pytest.approx(2.7764)
    # beyond the table: tabulated t(0.975, 40) = 2.0211, t(0.975, 60) = 2.0003, t(0.975, 120) = 1.9799
    assert t_critical_975(40) == pytest.approx(2.0211, abs=2e-4)
    assert t_critical_975(60) == pytest.approx(2.0003, abs=2e-4)
    assert t_critical_975(120) == pytest.approx(1.9799, abs=2e-4)
    with pytest.raises(ValueError):
        t_critical_975(0)


def test_paired_t_interval_by_hand(tmp_path):
    records = _write(tmp_path)
    huale = image_gains(records, "huale", "random")
    assert huale == pytest.approx({0: 0.03, 1: 0.06, 2: 0.00})
    g = paired_gain("huale", huale)
    # mean 0.03; sd (n-1) = sqrt((0 + 0.03² + 0.03²) / 2) = 0.03; se = 0.03 / sqrt(3) = 0.0173205;
    # t(0.975, 2) = 4.3027 -> half width 0.0745249 -> [-0.0445249, +0.1045249]; wins 2 of 3 (0 is no win)
    assert g.mean == pytest.approx(0.03)
    assert (g.low, g.high) == pytest.approx((-0.0445249, 0.1045249), abs=1e-6)
    assert g.wins == 2 and g.seeds == 3 and not g.separated_from_baseline
    e = paired_gain("entropy", image_gains(records, "entropy", "random"))
    # mean 0.11, sd 0.01, se 0.0057735, half 4.3027 * 0.0057735 = 0.0248416 -> [0.0851584, 0.1348416]
    assert (e.mean, e.low, e.high) == pytest.approx((0.11, 0.0851584, 0.1348416), abs=1e-6)
    assert e.wins == 3 and e.separated_from_baseline
    # 0.0851584 <= 0.1045249: the intervals overlap, so entropy and huale are not separated
    assert not_separated({"huale": g, "entropy": e}) == [("entropy", "huale")]
    assert t_interval([0.5]) == (0.5, None, None)
    assert paired_gain("x", {}) is None


def test_gain_at_equal_boxes_by_hand(tmp_path):
    records = _write(tmp_path)
    gains = equal_box_gains(records, "huale", "random")
    # seed 0: random (100, .30) (200, .40) (300, .50); huale (100, .30) (250, .42) (400, .54).
    # Shared box range [100, 300]; knots of cycles >= 1 inside it: 200, 250 (huale), 300.
    # huale at 200: .30 + 100/150 * .12 = .38; at 250: .42; at 300: .42 + 50/150 * .12 = .46
    # random at 200: .40; at 250: .45; at 300: .50 -> mean(-.02, -.03, -.04) = -.03
    assert gains[0] == pytest.approx(-0.03)
    assert set(gains) == {0, 1, 2}
    # records without box counts (written before they were recorded) give no equal-box gain
    old = [CycleRecord(**{**r.__dict__, "num_boxes": None}) for r in records]
    assert equal_box_gains(old, "huale", "random") == {}


def test_report_shows_both_splits_intervals_boxes_and_the_validation_choice(tmp_path):
    # on validation huale is ahead of entropy (offsets), on test entropy is: the choice is huale
    records = _write(tmp_path, validation_offset={"huale": 0.10, "entropy": -0.05})
    md = summary_markdown(records, choose=[["huale", "entropy"]])
    assert md.index("## Validation split") < md.index("## Test split")
    assert "### Paired gain vs random on the test split" in md
    assert "| entropy | +11.00 | [+8.52, +13.48] | 3/3 | yes |" in md
    assert "| huale | +3.00 | [-4.45, +10.45] | 2/3 | no |" in md
    assert "not separated: entropy ~ huale." in md
    assert "against labeled boxes" in md and "100 boxes: 30.00" in md
    assert "at equal labeled boxes on the test split" in md
    choice = md[md.index("### Option choice"):]
    # validation gains: huale 0.03 + 0.10 = +13.00, entropy 0.11 - 0.05 = +6.00 -> huale chosen
    assert "| huale | +13.00 |" in choice and "| entropy | +6.00 |" in choice
    assert "Reported (test split): **huale**, gain vs random +3.00 [-4.45, +10.45], wins 2/3." in choice
    paths = write_report([tmp_path], choose=[["huale", "entropy"]])
    assert {"png", "png_validation", "png_boxes", "markdown"} <= set(paths)
    assert paths["png_boxes"].read_bytes()[:4] == b"\x89PNG"


def test_a_single_seed_has_no_interval(tmp_path):
    for strategy, values in (("random", RANDOM), ("huale", TEST[("huale", 0)])):
        for cycle, value in enumerate(values):
            CycleRecord(strategy, 0, cycle, 100, {"voc": {"mAP": value, "per_class": {}}}).write(tmp_path)
    md = summary_markdown(load_records([tmp_path]))
    assert "| huale | +3.00 | n/a (1 seed) | 1/1 | no |" in md
    assert "not separated: no pair to compare (one strategy besides random)." in md
    assert "every pair separated" not in md
    assert "at equal labeled boxes" not in md  # no box counts in these records
    assert "## Test split" not in md  # one split: no split headings
    assert not math.isnan(paired_gain("huale", {0: 0.03}).mean)


def test_when_every_pair_overlaps_the_report_says_so(tmp_path):
    records = _write(tmp_path)
    # a third strategy equal to huale overlaps both huale and entropy: all 3 pairs overlap
    extra = [CycleRecord(**{**r.__dict__, "strategy": "hua"}) for r in records if r.strategy == "huale"]
    md = summary_markdown([*records, *extra])
    assert "not separated: all 3 pairs (no strategy is separated from another)." in md


def test_strategies_are_compared_with_each_other_paired_by_seed(tmp_path):
    records = _write(tmp_path)
    gains = {s: paired_gain(s, image_gains(records, s, "random")) for s in ("huale", "entropy")}
    [(a, b, d)] = pairwise_differences(gains)
    # entropy - huale per seed: .10 - .03, .11 - .06, .12 - .00 = .07, .05, .12; mean .08;
    # sd (n-1) = sqrt((.01² + .03² + .04²) / 2) = sqrt(.0013) = .0360555; se = .0208167;
    # half = 4.3027 * .0208167 = .0895678 -> [-.0095678, +.1695678]: every seed won, not separated
    assert (a, b, d.strategy) == ("entropy", "huale", "entropy − huale")
    assert (d.mean, d.low, d.high) == pytest.approx((0.08, -0.0095678, 0.1695678), abs=1e-6)
    assert d.wins == 3 and not d.separated_from_baseline
    # a strategy on fewer seeds is compared on the seeds both ran: hua's mean gain (.035) is
    # above huale's (.03, over 3 seeds), yet on seeds 0-1 huale is ahead by .01 each time
    short = paired_gain("hua", {0: 0.02, 1: 0.05})
    pairs = pairwise_differences({**gains, "hua": short})
    assert [(x, y) for x, y, _ in pairs] == [("entropy", "hua"), ("entropy", "huale"), ("huale", "hua")]
    assert pairs[2][2].per_seed == pytest.approx({0: 0.01, 1: 0.01}) and pairs[2][2].wins == 2
    assert pairwise_differences({"x": paired_gain("x", {0: 0.1}), "y": paired_gain("y", {1: 0.1})}) == []


def test_overlapping_intervals_that_the_paired_difference_separates_are_named(tmp_path):
    records = _write(tmp_path)
    # hua = huale - 0.01 at every cycle >= 1 of every seed: its interval against random overlaps
    # huale's, yet huale - hua = +0.01 on every seed (sd 0): the paired difference separates them
    extra = [CycleRecord(**{**r.__dict__, "strategy": "hua",
                            "metrics": {"voc": {"mAP": r.metrics["voc"]["mAP"] - (0.01 if r.cycle else 0),
                                                "per_class": {}}}})
             for r in records if r.strategy == "huale"]
    md = summary_markdown([*records, *extra])
    assert "not separated: all 3 pairs (no strategy is separated from another)." in md
    # entropy - hua per seed: .10 - .02, .11 - .05, .12 + .01 = .08, .06, .13: mean .09, the same
    # spread as entropy - huale above -> [.0004322, .1795678]: separated, though barely
    assert "| huale − hua | +1.00 | [+1.00, +1.00] | 3/3 | yes |" in md
    assert "| entropy − huale | +8.00 | [-0.96, +16.96] | 3/3 | no |" in md
    assert "| entropy − hua | +9.00 | [+0.04, +17.96] | 3/3 | yes |" in md
    assert "overlap but whose paired difference is separated: entropy − hua, huale − hua." in md
