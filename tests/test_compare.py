import numpy as np
import pytest

import linflow
from linflow import comparison, curvature, init, problems
from conftest import traces


@pytest.fixture(scope="module")
def whitened_orders():
    # whitened l2 problem, depth 3, balanced near-zero start, fixed horizon
    prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
    layers = init.balanced((3, 3, 3, 3), 0.3, seed=1)
    t1, points = 4.0, 41
    spacing = t1 / (points - 1)
    etas = [spacing / n for n in (2, 4, 8, 16)]
    return linflow.compare(prob, layers, etas, t1, points=points, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_orders_of_gd_against_the_flow_and_the_modified_flows(whitened_orders):
    s = comparison.summary(whitened_orders)
    assert s["order_flow"]["order"] == pytest.approx(1.0, abs=0.2)
    assert s["order_modified1"]["order"] == pytest.approx(2.0, abs=0.2)
    assert s["order_modified2"]["order"] == pytest.approx(3.0, abs=0.2)
    assert s["order_flow"]["points"] == 4
    # the orders are measured as the maximum over the horizon, and errors really shrink
    dev = whitened_orders.max_layer_deviation.values
    assert np.all(np.diff(dev) > 0)


@pytest.mark.slow
def test_balancedness_drift_is_predicted_to_round_off(whitened_orders):
    ds = whitened_orders
    assert np.nanmax(ds.gd_imbalance_identity_error.values) < 1e-13
    assert np.nanmax(ds.gd_imbalance.values) > 1e-4  # a real drift, predicted exactly
    np.testing.assert_allclose(ds.gd_imbalance_predicted.values, ds.gd_imbalance.values, rtol=1e-9, atol=1e-14)


@pytest.mark.slow
def test_no_recompilation_for_new_etas():

    prob = problems.whitened([1.5, 0.5], seed=1)
    layers = init.balanced((2, 2, 2), 0.4)
    linflow.compare(prob, layers, [0.05, 0.025], 1.0, points=11, orders=(1,))
    with traces() as traced:  # new etas (as many): GD's batch, the flows, the modified flows, curvature all reused
        linflow.compare(prob, layers, [0.1 / 3, 0.02], 1.0, points=11, orders=(1,))
    assert not {"iterate_each", "_solve", "_hessian_times_gradient"} & set(traced), traced


@pytest.mark.slow
@pytest.mark.parametrize("depth", [2, 3])
def test_stability_threshold_of_the_scalar_network(depth):
    s = 1.5
    eta_crit = 2.0 / (depth * s ** (2 - 2 / depth))
    prob = linflow.Problem(np.array([[1.0]]), np.array([s]))
    at_min = tuple(np.full((1, 1), s ** (1 / depth)) for _ in range(depth))
    # sharpness at the balanced minimum: N s^(2 - 2/N)
    assert float(curvature.sharpness(prob, at_min)) == pytest.approx(depth * s ** (2 - 2 / depth), rel=1e-12)
    start = tuple(w * (1 + 1e-3) for w in at_min)  # balanced, just off the minimum
    spacing = 0.95 * 21 * eta_crit  # divisible by 0.95 eta_crit (21 steps) and 1.05 eta_crit (19 steps)
    ds = linflow.compare(prob, start, [0.95 * eta_crit, 1.05 * eta_crit], 100 * spacing, points=101, orders=())
    assert list(ds.gd_outcome.values) == ["ok", "oscillating"] or list(ds.gd_outcome.values) == ["ok", "diverged"]
    s_ = comparison.summary(ds)
    assert s_["stability_eta_predicted"] == pytest.approx(eta_crit, rel=2e-2)
    assert s_["stability_eta_observed"] == pytest.approx(1.05 * eta_crit)
    assert s_["largest_stable_eta_observed"] == pytest.approx(0.95 * eta_crit)
    # converged: GD at 0.95 eta_crit ends at the minimum; at 1.05 it does not
    assert ds.gd_loss.values[0, -1] < 1e-14  # round-off of the moment form of the l2 loss
    assert not ds.gd_loss.values[1, -1] < 1e-6


@pytest.mark.slow  # seconds (measured 3.4-7.7 s): the full command only (the fast tier's 3 minutes)
def test_compare_report_says_in_words_what_it_could_not_measure():
    # scalar network, every eta above the threshold: no breakdown eta, no stable eta, no order (no "nan" anywhere)
    import re

    s = 1.5
    eta_crit = 2.0 / (2 * s)
    prob = linflow.Problem(np.array([[1.0]]), np.array([s]))
    start = tuple(np.full((1, 1), s ** 0.5 * (1 + 1e-3)) for _ in range(2))
    ds = linflow.compare(prob, start, [1.2 * eta_crit, 2.4 * eta_crit], 96 * eta_crit, points=21, orders=(1,))
    text = comparison.summary_text(ds)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE), text
    summ = comparison.report(ds)
    assert summ["breakdown_status"].startswith("none: every eta of the grid is already above")
    assert "breakdown eta (max relative deviation of W_e <= 0.01): none: every eta" in text
    assert np.isnan(summ["largest_stable_eta_observed"]) and summ["largest_stable_eta_observed_status"].startswith("none")
    assert summ["order_flow"]["status"].startswith("not fitted") and "not fitted" in text


