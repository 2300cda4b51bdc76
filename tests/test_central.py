"""The central flow (Cohen et al. ICLR 2025) on a small whitened deep linear problem, checked against the
gradient flow below the threshold, against Lanczos sharpness, and against gradient descent's period-2 orbit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import linflow
from linflow import central, curvature, init, problems

# depth 2, target singular values (1.5, 0.5): every minimum has sharpness >= N s1^(2-2/N) = 3 (docs/math.md section 8)
PROB = linflow.problems.whitened([1.5, 0.5])
START = linflow.init.balanced((2, 2, 2), 0.3)
T1, POINTS = 150.0, 31


@pytest.fixture(scope="module")
def edge():
    """eta = 0.72: 2 / eta = 2.78 < 3, so the gradient flow crosses the threshold and GD cannot converge."""
    return central.central_flow(PROB, START, 0.72, T1, n_save=POINTS)


@pytest.mark.slow
def test_below_the_threshold_the_central_flow_is_the_gradient_flow():
    eta = 0.3  # 2 / eta = 6.7 is above the sharpness along the whole flow
    cf = central.central_flow(PROB, START, eta, T1, n_save=POINTS)
    gf = linflow.gradient_flow(PROB, START, T1, n_save=POINTS, rtol=1e-8, atol=1e-10)
    assert cf.ok and int(cf.stats["switches"]) == 0 and float(cf.stats["activated_at"]) == -1.0
    for a, b in zip(cf.layers, gf.layers):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7)
    assert np.all(np.asarray(cf.extras["sigma2"]) == 0) and np.all(np.asarray(cf.extras["active"]) == 0)
    # the recorded sharpness (dense eigh) against Lanczos on the same states (independent code)
    np.testing.assert_allclose(np.asarray(cf.extras["sharpness"]), np.asarray(curvature.sharpness(PROB, cf.layers)),
                               rtol=1e-9)


@pytest.mark.slow
def test_at_the_edge_the_sharpness_is_held_at_two_over_eta(edge):
    eta = 0.72
    S, on = np.asarray(edge.extras["sharpness"]), np.asarray(edge.extras["active"]) > 0
    assert edge.ok and int(edge.stats["switches"]) == 1 and on[-1] and not on[0]
    np.testing.assert_allclose(S[on] * eta / 2, 1.0, atol=1e-6)
    assert np.all(S[~on] < 2 / eta)
    # the switch happens where the gradient flow's sharpness reaches 2 / eta (located independently here)
    t_on = float(edge.stats["activated_at"])
    gf = linflow.gradient_flow(PROB, START, 2 * t_on, ts=np.linspace(0, 2 * t_on, 401))
    s_gf = np.asarray(curvature.sharpness(PROB, gf.layers))
    k = int(np.argmax(s_gf >= 2 / eta))
    t_cross = np.interp(2 / eta, s_gf[k - 1:k + 1], np.asarray(gf.ts)[k - 1:k + 1])
    assert abs(t_on - t_cross) < 1e-3 * t_on
    # the loss still falls along the constrained flow, and the flow comes to rest (grad L + sigma^2/2 grad S = 0)
    loss = np.asarray(edge.loss)
    assert np.all(np.diff(loss) <= 1e-12)
    end = tuple(jnp.asarray(w)[-1] for w in edge.layers)
    assert max(float(jnp.max(jnp.abs(v))) for v in central.CentralFlow(PROB, jnp.float64(eta), True)(0.0, end)) < 1e-6


def _invariants(layers):
    """``(W_2 W_1, W_1^T W_1, W_2 W_2^T)`` flattened: the layers up to a rotation of the hidden layer."""
    w1, w2 = layers
    return np.concatenate([(w2 @ w1).ravel(), (w1.T @ w1).ravel(), (w2 @ w2.T).ravel()])


def _gd_orbit(eta, steps):
    gd = linflow.gradient_descent(PROB, START, eta, steps, save_every=1)
    assert gd.ok
    flat = np.concatenate([np.asarray(w).reshape(len(gd.ts), -1) for w in gd.layers], axis=1)
    return gd, flat


@pytest.mark.slow
def test_the_central_flow_predicts_the_midpoint_of_the_period_two_orbit(edge):
    eta, cf = 0.72, edge
    gf = linflow.gradient_flow(PROB, START, T1, n_save=POINTS)
    gd, flat = _gd_orbit(eta, int(round(T1 / eta)))
    # GD has settled into a period-2 orbit: x_{k+2} = x_k
    np.testing.assert_allclose(flat[-1], flat[-3], atol=1e-8)
    # the orbit's midpoint (mean of two consecutive iterates), compared through quantities that the hidden
    # layer's rotations W_1 -> Q W_1, W_2 -> W_2 Q^T leave unchanged (GD and the flows may end at different Q)
    mid = tuple(0.5 * (np.asarray(w)[-1] + np.asarray(w)[-2]) for w in gd.layers)
    err_cf = np.linalg.norm(_invariants([np.asarray(w)[-1] for w in cf.layers]) - _invariants(mid))
    err_gf = np.linalg.norm(_invariants([np.asarray(w)[-1] for w in gf.layers]) - _invariants(mid))
    assert err_cf < 0.2 * err_gf
    # sigma^2 predicts the oscillation's variance along the top eigenvector: half-amplitude squared
    a2 = (0.5 * np.linalg.norm(flat[-1] - flat[-2])) ** 2
    sigma2 = float(cf.extras["sigma2"][-1])
    assert sigma2 > 0 and abs(a2 / sigma2 - 1) < 0.15


def test_to_xarray_and_errors(edge):
    ds = edge.to_xarray()
    assert {"sharpness", "sigma2", "active"} <= set(ds.data_vars) and ds.attrs["kind"] == "central_flow"
    assert ds.attrs["stats_activated_at"] > 0
    with pytest.raises(ValueError, match="eta must be > 0"):
        central.central_flow(PROB, START, -0.1, 1.0)
    with pytest.raises(ValueError, match="past the stability threshold"):
        central.central_flow(PROB, linflow.init.balanced((2, 2, 2), 1.5), 0.72, 1.0)
    with pytest.raises(ValueError, match="adaptive"):
        central.central_flow(PROB, START, 0.72, 1.0, solver="euler")
    with pytest.raises(TypeError, match="cannot be traced by jax.jit"):
        jax.jit(lambda eta: central.central_flow(PROB, START, eta, 1.0).loss[-1])(0.72)


@pytest.mark.slow
def test_compare_classifies_each_learning_rate():
    """2 / max S along the flow is 2 / 3: 0.24 follows the flow, 0.72 and 0.8 sit at the edge of stability
    (GD's midpoint sharpness at 2 / eta, tracked by the central flow), 1.2 diverges."""
    ds = linflow.compare(PROB, START, [0.24, 0.72, 0.8, 1.2], t1=144.0, points=21, orders=())
    assert list(ds.regime.values) == ["follows the flow", "edge of stability", "edge of stability", "diverged"]
    assert list(ds.central_status.values[1:3]) == ["ok", "ok"]
    np.testing.assert_allclose(ds.central_sharpness.values[1:3, -1] * np.array([0.72, 0.8]) / 2, 1.0, atol=1e-6)
    assert np.all(ds.central_deviation_rel.values[1:3, -1] < 0.02)
    assert np.all(np.abs(ds.gd_midpoint_sharpness.values[1:3, -1] * np.array([0.72, 0.8]) / 2 - 1) < 0.05)
    assert "edge of stability: at the end GD (the mean of its last two iterates) is within" in ds.attrs["regime_rule"]
    assert "eta 0.72: edge of stability" in linflow.comparison.summary(ds)["regimes"]


@pytest.mark.slow
def test_lanczos_eigenpair_equals_the_dense_one(monkeypatch):
    """Above DENSE_MAX_PARAMS the top pair comes from Lanczos: on a small network (Lanczos then spans the
    whole space) it must equal the dense eigh."""
    layers = linflow.init.balanced((2, 3, 2), 0.7, seed=2)
    S, u, second = central.sharpness_and_direction(PROB, layers)
    monkeypatch.setattr(central, "DENSE_MAX_PARAMS", 0)
    S_l, u_l, second_l = central.sharpness_and_direction(PROB, layers)
    assert float(S_l) == pytest.approx(float(S), rel=1e-10) and float(second_l) == pytest.approx(float(second), rel=1e-10)
    assert abs(float(jnp.vdot(u, u_l))) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.slow
def test_two_eigenvalues_held_solve_the_cone_problem():
    """Target singular values (1.5, 1.4): the Hessian at a balanced minimum has eigenvalues 3, 2.9, 2.9, 2.8 (the
    pairs s_i + s_j), so at eta = 0.7 (2 / eta = 2.857) two of them reach the threshold and the flow must hold
    both (``Sigma`` of rank 2). Checked against an independent solution of the paper's cone problem: ``G_ij`` by
    central differences of dense Hessians, ``X = L L^T`` minimizing ``||g + (1/2) sum X_ij G_ij||`` by scipy."""
    from jax.flatten_util import ravel_pytree
    from scipy.optimize import minimize

    prob, eta = linflow.problems.whitened([1.5, 1.4]), 0.7
    ts = np.array([0.0, 17.0, 18.0, 18.2, 19.0])
    cf = central.central_flow(prob, START, eta, 19.0, ts=ts)
    k = np.asarray(cf.extras["unstable"])
    assert cf.ok and int(cf.stats["max_unstable"]) == 2 and k[-1] == 2 and int(cf.stats["several_unstable"]) == 0
    flat, unravel = ravel_pytree(START)

    dense = jax.jit(jax.hessian(lambda x: linflow.fields.network_loss(prob, unravel(x))))

    def hessian(v):
        return np.asarray(dense(jnp.asarray(v)))

    states = np.concatenate([np.asarray(w).reshape(len(ts), -1) for w in cf.layers], axis=1)
    for i in np.flatnonzero(k == 2):  # both top eigenvalues at 2 / eta, the third below
        lam = np.linalg.eigvalsh(hessian(states[i]))[::-1]
        np.testing.assert_allclose(lam[:2] * eta / 2, 1.0, atol=1e-7)
        assert lam[2] * eta / 2 < 0.99
    i = int(np.flatnonzero(k == 2)[0])
    w = states[i]
    U = np.linalg.eigh(hessian(w))[1][:, ::-1][:, :2]
    h = 1e-5
    G = np.zeros((2, 2, w.size))
    for m in range(w.size):
        e = np.zeros(w.size)
        e[m] = h
        G[:, :, m] = (U.T @ hessian(w + e) @ U - U.T @ hessian(w - e) @ U) / (2 * h)
    g = np.asarray(ravel_pytree(linflow.fields.network_gradient(prob, unravel(jnp.asarray(w))))[0])

    def velocity(c):  # -(g + (1/2) sum_ij X_ij G_ij) with X = L L^T >= 0
        L = np.array([[c[0], 0.0], [c[1], c[2]]])
        return -(g + 0.5 * np.einsum("ij,ijn->n", L @ L.T, G))

    best = min((minimize(lambda c: velocity(c) @ velocity(c), c0, method="BFGS", options={"gtol": 1e-14})
                for c0 in ([0.3, 0.0, 0.3], [0.1, 0.1, 0.5])), key=lambda r: r.fun)
    ours = np.asarray(ravel_pytree(central.CentralFlow(prob, jnp.float64(eta), 2)(0.0, unravel(jnp.asarray(w))))[0])
    assert np.linalg.norm(ours) > 1e-3  # not yet at rest: the projection is not trivially zero
    np.testing.assert_allclose(ours, velocity(best.x), atol=1e-6 * np.linalg.norm(g))
    # Sigma is PSD with both directions carrying variance, and tr Sigma is what the trajectory records
    _, X, release = central.CentralFlow(prob, jnp.float64(eta), 2).parts(unravel(jnp.asarray(w)))[:3]
    assert np.all(np.linalg.eigvalsh(np.asarray(X)) > 0) and float(release) > 0
    L = np.array([[best.x[0], 0.0], [best.x[1], best.x[2]]])
    U_ours = np.asarray(central.top_eigenpairs(prob, unravel(jnp.asarray(w)), 2)[1])  # its own basis of the eigenspace
    np.testing.assert_allclose(U_ours @ np.asarray(X) @ U_ours.T, U @ L @ L.T @ U.T, atol=1e-5 * np.trace(L @ L.T))
    assert float(cf.extras["sigma2"][i]) == pytest.approx(float(jnp.trace(X)), rel=1e-9)
    # beyond the theory's range (README): GD's time-averaged loss is far below the central flow's prediction
    # L + <H, Sigma> / 2 = L + tr(Sigma) / eta at its rest point
    gd = linflow.gradient_descent(prob, START, eta, 400, save_every=1)
    predicted = float(cf.loss[-1]) + float(cf.extras["sigma2"][-1]) / eta
    assert gd.ok and np.mean(np.asarray(gd.loss)[200:]) < 0.5 * predicted and predicted > 0.2


@pytest.mark.slow
def test_the_one_eigenvalue_multiplier_keeps_the_sharpness_on_its_course():
    """``multiplier`` (the closed form with one held eigenvalue) against an independent derivative: along
    ``v = -g - (sigma^2 / 2) grad S`` the dense-Hessian sharpness changes at ``-rate * excess`` (central
    differences of ``eigvalsh``), and ``covariance`` with ``k = 1`` gives the same ``X = sigma^2`` and drift."""
    from jax.flatten_util import ravel_pytree

    layers = linflow.init.balanced((2, 3, 2), 0.9, seed=1)
    flat, unravel = ravel_pytree(layers)
    dense = jax.hessian(lambda x: linflow.fields.network_loss(PROB, unravel(x)))
    S, u, _ = central.sharpness_and_direction(PROB, layers)
    g = ravel_pytree(linflow.fields.network_gradient(PROB, layers))[0]
    grad_s = central.sharpness_gradient(PROB, layers, u)
    h = 1e-5
    for excess, rate in [(0.0, 0.0), (0.3, 1.5)]:
        sigma2 = central.multiplier(g, grad_s, excess, rate)
        v = -(g + 0.5 * sigma2 * grad_s)
        top = lambda x: float(jnp.linalg.eigvalsh(dense(x))[-1])  # noqa: E731
        dS_dt = (top(flat + h * v) - top(flat - h * v)) / (2 * h)
        assert dS_dt == pytest.approx(-rate * excess, abs=1e-6)
        X, drift = central.covariance(g, grad_s[None, None], jnp.array([[excess]]), rate)
        assert float(X[0, 0]) == pytest.approx(float(sigma2), rel=1e-12)
        np.testing.assert_allclose(np.asarray(drift), 0.5 * float(sigma2) * np.asarray(grad_s), rtol=1e-12, atol=1e-15)
    assert float(central.multiplier(g, grad_s)) != 0.0  # a point where the flow pushes the sharpness (the test bites)


def test_a_second_eigenvalue_above_the_dense_limit_is_said_by_the_central_flow_itself():
    """The note belongs to the central flow's own result type (the general Trajectory knows nothing of it)."""
    import dataclasses

    import equinox as eqx

    from linflow.core.central import DENSE_MAX_PARAMS, CentralTrajectory
    from linflow.core.trajectory import STATUSES, Trajectory

    prob = problems.whitened([1.5, 0.5])
    cf = linflow.central_flow(prob, init.balanced((2, 2, 2), 0.3, seed=1), eta=0.5, t1=2.0, n_save=5)
    assert isinstance(cf, CentralTrajectory) and cf.ok and cf.message == ""
    stopped = eqx.tree_at(lambda t: (t.result, t.stop, t.stats["several_unstable"]), cf,
                          (jnp.asarray(STATUSES.index("failed")), jnp.asarray(3), jnp.asarray(1)))
    assert f"above {DENSE_MAX_PARAMS} parameters" in stopped.message and "stopped (failed)" in stopped.message
    plain = Trajectory(**{f.name: getattr(stopped, f.name) for f in dataclasses.fields(stopped)})
    assert "second Hessian eigenvalue" not in plain.message and "stopped (failed)" in plain.message


@pytest.mark.slow
def test_block_eigensolver_against_the_dense_hessian():
    """Above the dense limit the k + 1 largest eigenpairs come from LOBPCG on Hessian-vector products."""
    from jax.flatten_util import ravel_pytree

    prob = problems.whitened([1.5, 1.4])
    layers = init.balanced((2, 70, 2), 0.9, seed=1)  # 280 parameters
    flat, unravel = ravel_pytree(layers)
    lam, V = np.linalg.eigh(np.asarray(jax.hessian(lambda x: linflow.fields.network_loss(prob, unravel(x)))(flat)))
    got, U = central.block_top(prob, layers, 2)
    np.testing.assert_allclose(np.asarray(got), lam[::-1][:2], rtol=1e-10)
    overlap = np.linalg.svd(V[:, ::-1][:, :2].T @ np.asarray(U), compute_uv=False)  # the same 2-D eigenspace
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)


