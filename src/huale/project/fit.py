"""How much more is worth labeling: a saturating fit of validation mAP against labeled images.

Model (inferred; the learning-curve literature's power law of the error, e.g. Hestness et al.
2017, with the ceiling fixed at mAP = 1): ``1 - mAP(n) = b * n^(-c)``, fitted by least squares on
``log(1 - mAP) = log b - c log n``. With k rounds the residual variance has k - 2 degrees of
freedom; parameter draws from the fit's Student-t distribution give an 80% interval for the
expected gain of the next round, ``mAP(n_last + size) - mAP(n_last)`` (both from the fitted
curve). The fit is reported as not trustworthy when it has fewer than 3 points, when mAP does not
rise with n (c <= 0), when the 80% interval is wider than the gain itself, when R^2 < 0.8, or
when the next round reaches beyond twice the largest labeled set seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_POINTS = 3
DRAWS = 4000
_EPS = 1e-6


@dataclass
class CurveFit:
    """The fitted curve and what it says about the next round (mAP as fractions in [0, 1])."""

    b: float
    c: float
    r2: float
    dof: int
    n_last: float
    n_next: float
    map_last: float  # fitted mAP at n_last
    map_next: float  # fitted mAP at n_next
    gain: float
    gain_low: float  # 80% interval
    gain_high: float
    trustworthy: bool
    problems: list[str] = field(default_factory=list)
    _cov: np.ndarray | None = None

    def predict(self, n) -> np.ndarray:
        return 1.0 - self.b * np.power(np.asarray(n, np.float64), -self.c)

    def band(self, n, level: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise ``level`` interval of the fitted mAP at ``n`` (for the plot)."""
        draws = self._draws(seed)
        logn = np.log(np.asarray(n, np.float64))
        with np.errstate(over="ignore"):
            curves = 1.0 - np.clip(np.exp(draws[:, :1] + draws[:, 1:2] * logn[None, :]), 0.0, 1.0)
        q = (1 - level) / 2
        return np.quantile(curves, q, axis=0), np.quantile(curves, 1 - q, axis=0)

    def _draws(self, seed: int) -> np.ndarray:
        theta = np.array([math.log(self.b), -self.c])
        if self._cov is None or self.dof < 1:
            return theta[None, :].repeat(2, 0)
        rng = np.random.default_rng(seed)
        normal = rng.multivariate_normal(np.zeros(2), self._cov, size=DRAWS, method="svd")
        scale = np.sqrt(self.dof / rng.chisquare(self.dof, size=DRAWS))
        return theta[None, :] + normal * scale[:, None]

    def statement(self) -> str:
        """The plain answer, in percentage points of mAP."""
        text = (f"next round of {self.n_next - self.n_last:g} images ({self.n_last:g} -> {self.n_next:g} "
                f"labeled): expected val mAP gain {100 * self.gain:+.1f} points "
                f"(80% interval {100 * self.gain_low:+.1f} to {100 * self.gain_high:+.1f}), "
                f"fit 1 - mAP = {self.b:.3g} * n^-{self.c:.3g}, R^2 {self.r2:.2f}")
        if not self.trustworthy:
            text += ". The fit is NOT trustworthy: " + "; ".join(self.problems)
        return text


def fit_learning_curve(labeled: Sequence[float], maps: Sequence[float], next_size: float,
                       seed: int = 0) -> CurveFit | None:
    """Fit ``maps`` (fractions) against ``labeled`` image counts; None with fewer than 3 points."""
    n = np.asarray(labeled, np.float64)
    y = np.asarray(maps, np.float64)
    keep = np.isfinite(n) & np.isfinite(y) & (n > 0)
    n, y = n[keep], y[keep]
    if len(n) < MIN_POINTS or len(np.unique(n)) < 2:
        return None
    x = np.log(n)
    z = np.log(np.clip(1.0 - y, _EPS, None))
    design = np.stack([np.ones_like(x), x], 1)
    theta, *_ = np.linalg.lstsq(design, z, rcond=None)
    residual = z - design @ theta
    rss = float(residual @ residual)
    tss = float(((z - z.mean()) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else 1.0
    dof = len(n) - 2
    cov = rss / dof * np.linalg.inv(design.T @ design) if dof >= 1 else None
    n_last = float(n.max())
    n_next = n_last + float(next_size)
    fit = CurveFit(b=math.exp(theta[0]), c=-float(theta[1]), r2=r2, dof=dof, n_last=n_last,
                   n_next=n_next, map_last=0.0, map_next=0.0, gain=0.0, gain_low=0.0,
                   gain_high=0.0, trustworthy=True, _cov=cov)
    fit.map_last, fit.map_next = (float(v) for v in fit.predict([n_last, n_next]))
    fit.gain = fit.map_next - fit.map_last
    draws = fit._draws(seed)
    with np.errstate(over="ignore"):  # wild draws of a 1-dof fit: errors clipped to [0, 1]
        err_last = np.clip(np.exp(draws[:, 0] + draws[:, 1] * math.log(n_last)), 0.0, 1.0)
        err_next = np.clip(np.exp(draws[:, 0] + draws[:, 1] * math.log(n_next)), 0.0, 1.0)
    gains = err_last - err_next
    fit.gain_low, fit.gain_high = (float(v) for v in np.quantile(gains, [0.1, 0.9]))
    if fit.c <= 0:
        fit.problems.append("val mAP does not rise with the labeled set (fitted exponent <= 0)")
    if fit.gain_high - fit.gain_low > abs(fit.gain):
        fit.problems.append("the 80% interval is wider than the expected gain itself")
    if r2 < 0.8:
        fit.problems.append(f"the curve explains the points poorly (R^2 {r2:.2f} < 0.8)")
    if n_next > 2 * n_last:
        fit.problems.append("the next round reaches beyond twice the largest labeled set seen")
    fit.trustworthy = not fit.problems
    return fit
