"""The one home of measurements (``linflow.core.measures``) on constructed inputs: power laws with known slopes,
intervals that cover, crossings placed by hand, grids that land on the save times."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from linflow.core import measures
from conftest import budget


@given(q=st.floats(0.25, 4.0), c=st.floats(1e-6, 1e3), n=st.integers(2, 8))
@settings(max_examples=budget(40), deadline=None)
def test_an_exact_power_law_gives_its_exponent_and_its_local_orders(q, c, n):
    etas = 0.5 ** np.arange(n)[::-1]
    fit = measures.fit_order(etas, c * etas**q)
    assert fit.order == pytest.approx(q, rel=1e-9, abs=1e-9)
    assert fit.n == n and (fit.eta_low, fit.eta_high) == (etas.min(), etas.max())
    np.testing.assert_allclose(fit.local_orders, q, rtol=1e-9, atol=1e-9)
    weighted = measures.fit_order(etas, -c * etas**q, weights=np.ones(n))  # the sign of an error is not its size
    assert weighted.order == pytest.approx(q, rel=1e-9, abs=1e-9)


def test_the_unweighted_interval_is_students_t_and_covers_a_noisy_slope_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    etas = np.geomspace(1e-3, 1e-1, 8)
    covered = 0
    for _ in range(400):
        fit = measures.fit_order(etas, etas**2 * np.exp(0.1 * rng.standard_normal(8)))
        covered += fit.ci95[0] <= 2.0 <= fit.ci95[1]
    assert 0.92 <= covered / 400 <= 0.98


def test_the_weighted_interval_is_1_96_over_the_root_of_the_weighted_spread():
    etas = np.array([0.1, 0.2, 0.4])
    w = np.array([4.0, 1.0, 9.0])
    fit = measures.fit_order(etas, etas**1.5, weights=w)
    x = np.log(etas)
    half = 1.96 / math.sqrt(np.sum(w * (x - np.sum(w * x) / np.sum(w)) ** 2))
    assert fit.ci95 == pytest.approx((1.5 - half, 1.5 + half), rel=1e-12)


def test_too_few_qualifying_points_are_not_fitted():
    etas = np.array([0.1, 0.2, 0.4])
    assert not measures.fit_order(etas, [np.nan, 0.0, 1.0]).fitted
    assert not measures.fit_order(etas, etas, mask=[True, False, False]).fitted
    assert not measures.fit_order(etas, etas, min_points=4).fitted
    assert measures.fit_order(etas, etas, min_points=3).n == 3


def test_crossing_interpolates_in_log_log_between_the_bracketing_etas():
    etas = np.array([0.01, 0.02, 0.04, 0.08])
    c = measures.crossing(etas, [1e-4, 1e-3, 1e-2, 1e-1], 1e-2 * math.sqrt(10))  # halfway in log between 0.04, 0.08
    assert (c.below, c.above, c.diverged) == (0.04, 0.08, False)
    assert c.at == pytest.approx(math.sqrt(0.04 * 0.08), rel=1e-12)


def test_crossing_edges_never_above_above_from_the_first_and_a_diverged_run():
    etas = np.array([0.01, 0.02, 0.04])
    never = measures.crossing(etas, [0.1, 0.2, 0.3], 1.0)
    assert math.isinf(never.at) and math.isinf(never.above) and never.below == 0.04
    first = measures.crossing(etas, [2.0, 3.0, 4.0], 1.0)
    assert math.isnan(first.at) and math.isnan(first.below) and first.above == 0.01
    gone = measures.crossing(etas, [0.1, np.nan, 0.2], 1.0)  # a diverged run counts as above every level
    assert gone.diverged and (gone.below, gone.above, gone.at) == (0.01, 0.02, 0.02)
    equal = measures.crossing(etas, [0.1, 1.0, 2.0], 1.0)  # reaching the level is crossing it
    assert equal.above == 0.02 and equal.at == pytest.approx(0.02)


def test_eta_grids_land_on_the_save_times():
    assert measures.divisor_etas(2.0, 11, [1, 2, 4]) == [0.2, 0.1, 0.05]
    snapped = measures.snapped_etas(2.0, 11, [0.19, 0.11, 0.09, 0.0013])
    for eta in snapped:
        measures.steps_per_save(float(eta), 2.0, 11)  # divides the spacing: no error
    np.testing.assert_allclose(snapped, sorted([0.2 / 154, 0.1, 0.2]))
    with pytest.raises(ValueError, match="must divide the save spacing"):
        measures.steps_per_save(0.07, 2.0, 11)
    horizon, points = measures.save_grid(0.07, 2.0, 11)
    steps = round(horizon / 0.07)
    assert abs(horizon - 2.0) <= 0.1 + 1e-12 and math.isclose(steps * 0.07, horizon) and points >= 2
    measures.steps_per_save(0.07, horizon, points)
