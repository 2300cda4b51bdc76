import warnings

import jax
import numpy as np
import pytest
from scipy import integrate as sci

import linflow
from linflow import exact, init, integrate, problems

from conftest import small_regression, traces

TIGHT = dict(rtol=1e-10, atol=1e-12)


def rel_gap(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


# ---------------------------------------------------------------- Theorem 1: layers -> end-to-end
_THEOREM1_DIMS = [(4, 3, 1), (4, 6, 1), (4, 1, 1), (4, 5, 5, 1), (4, 2, 7, 4, 1), (3, 4, 2), (3, 5, 5, 2)]
_THEOREM1_LOSSES = [(2.0, 0.0), (4.0, 0.0), (2.0, 0.1), (4.0, 0.05)]


def _theorem1_cases():
    """Every shape with every loss; the fast tier keeps one loss per shape (each shape and each loss at least once,
    the property tests draw more), the full suite all 28."""
    return [pytest.param(dims, p, lam, marks=() if j == i % len(_THEOREM1_LOSSES) else pytest.mark.slow)
            for i, dims in enumerate(_THEOREM1_DIMS) for j, (p, lam) in enumerate(_THEOREM1_LOSSES)]


@pytest.mark.parametrize("dims, p, lam", _theorem1_cases())
def test_theorem1_product_of_layer_flow_equals_end_to_end_flow(dims, p, lam):
    prob = small_regression(m=40, d=dims[0], k=dims[-1], p=p, weight_decay=lam, seed=1)
    layers = init.balanced(dims, scale=0.6, seed=0)
    ts = np.linspace(0, 6.0, 13)
    lf = linflow.gradient_flow(prob, layers, 6.0, ts=ts, **TIGHT)
    ef = linflow.end_to_end_flow(prob, linflow.end_to_end(layers), len(layers), 6.0, ts=ts, **TIGHT)
    assert lf.ok and ef.ok
    assert rel_gap(lf.end_to_end, ef.end_to_end) <= 1e-7
    assert np.abs(lf.end_to_end[-1] - lf.end_to_end[0]).max() > 1e-2  # the run really moved


def test_claim2_and_general_forms_agree_along_a_flow():
    prob = small_regression(m=40, d=5, k=1, p=4.0, seed=2)
    W0 = linflow.end_to_end(init.balanced((5, 5, 5, 1), 0.7, seed=1))
    a = linflow.end_to_end_flow(prob, W0, 3, 5.0, form="claim2", **TIGHT)
    b = linflow.end_to_end_flow(prob, W0, 3, 5.0, form="general", **TIGHT)
    assert rel_gap(a.end_to_end, b.end_to_end) < 1e-8


# ---------------------------------------------------------------- exact solutions
@pytest.mark.slow
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_both_flows_match_the_exact_solution(depth):
    prob = problems.whitened([2.0, 1.0, 0.5], d=4, k=3, seed=3)
    sigma0 = [0.3, 0.2, 0.1] if depth > 1 else [0.0, 0.3, 0.1]
    t1 = 12.0 if depth < 4 else 30.0
    ts = np.linspace(0.0, t1, 25)
    ex = exact.end_to_end(prob, depth, sigma0, ts)
    layers = init.aligned(prob, depth, sigma0, widths=(4,) * (depth - 1), seed=0)
    lf = linflow.gradient_flow(prob, layers, t1, ts=ts, rtol=1e-12, atol=1e-14)
    ef = linflow.end_to_end_flow(prob, linflow.end_to_end(layers), depth, t1, ts=ts, rtol=1e-12, atol=1e-14)
    assert np.abs(lf.end_to_end - ex).max() <= 1e-8
    assert np.abs(ef.end_to_end - ex).max() <= 1e-8
    assert np.abs(ex[-1] - ex[0]).max() > 0.5


@pytest.mark.parametrize("depth", [3, 4, 6])
@pytest.mark.parametrize("s, sigma0", [(2.0, 0.05), (1.0, 0.9), (0.5, 1.5)])
def test_closed_form_time_against_quadrature(depth, s, sigma0):
    f = lambda x: exact.scalar_field(x, s, depth)  # noqa: E731
    for frac in (0.1, 0.5, 0.9, 0.999):
        sigma = sigma0 + frac * (s - sigma0)
        quad, _ = sci.quad(lambda x: 1.0 / f(x), sigma0, sigma, epsabs=0, epsrel=1e-13, limit=200)
        assert exact.time_to_reach(sigma, s, sigma0, depth) == pytest.approx(quad, rel=1e-10)
        # and the inverse lands back on sigma
        assert float(exact.singular_value(quad, s, sigma0, depth)) == pytest.approx(sigma, rel=1e-12)


@pytest.mark.parametrize("depth, lam", [(1, 0.0), (1, 0.3), (2, 0.0), (2, 0.3), (3, 0.2), (3, 0.0), (2, 2.5)])
@pytest.mark.parametrize("s, sigma0", [(2.0, 0.1), (0.0, 0.4), (1.0, 1.7)])
def test_singular_value_against_an_independent_ode_solve(depth, lam, s, sigma0):
    ts = np.linspace(0, 8.0, 17)
    ref = sci.solve_ivp(lambda t, x: exact.scalar_field(x, s, depth, lam), (0, 8.0), [sigma0], method="LSODA",
                        rtol=1e-12, atol=1e-14, t_eval=ts).y[0]
    np.testing.assert_allclose(exact.singular_value(ts, s, sigma0, depth, lam), ref, rtol=1e-8, atol=1e-12)


def test_exact_keeps_digits_near_the_target():
    # late in the run s - sigma is small (~1e-8): its digits come from log|1 - y| written through s - sigma
    s, s0, N = 1.0, 0.5, 3
    t = 6.0
    gap = s - float(exact.singular_value(t, s, s0, N))
    # asymptotically d(gap)/dt = -N s^(2-2/N) gap: the gap decays like exp(-3 t)
    gap2 = s - float(exact.singular_value(t + 1.0, s, s0, N))
    assert gap > 0 and gap2 > 0
    assert gap2 / gap == pytest.approx(np.exp(-3.0), rel=1e-6)


# ---------------------------------------------------------------- balancedness under the flow
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_flow_conserves_balancedness_up_to_the_decay_law(lam):
    prob = small_regression(m=40, d=4, k=2, p=4.0, weight_decay=lam, seed=4)
    layers = init.near_zero((4, 5, 3, 2), std=0.6, seed=1)  # clearly unbalanced
    ts = np.linspace(0, 3.0, 7)
    lf = linflow.gradient_flow(prob, layers, 3.0, ts=ts, **TIGHT)
    D0 = linflow.balancedness(layers)
    Dt = linflow.balancedness(lf.layers)
    for d0, dt in zip(D0, Dt):
        expected = np.exp(-2 * lam * ts)[:, None, None] * np.asarray(d0)[None]
        np.testing.assert_allclose(dt, expected, atol=1e-8 * np.abs(d0).max())
    assert np.abs(lf.end_to_end[-1] - lf.end_to_end[0]).max() > 1e-2


# ---------------------------------------------------------------- solvers
SMALL = problems.whitened([1.5, 0.5], seed=7)
SMALL_LAYERS = init.aligned(SMALL, 3, 0.2, widths=(3, 3), seed=2)
SMALL_TS = np.linspace(0, 4.0, 9)
SMALL_EXACT = exact.end_to_end(SMALL, 3, 0.2, SMALL_TS)


@pytest.mark.parametrize("solver", ["bosh3", "tsit5", "dopri5", "dopri8", "kvaerno3", "kvaerno5"])
def test_adaptive_solvers_reach_the_exact_solution(solver):
    tr = linflow.gradient_flow(SMALL, SMALL_LAYERS, 4.0, ts=SMALL_TS, solver=solver, rtol=1e-9, atol=1e-12)
    assert tr.ok, tr.message
    assert np.abs(tr.end_to_end - SMALL_EXACT).max() < 1e-6
    assert tr.stats["num_steps"] == tr.stats["num_accepted_steps"] + tr.stats["num_rejected_steps"] > 0


@pytest.mark.parametrize("solver, order", [("euler", 1), ("heun", 2), ("midpoint", 2), ("ralston", 2)])
def test_fixed_step_solvers_converge_at_their_order(solver, order):
    errs = []
    for dt in (0.02, 0.01):
        tr = linflow.gradient_flow(SMALL, SMALL_LAYERS, 4.0, ts=SMALL_TS, solver=solver, dt0=dt)
        assert tr.stats["num_steps"] == round(4.0 / dt)
        errs.append(np.abs(tr.end_to_end - SMALL_EXACT).max())
    assert np.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.2)