@pytest.mark.slow
def test_two_eigenvalues_held_above_the_dense_limit_follow_the_narrow_network(monkeypatch):
    """A balanced width-10 network (40 parameters, LOBPCG: the dense limit lowered to 32 for the test, as a
    280-parameter network would use it at the default 256) with the narrow one's W_e: its central flow holds the
    same two eigenvalues and moves W_e as the 8-parameter network's (dense Hessian) does (Theorem 1's width
    independence of balanced runs, and the top eigenvalues s_i + s_j at the same W_e). From this start the flow goes
    from the gradient flow to two held eigenvalues (no release in between: there, event times read from Lanczos and
    from a dense Hessian differ at round-off and the paths part by ~1e-4 for a while)."""
    prob, eta = linflow.problems.whitened([1.5, 1.4]), 0.7
    narrow = init.balanced((2, 2, 2), 0.3, seed=1)
    monkeypatch.setattr(central, "DENSE_MAX_PARAMS", 32)
    wide = init.factorize(np.asarray(linflow.end_to_end(narrow)), 2, widths=[10])
    ts = np.array([0.0, 18.0, 19.0])
    narrow_cf = central.central_flow(prob, narrow, eta, 19.0, ts=ts)
    wide_cf = central.central_flow(prob, wide, eta, 19.0, ts=ts)
    assert wide_cf.ok and int(wide_cf.stats["max_unstable"]) == 2 and int(wide_cf.stats["several_unstable"]) == 0
    np.testing.assert_array_equal(np.asarray(wide_cf.extras["unstable"]), np.asarray(narrow_cf.extras["unstable"]))
    np.testing.assert_allclose(np.asarray(wide_cf.end_to_end), np.asarray(narrow_cf.end_to_end), atol=1e-8)
    np.testing.assert_allclose(np.asarray(wide_cf.extras["sigma2"]), np.asarray(narrow_cf.extras["sigma2"]), atol=1e-7)
