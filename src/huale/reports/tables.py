"""Numbers of a report: learning curves over seeds, gain over random, area under the curve."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from huale.reports.records import CycleRecord


def learning_curves(
    records: Sequence[CycleRecord], metric: str = "voc", key: str | None = None
) -> dict[str, dict[int, dict]]:
    """``{strategy: {cycle: {"num_labeled", "values" (one per seed), "mean", "std"}}}``.

    ``num_labeled`` is the mean over seeds (identical for image budgets).
    """
    grouped: dict[str, dict[int, list[CycleRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if metric in r.metrics:
            grouped[r.strategy][r.cycle].append(r)
    curves: dict[str, dict[int, dict]] = {}
    for strategy, cycles in grouped.items():
        curves[strategy] = {}
        for cycle, rs in sorted(cycles.items()):
            values = np.array([r.value(metric, key) for r in rs], dtype=float)
            curves[strategy][cycle] = {
                "num_labeled": float(np.mean([r.num_labeled for r in rs])),
                "values": values.tolist(),
                "seeds": [r.seed for r in rs],
                "mean": float(values.mean()),
                "std": float(values.std(ddof=0)),
            }
    return curves


def mean_gain(curve: dict[int, dict], baseline: dict[int, dict]) -> float | None:
    """Mean over cycles 1..T-1 of (mean mAP - baseline mean mAP); cycle 0 is shared (CALD)."""
    cycles = [c for c in curve if c >= 1 and c in baseline]
    if not cycles:
        return None
    return float(np.mean([curve[c]["mean"] - baseline[c]["mean"] for c in cycles]))


def seed_gains(curve: dict[int, dict], baseline: dict[int, dict]) -> dict[int, float]:
    """``{seed: mean over cycles 1..T-1 of (mAP - baseline mAP of the same seed)}``: paired by
    seed, since both start from the same initial labeled set and cycle-0 model."""
    per_seed: dict[int, list[float]] = defaultdict(list)
    for cycle in (c for c in curve if c >= 1 and c in baseline):
        base = dict(zip(baseline[cycle]["seeds"], baseline[cycle]["values"], strict=True))
        for seed, value in zip(curve[cycle]["seeds"], curve[cycle]["values"], strict=True):
            if seed in base:
                per_seed[seed].append(value - base[seed])
    return {seed: float(np.mean(v)) for seed, v in sorted(per_seed.items())}


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


def summary_markdown(
    records: Sequence[CycleRecord], metric: str = "voc", baseline: str = "random"
) -> str:
    """Markdown: per-cycle mean ± std, mean gain over ``baseline`` (cycles 1..T-1), area under
    the curve, and per-class AP at the last cycle. Values in percent."""
    curves = learning_curves(records, metric)
    name = "COCO AP" if metric == "coco" else ("VOC07 mAP@0.5" if metric == "voc07" else "VOC mAP@0.5")
    cycles = sorted({c for curve in curves.values() for c in curve})
    sizes = {c: next(curve[c]["num_labeled"] for curve in curves.values() if c in curve) for c in cycles}
    header = ["strategy", *[f"{int(sizes[c])} img" for c in cycles], f"gain vs {baseline}",
              "gain per seed", "AULC", "seeds"]
    lines = [
        f"### {name} (%) by labeled-set size: mean ± std over seeds",
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
        gain = mean_gain(curve, base) if paired else None
        per_seed = ", ".join(_pct(g, signed=True) for g in seed_gains(curve, base).values()) if paired else ""
        seeds = max(len(v["values"]) for v in curve.values())
        lines.append(
            "| " + " | ".join([strategy, *cells, _pct(gain, signed=True) if gain is not None else "—",
                                per_seed or "—", _pct(area_under_curve(curve)), str(seeds)]) + " |"
        )
    lines += [
        "",
        f"Gain vs {baseline}: mean over cycles 1..T-1 of the difference in mean {name} "
        "(cycle 0 is the shared initial set, excluded as in CALD). AULC: average height of the "
        "mean learning curve over the labeled-set range. Gain per seed: the same difference "
        f"against {baseline} of the same seed (same initial set), in seed order.",
        "",
        _per_class_markdown(records, metric),
        "",
        _cost_markdown(records),
    ]
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
        f"### Per-class AP (%) at the last cycle ({last}), mean over seeds",
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