@pytest.mark.slow
def test_implicit_solver_on_the_general_end_to_end_flow_from_a_degenerate_start():
    # W_e(0) = 1e-3 * orthogonal: W^T W has one repeated eigenvalue; Kvaerno5 needs the Jacobian
    prob = problems.whitened([2.0, 1.0, 0.5], seed=8)
    W0 = linflow.end_to_end(init.aligned(prob, 3, 1e-3, widths=(3, 3)))
    ts = np.linspace(0, 40.0, 9)
    ex = exact.end_to_end(prob, 3, 1e-3, ts)
    tr = linflow.end_to_end_flow(prob, W0, 3, 40.0, ts=ts, solver="kvaerno5", form="general", rtol=1e-9, atol=1e-12)
    assert tr.ok, tr.message
    assert np.abs(tr.end_to_end - ex).max() < 1e-6


def test_euler_at_step_eta_is_gradient_descent():
    prob = small_regression(m=30, d=3, k=2, p=4.0, weight_decay=0.1)
    layers = init.balanced((3, 4, 2), 0.8, seed=1)
    eta, steps = 0.01, 200
    gd = linflow.gradient_descent(prob, layers, eta, steps, save_every=20)
    eu = linflow.gradient_flow(prob, layers, eta * steps, ts=gd.ts, solver="euler", dt0=eta)
    for a, b in zip(gd.layers, eu.layers):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("solver", ["euler", "heun", "tsit5", "dopri5", "dopri8"])
