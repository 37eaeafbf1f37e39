"""Paired statistics of a strategy against a baseline over seeds, in images and in labeled boxes.

A strategy and the baseline share each seed's initial labeled set and cycle-0 model, so their
difference is measured seed by seed (paired) and summarised over seeds:

* the mean of the per-seed gains with a two-sided 95% Student t interval,
  ``mean ± t(0.975, n-1) · sd / sqrt(n)`` (``sd`` with ``n - 1`` in the denominator); no
  interval from a single seed;
* wins: the seeds on which the gain is > 0;
* two strategies whose intervals overlap are *not separated* (a conservative reading: the data
  cannot order them);
* two strategies are also compared with each other directly, paired by seed: the baseline
  cancels from ``gain_a - gain_b`` of the same seed, so the interval of that difference is the
  sharper test (intervals against the baseline may overlap while every seed orders the two the
  same way).

Gain at equal boxes (labeling cost): per seed, both learning curves are taken as piecewise
linear in the number of ground-truth boxes labeled, and their difference is averaged over the
box counts of either curve's cycles ≥ 1 that lie inside the box range both curves cover (no
extrapolation). A strategy that buys more boxes per image is thereby compared at the cost it
paid rather than at the number of images.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from huale.reports.records import CycleRecord

# two-sided 95% critical values t(0.975, df) of Student's t distribution, df = 1..30
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
_Z975 = 1.959964


def t_critical_975(df: int) -> float:
    """t(0.975, df): a table for df ≤ 30, beyond it the Cornish-Fisher expansion around the
    normal quantile (error < 1e-4 for df > 30)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


@dataclass(frozen=True)
class PairedGain:
    """A strategy's per-seed gains over the baseline and their summary (mAP units, 0..1).

    low/high: the 95% t interval of the mean; None with fewer than 2 seeds."""

    strategy: str
    per_seed: dict[int, float]
    mean: float
    low: float | None
    high: float | None
    wins: int

    @property
    def seeds(self) -> int:
        return len(self.per_seed)

    @property
    def separated_from_baseline(self) -> bool:
        """The interval excludes 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def overlaps(self, other: PairedGain) -> bool:
        """Intervals overlap (or one is missing): the two strategies are not separated."""
        if None in (self.low, self.high, other.low, other.high):
            return True
        return self.low <= other.high and other.low <= self.high


def t_interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """(mean, low, high) of the two-sided 95% t interval of the mean; (mean, None, None) for
    one value."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values")
    mean = float(x.mean())
    if x.size < 2:
        return mean, None, None
    half = t_critical_975(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def paired_gain(strategy: str, per_seed: dict[int, float]) -> PairedGain | None:
    """Summary of per-seed gains (None when there is no seed)."""
    if not per_seed:
        return None
    mean, low, high = t_interval(list(per_seed.values()))
    wins = sum(1 for g in per_seed.values() if g > 0)
    return PairedGain(strategy, dict(sorted(per_seed.items())), mean, low, high, wins)


def _seed_curves(records: Sequence[CycleRecord], metric: str, split: str, key: str | None,
                 ) -> dict[tuple[str, int], list[CycleRecord]]:
    curves: dict[tuple[str, int], list[CycleRecord]] = defaultdict(list)
    for r in records:
        if r.has(metric, split):
            curves[(r.strategy, r.seed)].append(r)
    return {k: sorted(v, key=lambda r: r.cycle) for k, v in curves.items()}


def image_gains(records: Sequence[CycleRecord], strategy: str, baseline: str, *, metric: str = "voc",
                split: str = "test", key: str | None = None) -> dict[int, float]:
    """``{seed: mean over the cycles ≥ 1 both ran of (strategy value - baseline value)}``."""
    curves = _seed_curves(records, metric, split, key)
    gains = {}
    for (name, seed), mine in curves.items():
        base = {r.cycle: r for r in curves.get((baseline, seed), [])}
        if name != strategy or not base:
            continue
        diffs = [r.value(metric, key, split) - base[r.cycle].value(metric, key, split)
                 for r in mine if r.cycle >= 1 and r.cycle in base]
        if diffs:
            gains[seed] = float(np.mean(diffs))
    return dict(sorted(gains.items()))


def _box_curve(rs: Sequence[CycleRecord], metric: str, key: str | None, split: str
               ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(boxes, values) increasing in boxes (equal counts averaged) and the box counts of the
    cycles ≥ 1."""
    by_boxes: dict[int, list[float]] = defaultdict(list)
    for r in rs:
        by_boxes[int(r.num_boxes)].append(r.value(metric, key, split))
    xs = np.array(sorted(by_boxes), dtype=float)
    ys = np.array([np.mean(by_boxes[int(x)]) for x in xs])
    return xs, ys, [float(r.num_boxes) for r in rs if r.cycle >= 1]


def equal_box_gains(records: Sequence[CycleRecord], strategy: str, baseline: str, *, metric: str = "voc",
                    split: str = "test", key: str | None = None) -> dict[int, float]:
    """``{seed: gain at equal labeled boxes}`` (module docstring); seeds whose records lack box
    counts, or whose two curves share no box range beyond cycle 0, are left out."""
    curves = _seed_curves(records, metric, split, key)
    gains = {}
    for (name, seed), mine in curves.items():
        base = curves.get((baseline, seed))
        if name != strategy or not base or any(r.num_boxes is None for r in [*mine, *base]):
            continue
        mx, my, mknots = _box_curve(mine, metric, key, split)
        bx, by, bknots = _box_curve(base, metric, key, split)
        low, high = max(mx[0], bx[0]), min(mx[-1], bx[-1])
        grid = sorted({x for x in [*mknots, *bknots] if low <= x <= high})
        if not grid:
            continue
        gains[seed] = float(np.mean(np.interp(grid, mx, my) - np.interp(grid, bx, by)))
    return dict(sorted(gains.items()))


def not_separated(gains: dict[str, PairedGain]) -> list[tuple[str, str]]:
    """Pairs of strategies (sorted names) whose gain intervals overlap."""
    names = sorted(gains)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if gains[a].overlaps(gains[b])]


def pairwise_differences(gains: dict[str, PairedGain]) -> list[tuple[str, str, PairedGain]]:
    """Strategy against strategy, paired by seed: for each pair, the per-seed difference of
    their gains over the baseline on the seeds both ran, and its summary, as ``(a, b, a − b)``
    with ``a`` the one ahead on those seeds (mean difference ≥ 0). Ordered by ``a``'s, then
    ``b``'s, rank in mean gain; pairs sharing no seed are left out."""
    rank = {s: i for i, s in enumerate(sorted(gains, key=lambda s: (-gains[s].mean, s)))}
    out = []
    for x in rank:
        for y in (s for s in rank if rank[s] > rank[x]):
            common = sorted(gains[x].per_seed.keys() & gains[y].per_seed.keys())
            if not common:
                continue
            diffs = {k: gains[x].per_seed[k] - gains[y].per_seed[k] for k in common}
            ahead, behind = (x, y) if np.mean(list(diffs.values())) >= 0 else (y, x)
            sign = 1.0 if ahead == x else -1.0
            out.append((ahead, behind, paired_gain(f"{ahead} − {behind}",
                                                   {k: sign * v for k, v in diffs.items()})))
    return sorted(out, key=lambda t: (rank[t[0]], rank[t[1]]))
