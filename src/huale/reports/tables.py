"""Numbers of a report: learning curves over seeds, gain over random, area under the curve."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from huale.reports.machines import machines_markdown
from huale.reports.records import CycleRecord
from huale.reports.stats import (
    PairedGain,
    equal_box_gains,
    image_gains,
    not_separated,
    paired_gain,
    pairwise_differences,
)


def learning_curves(
    records: Sequence[CycleRecord], metric: str = "voc", key: str | None = None, split: str = "test"
) -> dict[str, dict[int, dict]]:
    """``{strategy: {cycle: {"num_labeled", "num_boxes", "values" (one per seed), "mean", "std"}}}``
    on ``split`` ("test" or "validation").

    ``num_labeled`` and ``num_boxes`` (ground-truth boxes labeled; None in records without box
    counts) are means over seeds (``num_labeled`` is identical for image budgets).
    """
    grouped: dict[str, dict[int, list[CycleRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.has(metric, split):
            grouped[r.strategy][r.cycle].append(r)
    curves: dict[str, dict[int, dict]] = {}
    for strategy, cycles in grouped.items():
        curves[strategy] = {}
        for cycle, rs in sorted(cycles.items()):
            values = np.array([r.value(metric, key, split) for r in rs], dtype=float)
            boxes = [r.num_boxes for r in rs]
            curves[strategy][cycle] = {
                "num_labeled": float(np.mean([r.num_labeled for r in rs])),
                "num_boxes": None if None in boxes else float(np.mean(boxes)),
                "values": values.tolist(),
                "seeds": [r.seed for r in rs],
                "mean": float(values.mean()),
                "std": float(values.std(ddof=0)),
            }
    return curves


def area_under_curve(curve: dict[int, dict]) -> float | None:
    """Normalised area under the mean learning curve: trapezoids over labeled-set size divided
    by the size range, i.e. the curve's average height (in mAP units)."""
    xs = np.array([curve[c]["num_labeled"] for c in sorted(curve)])
    ys = np.array([curve[c]["mean"] for c in sorted(curve)])
    if len(xs) < 2 or xs[-1] == xs[0]:
        return None
    return float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)) / (xs[-1] - xs[0]))


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"


METRIC_NAMES = {"voc": "VOC mAP@0.5", "voc07": "VOC07 mAP@0.5", "coco": "COCO AP"}


def splits_in(records: Sequence[CycleRecord], metric: str = "voc") -> list[str]:
    """The splits the records hold ``metric`` for, validation first."""
    return [s for s in ("validation", "test") if any(r.has(metric, s) for r in records)]


def summary_markdown(
    records: Sequence[CycleRecord], metric: str = "voc", baseline: str = "random",
    choose: Sequence[Sequence[str]] = (),
) -> str:
    """Markdown, one section per split (validation first when the run holds one out): per-cycle
    mean ± std, mean gain over ``baseline`` (cycles 1..T-1) with its paired 95% t interval and
    wins, and, when the records count labeled boxes, mAP against boxes and the gain at equal
    boxes. ``choose``: groups of strategy variants; in each the variant with the highest mean
    gain on the validation split is chosen and reported on the test split. Then per-class AP at
    the last cycle (test split), wall time and the machines the records name
    (:mod:`huale.reports.machines`). Values in percent."""
    splits = splits_in(records, metric)
    lines = [_split_markdown(records, metric, baseline, split, title=len(splits) > 1) for split in splits]
    for group in choose:
        lines.append(_choice_markdown(records, metric, baseline, list(group)))
    lines += [_per_class_markdown(records, metric), _cost_markdown(records),
              machines_markdown(records)]
    return "\n\n".join(line for line in lines if line)


