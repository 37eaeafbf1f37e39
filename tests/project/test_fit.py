"""The learning-curve fit: exact power laws recovered, untrustworthy fits said so."""

import math

import numpy as np

from huale.project.fit import fit_learning_curve


def test_exact_power_law_is_recovered_with_hand_computed_gain():
    # 1 - mAP = 0.8 (n / 10)^-0.5 = 0.8 sqrt(10) n^-0.5: b = 2.5298, c = 0.5
    n = np.array([10.0, 20.0, 40.0])
    y = 1 - 0.8 * (n / 10) ** -0.5
    fit = fit_learning_curve(n, y, next_size=20)
    assert math.isclose(fit.c, 0.5, rel_tol=1e-9) and math.isclose(fit.b, 0.8 * math.sqrt(10), rel_tol=1e-9)
    # at 40: error 0.4; at 60: 0.8 / sqrt(6) = 0.326599; gain 0.073401
    assert math.isclose(fit.gain, 0.4 - 0.8 / math.sqrt(6), rel_tol=1e-9)
    assert fit.gain_low <= fit.gain <= fit.gain_high
    assert fit.trustworthy and "NOT" not in fit.statement()
    assert "+7.3 points" in fit.statement()


def test_noisy_points_give_an_interval_and_flat_or_falling_curves_are_not_trustworthy():
    n = [20, 40, 60, 80, 100]
    noisy = fit_learning_curve(n, [0.30, 0.41, 0.44, 0.50, 0.51], next_size=20)
    assert noisy.gain > 0 and noisy.gain_high > noisy.gain_low
    falling = fit_learning_curve(n[:3], [0.5, 0.45, 0.40], next_size=20)
    assert not falling.trustworthy and "does not rise" in falling.statement()
    three_noisy = fit_learning_curve([10, 20, 30], [0.2, 0.35, 0.3], next_size=10)
    assert not three_noisy.trustworthy and "NOT trustworthy" in three_noisy.statement()
    far = fit_learning_curve([10, 20, 40], 1 - 0.8 * (np.array([10, 20, 40]) / 10) ** -0.5, next_size=100)
    assert "beyond twice" in far.statement()


def test_fewer_than_three_points_or_one_size_give_no_fit():
    assert fit_learning_curve([10, 20], [0.1, 0.2], next_size=10) is None
    assert fit_learning_curve([10, 10, 10], [0.1, 0.2, 0.3], next_size=10) is None