def test_nfev_counts_the_vector_field_calls(solver):
    counter = [0]

    class CountingFlow(linflow.LayerFlow):
        def __call__(self, t, y, args=None):
            jax.debug.callback(lambda: counter.__setitem__(0, counter[0] + 1))
            return linflow.fields.layer_field(self.problem, y)

    prob = small_regression(m=40, d=4, k=1, p=4.0)
    layers = init.balanced((4, 3, 1), 0.5)
    options = dict(dt0=0.05) if solver in ("euler", "heun") else dict(rtol=1e-6, atol=1e-9)
    tr = integrate.solve(CountingFlow(prob), layers, 10.0, solver=solver, **options)
    jax.effects_barrier()
    assert tr.stats["nfev"] == counter[0] > 0


# ---------------------------------------------------------------- conventions, failures, compilation
@pytest.mark.slow
def test_time_in_iterations():
    tr = linflow.gradient_flow(SMALL, SMALL_LAYERS, 400, time_unit="iterations", eta=0.01, n_save=5)
    np.testing.assert_allclose(tr.ts, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(tr.iterations, [0, 100, 200, 300, 400])
    ref = linflow.gradient_flow(SMALL, SMALL_LAYERS, 4.0, n_save=5)
    np.testing.assert_allclose(tr.end_to_end, ref.end_to_end, rtol=1e-12)


def test_max_steps_is_reported_with_where_it_stopped():
    tr = linflow.gradient_flow(SMALL, SMALL_LAYERS, 4.0, ts=SMALL_TS, max_steps=4, rtol=1e-10)
    assert tr.status == "max_steps"
    assert "last saved point reached" in tr.message and "max_steps" in tr.message
    assert 1 <= tr.n_reached < len(SMALL_TS) == len(tr) == tr.end_to_end.shape[0]  # fixed shapes
    assert np.all(np.isfinite(tr.end_to_end)) and np.all(np.isfinite(tr.loss))
    # the rows not reached repeat the last reached one; the message names that time
    k = tr.n_reached
    np.testing.assert_array_equal(tr.end_to_end[k:], np.broadcast_to(tr.end_to_end[k - 1], tr.end_to_end[k:].shape))
    assert f"last saved point reached: t = {float(tr.ts[k - 1]):.6g} ({k} of {len(SMALL_TS)} saves" in tr.message
    assert np.all(tr.ts[k:] == tr.ts[k - 1]) and float(tr.ts[-1]) < 4.0  # the time axis ends where the run did
    np.testing.assert_array_equal(tr.ts[:k], SMALL_TS[:k])
    assert tr.reached().loss.shape == (k,) and np.isnan(tr.masked(tr.loss)[k:]).all()


def test_fixed_step_blow_up_is_reported():
    prob = problems.two_point(10.0, 1.0, p=4)
    layers = init.balanced((2, 2, 1), 0.5)
    tr = linflow.gradient_flow(prob, layers, 50.0, solver="euler", dt0=1.0, n_save=51)
    assert tr.status == "nonfinite"
    assert f"last saved point reached: t = {float(tr.ts[-1]):.6g}" in tr.message
    assert tr.n_reached < 51 and np.all(np.isfinite(tr.end_to_end))


def test_no_recompilation_for_new_values():
    prob = small_regression(m=30, d=3, k=1, seed=0)
    layers = init.balanced((3, 2, 1), 0.5)
    linflow.gradient_flow(prob, layers, 1.0, n_save=11)
    with traces() as traced:  # new t1, tolerances, save times, data, weight decay and start: nothing compiled
        linflow.gradient_flow(prob, layers, 2.5, n_save=11, rtol=1e-6, atol=1e-9)
        linflow.gradient_flow(small_regression(m=30, d=3, k=1, seed=5, weight_decay=0.2),
                              init.balanced((3, 2, 1), 0.9, 4), 3.0, ts=np.linspace(0, 3.0, 11), rtol=1e-7)
    assert "_solve" not in traced
    linflow.end_to_end_flow(prob, np.ones((1, 3)), 2, 1.0, n_save=11)
    with traces() as traced:
        linflow.end_to_end_flow(prob, 2 * np.ones((1, 3)), 2, 7.0, n_save=11, rtol=1e-5, atol=1e-5)
    assert "_solve" not in traced
    with traces() as traced:  # the probe sees a compilation: another number of saves is another program
        linflow.end_to_end_flow(prob, np.ones((1, 3)), 2, 1.0, n_save=12)
    assert "_solve" in traced


def test_end_to_end_flow_from_unbalanced_layers_warns_with_the_imbalance():
    prob = small_regression(m=30, d=3, k=1)
    layers = init.near_zero((3, 4, 1), std=0.5)
    with pytest.warns(UserWarning, match=r"not balanced: max_j \|\|D_j\|\|_F = "):
        linflow.end_to_end_flow(prob, layers, None, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        linflow.end_to_end_flow(prob, init.balanced((3, 4, 1), 0.5), None, 1.0)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: linflow.gradient_flow(SMALL, SMALL_LAYERS, 1.0, solver="rk4"), ValueError, "solver must be one of .*tsit5"),
        (lambda: linflow.gradient_flow(SMALL, SMALL_LAYERS, 1.0, rtol=0.0), ValueError, "rtol must be > 0"),
        (lambda: linflow.gradient_flow(SMALL, SMALL_LAYERS, 1.0, atol=-1.0), ValueError, "atol must be > 0"),
        (lambda: linflow.gradient_flow(SMALL, SMALL_LAYERS, 0.0), ValueError, "t1 must be > 0"),
        (lambda: linflow.gradient_flow(SMALL, SMALL_LAYERS, 1.0, solver="euler"), ValueError, "pass dt0"),
        (lambda: linflow.gradient_flow(SMALL, SMALL_LAYERS, 1.0, ts=[0.0, 2.0]), ValueError, "ts must be"),
        (lambda: linflow.gradient_flow(SMALL, init.balanced((3, 2, 2), 0.1), 1.0), ValueError, "d = 2 inputs"),
        (lambda: linflow.gradient_flow(SMALL, (np.ones((3, 2)), np.ones((2, 2))), 1.0), ValueError, "do not chain"),
        (lambda: linflow.gradient_flow(SMALL, np.ones((2, 2)), 1.0), TypeError, "layers must be a non-empty tuple"),
        (lambda: linflow.gradient_flow("x", SMALL_LAYERS, 1.0), TypeError, "problem must be a linflow.Problem"),
        (lambda: linflow.gradient_flow(SMALL, SMALL_LAYERS, 10, time_unit="iterations"), ValueError, "needs eta"),
        (lambda: linflow.end_to_end_flow(SMALL, np.ones((2, 2)), 0, 1.0), ValueError, "depth must be >= 1"),
        (lambda: linflow.end_to_end_flow(SMALL, np.ones((3, 2)), 2, 1.0), ValueError, r"W_e0 must have shape \(k, d\)"),
        (lambda: linflow.end_to_end_flow(SMALL, SMALL_LAYERS, 2, 1.0), ValueError, "depth = 2 but 3 layers"),
        (lambda: linflow.end_to_end_flow(SMALL, np.ones((2, 2)), 2, 1.0, form="claim2"), ValueError, "needs k = 1"),
        (lambda: linflow.end_to_end_flow(SMALL, np.ones((2, 2)), 2, 1.0, form="x"), ValueError, "form must be one of"),
        (lambda: linflow.end_to_end_flow(SMALL, np.full((2, 2), np.nan), 2, 1.0), ValueError, "W_e0 must be finite"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_trajectory_to_xarray():
    tr = linflow.gradient_flow(SMALL, SMALL_LAYERS, 1.0, n_save=5)
    ds = tr.to_xarray()
    assert ds.sizes["t"] == 5 and ds["W1"].shape == (5, 3, 2)
    np.testing.assert_array_equal(ds["loss"].values, tr.loss)
    assert ds.attrs["kind"] == "gradient_flow" and ds.attrs["solver"] == "tsit5"


def test_batched_starts_match_single_runs():
    prob = small_regression(m=30, d=3, k=1, p=4.0)
    starts = [init.balanced((3, 4, 1), 0.3 + 0.2 * s, seed=s) for s in range(4)]
    batch = linflow.gradient_flows(prob, starts, 3.0, n_save=7, rtol=1e-10, atol=1e-12)
    assert len(batch) == 4
    for start, tr in zip(starts, batch):
        single = linflow.gradient_flow(prob, start, 3.0, n_save=7, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(tr.end_to_end, single.end_to_end, rtol=1e-12, atol=1e-14)
        assert tr.stats["num_steps"] == single.stats["num_steps"]  # each start keeps its own steps


@pytest.mark.parametrize("depth, alpha", [(2, 1e-10), (3, 1e-7)])
def test_end_to_end_flow_keeps_weak_modes_from_a_small_start(depth, alpha):
    """Whitened target (3, 1, 0.3), aligned start W_e(0) = U diag(alpha) V^T: at each mode's closed-form escape time
    (sigma_i = s_i / 2) every singular value of the end-to-end flow equals the closed form to 1e-6. Powers of
    W_e W_e^T by eigh set the weak modes' eigenvalues (1e-20 beside 9) to zero: they never grew (relative error 1.0
    at N = 2, alpha = 1e-10; 2.4e-2 at N = 3, alpha = 1e-7, before the preconditioner was applied in W's singular
    basis)."""
    from linflow import exact

    s = np.array([3.0, 1.0, 0.3])
    prob = problems.whitened(list(s), seed=0)
    escape = np.array([exact.time_to_reach(si / 2, si, alpha, depth) for si in s])  # ascending: strong modes first
    w0 = linflow.end_to_end(init.aligned(prob, depth, alpha))
    run = linflow.end_to_end_flow(prob, w0, depth, escape[-1], ts=escape, rtol=1e-10, atol=1e-20, max_steps=100_000)
    assert run.ok, run.message
    expected = np.array([[exact.singular_value(t, si, alpha, depth) for si in s] for t in escape])
    got = np.array([np.linalg.svd(np.asarray(w), compute_uv=False) for w in run.end_to_end])
    # at its own escape time each mode is at s_i / 2; the weaker ones are still small there (and matched too)
    np.testing.assert_allclose(np.diag(expected), s / 2, rtol=1e-12)
    assert np.max(np.abs(np.sort(got, axis=1) / np.sort(expected, axis=1) - 1)) < 1e-6


@pytest.mark.slow
def test_end_to_end_flow_with_more_inputs_than_outputs_matches_the_layers():
    """d > k: W^T W is exactly rank-deficient (its powers act as the identity on the null space for q = 0 only); the
    end-to-end flow equals the product of the layer flow (Theorem 1) to 1e-8 from a small balanced start."""
    prob = problems.whitened([2.0, 0.7], d=5, k=2, seed=1)
    layers = init.balanced((5, 4, 2), 1e-3, seed=2)
    lf = linflow.gradient_flow(prob, layers, 30.0, n_save=31, rtol=1e-11, atol=1e-14)
    ef = linflow.end_to_end_flow(prob, linflow.end_to_end(layers), 2, 30.0, n_save=31, rtol=1e-11, atol=1e-14)
    scale = np.max(np.linalg.norm(np.asarray(lf.end_to_end), axis=(1, 2)))
    assert lf.ok and ef.ok and np.max(np.linalg.norm(np.asarray(lf.end_to_end - ef.end_to_end), axis=(1, 2))) / scale < 1e-8
    assert float(lf.loss[-1]) < 1e-3 * float(lf.loss[0])  # it learnt: both modes escaped within the horizon