def test_first_order_bound_on_a_convex_problem():
    # depth 1, l2: the Hessian is constant and PSD; the bound must hold and be tight to a small factor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)) * np.array([1.0, 0.8, 0.6])
    prob = linflow.Problem(X, X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(200))
    layers = (np.zeros((1, 3)),)
    t1, points = 5.0, 201
    spacing = t1 / (points - 1)
    ds = linflow.compare(prob, layers, [spacing / 8, spacing / 4], t1, points=points, orders=())
    measured, bound = ds.gd_layer_deviation.values[:, 1:], ds.bound.values[:, 1:]
    assert np.all(bound >= measured * (1 - 1e-3))
    assert np.max(bound / measured) < 3.0


@pytest.mark.slow
def test_divergence_is_reported_and_the_sweep_completes():
    prob = problems.two_point(10.0, 1.0, p=4)
    layers = init.balanced((2, 2, 1), 0.5)
    ds = linflow.compare(prob, layers, [0.001, 0.01, 0.05], 1.0, points=11, orders=(1,))
    outcome = list(ds.gd_outcome.values)
    assert outcome[0] == "ok" and outcome[-1] == "diverged"
    step = int(ds.gd_diverged_step.values[-1])
    assert step > 0 and ds.gd_diverged_time.values[-1] == pytest.approx(step * 0.05)
    assert np.isnan(ds.gd_loss.values[-1, -1]) and np.all(np.isfinite(ds.gd_loss.values[0]))
    assert "skipped" in str(ds.mod1_status.values[-1])


def test_bad_input():
    prob = problems.whitened([1.0], seed=0)
    layers = init.balanced((1, 1, 1), 0.5)
    with pytest.raises(ValueError, match="must divide the save spacing"):
        linflow.compare(prob, layers, [0.03], 1.0, points=11)
    with pytest.raises(ValueError, match="etas must hold at least one"):
        linflow.compare(prob, layers, [], 1.0)
    with pytest.raises(ValueError, match="orders must be a subset"):
        linflow.compare(prob, layers, [0.1], 1.0, points=11, orders=(3,))
    with pytest.raises(ValueError, match=r"etas\[0\] must be > 0"):
        linflow.compare(prob, layers, [-0.1], 1.0, points=11)


def test_deviation_figure_keeps_its_axis_on_the_data(whitened_orders):
    """A predicted threshold far above the etas is said in the legend instead of stretching the eta axis."""
    from linflow import plot

    ds = whitened_orders
    threshold = comparison.summary(ds)["stability_eta_predicted"]
    fig = plot.deviation_vs_eta(ds)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"2 / max S (predicted) = {threshold:.3g}" in t for t in labels)
    if threshold > 4 * ds.eta.values.max():
        assert ax.get_xlim()[1] < 2 * ds.eta.values.max() and any("off the axis" in t for t in labels)
    else:
        assert ax.get_xlim()[1] >= threshold