def _split_markdown(records: Sequence[CycleRecord], metric: str, baseline: str, split: str,
                    *, title: bool) -> str:
    curves = learning_curves(records, metric, split=split)
    name = METRIC_NAMES[metric]
    cycles = sorted({c for curve in curves.values() for c in curve})
    sizes = {c: next(curve[c]["num_labeled"] for curve in curves.values() if c in curve) for c in cycles}
    header = ["strategy", *[f"{int(sizes[c])} img" for c in cycles], f"gain vs {baseline}",
              "gain per seed", "AULC", "seeds"]
    lines = [f"## {split.capitalize()} split", ""] if title else []
    lines += [
        f"### {name} (%) on the {split} split by labeled-set size: mean ± std over seeds",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    base = curves.get(baseline)
    for strategy in sorted(curves, key=lambda s: (s != baseline, s)):
        curve = curves[strategy]
        cells = [
            f"{_pct(curve[c]['mean'])} ± {_pct(curve[c]['std'])}" if c in curve else "" for c in cycles
        ]
        paired = base is not None and strategy != baseline
        by_seed = image_gains(records, strategy, baseline, metric=metric, split=split) if paired else {}
        gain = float(np.mean(list(by_seed.values()))) if by_seed else None
        per_seed = ", ".join(_pct(g, signed=True) for g in by_seed.values())
        seeds = max(len(v["values"]) for v in curve.values())
        lines.append(
            "| " + " | ".join([strategy, *cells, _pct(gain, signed=True) if gain is not None else "—",
                                per_seed or "—", _pct(area_under_curve(curve)), str(seeds)]) + " |"
        )
    lines += [
        "",
        f"Gain per seed: mean over cycles 1..T-1 of the difference in {name} against {baseline} "
        "of the same seed (same initial set; cycle 0 is that shared set, excluded as in CALD), in "
        f"seed order. Gain vs {baseline}: the mean of those per-seed gains (seeds {baseline} lacks "
        "are left out). AULC: average height of the mean learning curve over the labeled-set "
        "range.",
    ]
    if base is None:
        return "\n".join(lines)
    others = [s for s in sorted(curves) if s != baseline]
    gains = {s: paired_gain(s, image_gains(records, s, baseline, metric=metric, split=split)) for s in others}
    lines += ["", _gain_table(
        f"### Paired gain vs {baseline} on the {split} split ({name}, percentage points)",
        {s: g for s, g in gains.items() if g is not None}, baseline)]
    if all(r.num_boxes is not None for r in records):
        lines += ["", _boxes_table(curves, name, split), ""]
        box_gains = {s: paired_gain(s, equal_box_gains(records, s, baseline, metric=metric, split=split))
                     for s in others}
        lines.append(_gain_table(
            f"### Gain vs {baseline} at equal labeled boxes on the {split} split ({name}, "
            "percentage points)", {s: g for s, g in box_gains.items() if g is not None}, baseline))
        lines += ["", "At equal boxes: per seed, each learning curve is linear between its cycles "
                  "in the number of ground-truth boxes labeled; the difference is averaged over the "
                  "box counts of both curves' cycles ≥ 1 inside the range both cover (no "
                  "extrapolation), then summarised over seeds as above."]
    return "\n".join(lines)


def _interval(g: PairedGain) -> str:
    return "n/a (1 seed)" if g.low is None else f"[{_pct(g.low, signed=True)}, {_pct(g.high, signed=True)}]"


def _gain_table(heading: str, gains: dict[str, PairedGain], baseline: str) -> str:
    """Mean gain, 95% t interval over seeds, wins, separation; then the pairs not separated."""
    lines = [heading, "", f"| strategy | mean gain | 95% interval | wins | separated from {baseline} |",
             "|---|---|---|---|---|"]
    for s in sorted(gains, key=lambda s: -gains[s].mean):
        g = gains[s]
        lines.append(f"| {s} | {_pct(g.mean, signed=True)} | {_interval(g)} | {g.wins}/{g.seeds} | "
                     f"{'yes' if g.separated_from_baseline else 'no'} |")
    pairs = not_separated(gains)
    total = len(gains) * (len(gains) - 1) // 2
    if total == 0:
        listed = f"no pair to compare (one strategy besides {baseline})"
    elif not pairs:
        listed = "none (every pair separated)"
    elif len(pairs) == total and total > 1:
        listed = f"all {total} pairs (no strategy is separated from another)"
    else:
        listed = ", ".join(f"{a} ~ {b}" for a, b in pairs)
    lines += [
        "",
        f"Paired over seeds (same seed = same initial set as {baseline}); interval: two-sided 95% "
        "Student t, mean ± t(0.975, n−1)·sd/√n; wins: seeds with a gain > 0. Strategies whose "
        f"intervals overlap are not separated: {listed}.",
    ]
    diffs = pairwise_differences(gains)
    if diffs:
        lines += ["", _pairwise_table(diffs, pairs)]
    return "\n".join(lines)


def _pairwise_table(diffs: list[tuple[str, str, PairedGain]], overlapping: list[tuple[str, str]]) -> str:
    """Each pair's paired difference; then which overlapping pairs it nevertheless orders."""
    lines = ["| pair (the one ahead first) | mean difference | 95% interval | seeds won by the first "
             "| separated |", "|---|---|---|---|---|"]
    for _, _, d in diffs:
        lines.append(f"| {d.strategy} | {_pct(d.mean, signed=True)} | {_interval(d)} | "
                     f"{d.wins}/{d.seeds} | {'yes' if d.separated_from_baseline else 'no'} |")
    overlap = {tuple(sorted(p)) for p in overlapping}
    ordered = [d.strategy for a, b, d in diffs if d.separated_from_baseline
               and tuple(sorted((a, b))) in overlap]
    lines += ["", "Strategy against strategy, paired by seed: per seed, the difference of the two "
              "gains (the baseline cancels), on the seeds both ran, with its 95% t interval, the one "
              "ahead on those seeds named first; "
              "separated: the interval excludes 0. Each interval is 95% on its own (no "
              f"correction for multiple comparisons): of {len(diffs)} pairs that did not differ, "
              f"about {len(diffs) / 20:.1f} would still look separated by chance. Pairs whose "
              "intervals above overlap but whose paired difference is separated: "
              f"{', '.join(ordered) if ordered else 'none'}."]
    return "\n".join(lines)


def _boxes_table(curves: dict[str, dict[int, dict]], name: str, split: str) -> str:
    cycles = sorted({c for curve in curves.values() for c in curve})
    lines = [f"### {name} (%) on the {split} split against labeled boxes: mean over seeds "
             "(boxes: ground truth of the labeled set)", "",
             "| strategy | " + " | ".join(f"cycle {c}" for c in cycles) + " |", "|" + "---|" * (len(cycles) + 1)]
    for strategy in sorted(curves, key=lambda s: (s != "random", s)):
        curve = curves[strategy]
        cells = [f"{curve[c]['num_boxes']:.0f} boxes: {_pct(curve[c]['mean'])}" if c in curve else ""
                 for c in cycles]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _choice_markdown(records: Sequence[CycleRecord], metric: str, baseline: str,
                     candidates: list[str]) -> str:
    """Choose among ``candidates`` on the validation split; report the choice on the test split."""
    name = METRIC_NAMES[metric]
    heading = f"### Option choice on the validation split: {', '.join(candidates)}"
    val = {s: paired_gain(s, image_gains(records, s, baseline, metric=metric, split="validation"))
           for s in candidates}
    test = {s: paired_gain(s, image_gains(records, s, baseline, metric=metric, split="test"))
            for s in candidates}
    if any(g is None for g in val.values()):
        missing = [s for s, g in val.items() if g is None]
        return f"{heading}\n\nNo validation numbers against {baseline} for {', '.join(missing)}: no choice made."
    chosen = max(candidates, key=lambda s: val[s].mean)
    lines = [heading, "",
             f"Rule: the variant with the highest mean gain vs {baseline} in {name} on the validation "
             "split is chosen before looking at the test split; its test numbers are the reported result.",
             "", "| variant | validation gain | validation 95% interval | test gain | test 95% interval | chosen |",
             "|---|---|---|---|---|---|"]
    for s in candidates:
        v, t = val[s], test[s]
        lines.append(f"| {s} | {_pct(v.mean, signed=True)} | {_interval(v)} | "
                     f"{_pct(t.mean, signed=True) if t else 'n/a'} | {_interval(t) if t else 'n/a'} | "
                     f"{'**yes**' if s == chosen else ''} |")
    t = test[chosen]
    lines += ["", f"Reported (test split): **{chosen}**, gain vs {baseline} "
              + (f"{_pct(t.mean, signed=True)} {_interval(t)}, wins {t.wins}/{t.seeds}." if t else "n/a.")]
    overlap = val[chosen].overlaps  # the choice is only as sure as its validation intervals
    rivals = [s for s in candidates if s != chosen and overlap(val[s])]
    if rivals:
        lines.append(f"The validation intervals of {chosen} and {', '.join(rivals)} overlap: the choice "
                     "is not separated from the alternative(s) on validation.")
    return "\n".join(lines)


def _per_class_markdown(records: Sequence[CycleRecord], metric: str) -> str:
    last = max(r.cycle for r in records)
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    class_order: list[str] = []
    for r in records:
        if r.cycle != last or metric not in r.metrics:
            continue
        for cls, ap in r.metrics[metric].get("per_class", {}).items():
            if cls not in class_order:
                class_order.append(cls)
            if ap is not None:
                per[r.strategy][cls].append(float(ap))
    if not per:
        return ""
    lines = [
        f"### Per-class AP (%) on the test split at the last cycle ({last}), mean over seeds",
        "",
        "| class | " + " | ".join(sorted(per)) + " |",
        "|" + "---|" * (len(per) + 1),
    ]
    for cls in class_order:
        cells = [_pct(float(np.mean(per[s][cls]))) if per[s][cls] else "n/a" for s in sorted(per)]
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cost_markdown(records: Sequence[CycleRecord]) -> str:
    """Mean wall seconds per cycle: training (cycles >= 1; cycle 0 is shared) and scoring +
    selection (cycles that selected)."""
    train: dict[str, list[float]] = defaultdict(list)
    score: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.cycle >= 1:
            train[r.strategy].append(r.train_seconds)
        if r.selected:
            score[r.strategy].append(r.score_seconds)
    lines = [
        "### Wall time per cycle (s), mean over seeds and cycles",
        "",
        "| strategy | training (cycles ≥ 1) | scoring + selection |",
        "|---|---|---|",
    ]
    for strategy in sorted({r.strategy for r in records}):
        cells = [f"{np.mean(v[strategy]):.1f}" if v[strategy] else "n/a" for v in (train, score)]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
