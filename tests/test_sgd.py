"""SGD on the layers (issue 31, first part): depth 1 with the l2 loss (linear regression), where the ensemble's mean
and second moment obey exact linear recursions, computed here independently of linflow."""

import jax
import numpy as np
import pytest

import linflow
from linflow.core import sgd, sme


def _exact_moments(X, y, w0, eta, steps, batch, factor, noise=1.0):
    """E[w_k] and E[w_k w_k^T] of SGD on L = (1/m) sum (1/2)(x_i^T w - y_i)^2 with Cov[g_B | w] = noise factor Sigma / B,
    Sigma(w) = (1/m) sum g_i g_i^T - g g^T, g_i = x_i (x_i^T w - y_i): exact, since Sigma is quadratic in w."""
    m = len(X)
    H, c = X.T @ X / m, X.T @ y / m
    mu, M = w0.copy(), np.outer(w0, w0)
    for _ in range(steps):
        Egg = H @ M @ H - H @ np.outer(mu, c) - np.outer(c, mu) @ H + np.outer(c, c)
        r2 = np.einsum("ia,ab,ib->i", X, M, X) - 2 * y * (X @ mu) + y**2  # E[(x_i^T w - y_i)^2]
        sigma = (X.T * r2) @ X / m - Egg
        Ewg = M @ H - np.outer(mu, c)
        M = M - eta * (Ewg + Ewg.T) + eta**2 * (Egg + noise * factor * sigma / batch)
        mu = mu - eta * (H @ mu - c)
    return mu, M


@pytest.mark.parametrize("sampling, factor", [("replacement", lambda m, b: 1.0),
                                              ("batch", lambda m, b: (m - b) / (m - 1))])
def test_depth1_ensemble_matches_the_exact_moment_recursions(sampling, factor):
    rng = np.random.default_rng(0)
    m, d, batch, eta, steps, n = 10, 2, 4, 0.3, 25, 6000
    X = rng.standard_normal((m, d)) * np.array([1.0, 0.5])
    y = X @ np.array([1.0, -2.0]) + 0.5 * rng.standard_normal(m)
    prob = linflow.Problem(X, y)
    w0 = np.array([0.2, 0.1])
    runs = sgd.sgd_ensemble(prob, (w0[None],), eta, steps, batch=batch, keys=jax.random.split(jax.random.PRNGKey(1), n),
                            sampling=sampling, save_every=steps)
    w = np.asarray(runs.end_to_end)[:, -1, 0, :]  # (n, d) at the last step
    mu, M = _exact_moments(X, y, w0, eta, steps, batch, factor(m, batch))
    se = w.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(w.mean(axis=0) - mu) < 3 * se), (w.mean(axis=0), mu, se)
    prods = w[:, :, None] * w[:, None, :]
    se2 = prods.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(axis=0) - M) < 3 * se2), (prods.mean(axis=0), M, se2)
    # the noise is there: the spread is far above the sampling error of the mean
    assert np.all(np.diag(M - np.outer(mu, mu)) > 100 * se**2)


def test_full_batch_sgd_is_gradient_descent_and_bad_input_is_named():
    prob = linflow.problems.synthetic(m=40, d=3, seed=2)
    layers = linflow.init.balanced((3, 2, 1), 0.3, seed=0)
    for sampling in ("batch", "epoch"):  # B = m without replacement: every step sees every sample
        run = sgd.sgd(prob, layers, 0.1, 30, batch=40, key=jax.random.PRNGKey(0), sampling=sampling, save_every=10)
        gd = linflow.gradient_descent(prob, layers, 0.1, 30, save_every=10)
        np.testing.assert_allclose(np.asarray(run.end_to_end), np.asarray(gd.end_to_end), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="batch must be at most the number of samples m = 40"):
        sgd.sgd(prob, layers, 0.1, 3, batch=41, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="sampling must be one of replacement, batch, epoch"):
        sgd.sgd(prob, layers, 0.1, 3, batch=4, key=jax.random.PRNGKey(0), sampling="stratified")
    with pytest.raises(ValueError, match="eta"):
        sgd.sgd(prob, layers, -0.1, 3, batch=4, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="keys must have shape"):
        sgd.sgd_ensemble(prob, layers, 0.1, 3, batch=4, keys=jax.random.PRNGKey(0))


def test_an_epoch_visits_every_sample_once():
    key = jax.random.PRNGKey(3)
    m, batch = 12, 4
    seen = np.concatenate([np.asarray(sgd.minibatch_indices(key, k, m, batch, "epoch")) for k in range(3)])
    assert sorted(seen.tolist()) == list(range(m))
    again = np.concatenate([np.asarray(sgd.minibatch_indices(key, k, m, batch, "epoch")) for k in range(3, 6)])
    assert sorted(again.tolist()) == list(range(m)) and not np.array_equal(seen, again)  # reshuffled


def test_diverging_sgd_is_reported():
    prob = linflow.problems.synthetic(m=40, d=3, seed=2)
    run = sgd.sgd(prob, linflow.init.balanced((3, 2, 1), 0.3, seed=0), 50.0, 200, batch=8, key=jax.random.PRNGKey(0))
    assert run.status == "diverged" and int(run.stats["diverged_at"]) > 0
    assert np.all(np.isfinite(np.asarray(run.loss)))


def _problem(m=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 2)) * np.array([1.0, 0.5])
    y = X @ np.array([1.0, -2.0]) + 0.5 * rng.standard_normal(m)
    return X, y


def _sme_moments(X, y, w0, eta, t, batch, factor, order):
    """E[w(t)], E[w w^T](t) of the SME on linear regression: linear ODEs in (mu, M), solved by scipy (DOP853)."""
    from scipy.integrate import solve_ivp

    m, d = X.shape
    H, c = X.T @ X / m, X.T @ y / m
    A = H + (0.5 * eta * H @ H if order == 2 else 0)  # drift -(A w - b): the gradient of L + (eta/4)|grad L|^2
    b = c + (0.5 * eta * H @ c if order == 2 else 0)

    def rhs(_, z):
        mu, M = z[:d], z[d:].reshape(d, d)
        Egg = H @ M @ H - H @ np.outer(mu, c) - np.outer(c, mu) @ H + np.outer(c, c)
        r2 = np.einsum("ia,ab,ib->i", X, M, X) - 2 * y * (X @ mu) + y**2
        sigma = (X.T * r2) @ X / m - Egg
        Ewd = -(M @ A.T - np.outer(mu, b))  # E[w drift^T]
        dM = Ewd + Ewd.T + eta * factor * sigma / batch
        return np.concatenate([-(A @ mu - b), dM.ravel()])

    sol = solve_ivp(rhs, (0, t), np.concatenate([w0, np.outer(w0, w0).ravel()]), method="DOP853", rtol=1e-12,
                    atol=1e-14)
    z = sol.y[:, -1]
    return z[:d], z[d:].reshape(d, d)


def test_noise_factor_is_the_minibatch_covariance():

    X, y = _problem(m=12)
    prob = linflow.Problem(X, y)
    w = np.array([[0.3, -0.4]])
    g = X * (X @ w[0] - y)[:, None]  # per-sample gradients x_i r_i
    sigma = g.T @ g / len(X) - np.outer(g.mean(0), g.mean(0))
    for sampling, f in (("replacement", 1.0), ("batch", (12 - 3) / 11)):
        D = np.asarray(sme.noise_factor(prob, (w,), 3, sampling))
        assert D.shape == (2, 12)  # P x m: never a P x P root
        np.testing.assert_allclose(D @ D.T, f * sigma / 3, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("p", [2.0, 4.0])
def test_noise_product_is_the_factor_times_z_without_per_sample_gradients(p):
    """On a depth-3 network: the one-backward-pass product D z equals the explicit factor (per-sample gradients by
    forward differences here, independent of linflow's autodiff) times z."""
    from jax.flatten_util import ravel_pytree


    prob = linflow.problems.synthetic(m=15, d=3, p=p, seed=4)
    layers = linflow.init.balanced((3, 2, 2, 1), 0.5, seed=1)
    z = np.random.default_rng(0).standard_normal(15)
    flat, unravel = ravel_pytree(tuple(layers))
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)

    def sample_losses(theta):
        ws = [np.asarray(w) for w in unravel(theta)]
        W = ws[2] @ ws[1] @ ws[0]
        return np.sum(np.abs(X @ W.T - Y) ** p, axis=1) / p

    h = 1e-6
    G = np.stack([(sample_losses(flat + h * e) - sample_losses(flat - h * e)) / (2 * h)
                  for e in np.eye(flat.size)], axis=1)  # m x P
    expected = np.sqrt((15 - 4) / 14 / (15 * 4)) * (G - G.mean(0)).T @ z
    got = ravel_pytree(sme.noise_product(prob, layers, z, 4, "batch"))[0]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-8)
    D = np.asarray(sme.noise_factor(prob, layers, 4, "batch"))
    np.testing.assert_allclose(np.asarray(got), D @ z, rtol=1e-12, atol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize("order, path", [(1, "unsafe"), (2, "unsafe"), (1, "scan")])
def test_sme_ensemble_matches_its_exact_moment_equations(order, path):

    X, y = _problem()
    prob = linflow.Problem(X, y)
    w0, eta, batch, t1, n = np.array([0.2, 0.1]), 0.2, 4, 1.5, 4000
    runs = sme.sme_ensemble(prob, (w0[None],), eta, t1, batch=batch, keys=jax.random.split(jax.random.PRNGKey(2), n),
                            order=order, dt=0.005, ts=[0.0, t1], path=path)
    w = np.asarray(runs.end_to_end)[:, -1, 0, :]
    mu, M = _sme_moments(X, y, w0, eta, t1, batch, 1.0, order)
    se = w.std(axis=0, ddof=1) / np.sqrt(n)
    # Monte Carlo error (3 standard errors) plus Euler-Maruyama's weak error at dt = 0.005 (first order in dt)
    assert np.all(np.abs(w.mean(axis=0) - mu) < 3 * se + 0.01 * np.abs(mu).max()), (w.mean(0), mu, se)
    prods = w[:, :, None] * w[:, None, :]
    se2 = prods.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(axis=0) - M) < 3 * se2 + 0.01 * np.abs(M).max()), (prods.mean(0), M, se2)


def test_sgd_against_its_smes_the_orders_in_eta():
    """From the exact answers (no sampling): the gap between SGD's mean and the first-order SME's is O(eta), the
    second-order SME's O(eta^2); the second moments' gap shrinks with eta too."""
    X, y = _problem()
    w0, batch, t = np.array([0.2, 0.1]), 4, 2.0
    etas = np.array([0.1, 0.05, 0.025, 0.0125])
    gaps = {1: [], 2: [], "M": []}
    for eta in etas:
        mu_sgd, M_sgd = _exact_moments(X, y, w0, eta, int(round(t / eta)), batch, 1.0)
        for order in (1, 2):
            mu, M = _sme_moments(X, y, w0, eta, t, batch, 1.0, order)
            gaps[order].append(np.linalg.norm(mu - mu_sgd))
            if order == 1:
                gaps["M"].append(np.linalg.norm(M - M_sgd))
    slope = {k: np.polyfit(np.log(etas), np.log(v), 1)[0] for k, v in gaps.items()}
    assert abs(slope[1] - 1) < 0.15 and abs(slope[2] - 2) < 0.2, slope
    assert slope["M"] > 0.8, slope


@pytest.mark.slow
def test_the_three_brownian_paths_agree_in_law():
    """VirtualBrownianTree, UnsafeBrownianPath and the scan loop: the same mean of a quick ensemble within 3 standard
    errors."""

    X, y = _problem()
    prob = linflow.Problem(X, y)
    means = []
    for path in ("virtual", "unsafe", "scan"):
        runs = sme.sme_ensemble(prob, (np.array([[0.2, 0.1]]),), 0.2, 0.5, batch=4, ts=[0.0, 0.5], dt=0.05, path=path,
                                keys=jax.random.split(jax.random.PRNGKey(5), 400))
        w = np.asarray(runs.end_to_end)[:, -1, 0, :]
        means.append((w.mean(0), w.std(0, ddof=1) / np.sqrt(len(w))))
    for m2, s2 in means[1:]:
        assert np.all(np.abs(means[0][0] - m2) < 3 * np.hypot(means[0][1], s2))
    w0 = (np.array([[0.2, 0.1]]),)
    with pytest.raises(ValueError, match="path must be one of virtual, unsafe, scan"):
        sme.sme(prob, w0, 0.2, 0.5, batch=4, key=jax.random.PRNGKey(0), path="exact")
    with pytest.raises(ValueError, match="ts must be multiples of dt"):
        sme.sme(prob, w0, 0.2, 0.5, batch=4, key=jax.random.PRNGKey(0), path="scan", dt=0.2, ts=[0.0, 0.5])
    scan = sme.sme(prob, w0, 0.2, 0.5, batch=4, key=jax.random.PRNGKey(0), path="scan", dt=0.05)  # default saves
    np.testing.assert_allclose(np.asarray(scan.ts), 0.05 * np.arange(11), atol=1e-15)
    assert scan.status == "ok" and np.asarray(scan.loss).shape == (11,)
    with pytest.raises(ValueError, match="t1 must be a whole multiple of dt"):
        sme.sme(prob, w0, 0.2, 0.5, batch=4, key=jax.random.PRNGKey(0), path="scan", dt=0.3)
    with pytest.raises(ValueError, match="dt must be a whole multiple of resolution"):
        sme.sme(prob, w0, 0.2, 0.5, batch=4, key=jax.random.PRNGKey(0), path="scan", dt=0.05, resolution=0.03)


def test_the_scan_path_is_one_brownian_path_at_every_step():
    """With a shared grid, halving dt refines the same path: Euler-Maruyama's strong error, so the two runs of one key
    differ far less than two keys do, and the difference shrinks with dt."""

    X, y = _problem()
    prob = linflow.Problem(X, y)
    w0, keys = (np.array([[0.2, 0.1]]),), jax.random.split(jax.random.PRNGKey(8), 200)

    def ends(dt):
        runs = sme.sme_ensemble(prob, w0, 0.2, 1.0, batch=4, keys=keys, ts=[0.0, 1.0], dt=dt, path="scan",
                                resolution=0.0125)
        return np.asarray(runs.end_to_end)[:, -1, 0, :]

    a, b, c = ends(0.05), ends(0.025), ends(0.0125)
    spread = np.sqrt(np.mean(np.sum((a - a.mean(0)) ** 2, axis=1)))
    gap_coarse, gap_fine = (np.sqrt(np.mean(np.sum((u - c) ** 2, axis=1))) for u in (a, b))
    assert gap_coarse < 0.25 * spread and gap_fine < 0.75 * gap_coarse, (spread, gap_coarse, gap_fine)



@pytest.mark.parametrize("order", [1, 2])
def test_the_richardson_pair_is_the_two_scan_runs_on_one_grid(order):
    """``sme_pair_ensemble`` draws each Gaussian cell once for the runs at dt and dt / 2: the same paths as two
    ``sme_ensemble`` calls on the grid of resolution dt / 2 (the coarse run to the last bit, the fine one to
    rounding); its ``ts`` are checked as the coarse run's."""
    X, y = _problem()
    prob = linflow.Problem(X, y)
    w0 = linflow.init.balanced((2, 3, 1), 0.3)
    keys = jax.random.split(jax.random.PRNGKey(3), 6)
    ts = [0.0, 0.2, 0.4]
    pair = sme.sme_pair_ensemble(prob, w0, 0.2, 0.4, batch=4, keys=keys, dt=0.05, ts=ts, order=order)
    for run, dt in zip(pair, (0.05, 0.025)):
        ref = sme.sme_ensemble(prob, w0, 0.2, 0.4, batch=4, keys=keys, ts=ts, dt=dt, path="scan", resolution=0.025,
                               order=order)
        for a, b in zip(run.layers, ref.layers):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-15)
        assert np.asarray(run.result).tolist() == np.asarray(ref.result).tolist()
    np.testing.assert_array_equal(np.asarray(pair[0].loss), np.asarray(
        sme.sme_ensemble(prob, w0, 0.2, 0.4, batch=4, keys=keys, ts=ts, dt=0.05, path="scan", resolution=0.025,
                         order=order).loss))
    with pytest.raises(ValueError, match="multiples of dt"):
        sme.sme_pair_ensemble(prob, w0, 0.2, 0.4, batch=4, keys=keys, dt=0.05, ts=[0.0, 0.125], order=order)


@pytest.mark.parametrize("ell", [2, 4])
def test_svag_ensemble_matches_its_exact_moment_recursion(ell):
    """SVAG's gradient has mean grad L and covariance ell Sigma / B: with steps eta / ell, the recursion of SGD with
    that step and ell times the noise."""
    X, y = _problem()
    prob = linflow.Problem(X, y)
    w0, eta, batch, n = np.array([0.2, 0.1]), 0.3, 4, 6000
    steps = 10 * ell  # flow time 10 eta / ell * ell = 3
    runs = sgd.svag_ensemble(prob, (w0[None],), eta, steps, batch=batch, ell=ell, save_every=steps,
                             keys=jax.random.split(jax.random.PRNGKey(7), n))
    assert float(runs.ts[0, -1]) == pytest.approx(10 * eta)
    w = np.asarray(runs.end_to_end)[:, -1, 0, :]
    mu, M = _exact_moments(X, y, w0, eta / ell, steps, batch, 1.0, noise=ell)
    se = w.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(w.mean(axis=0) - mu) < 3 * se), (w.mean(0), mu, se)
    prods = w[:, :, None] * w[:, None, :]
    se2 = prods.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(axis=0) - M) < 3 * se2), (prods.mean(0), M, se2)


def test_svag_converges_to_the_first_order_sme_as_ell_grows():
    """From the exact answers: the gap between SVAG's second moment and the first-order SME's falls like 1/ell (the
    solver-free reference of Li, Malladi & Arora)."""
    X, y = _problem()
    w0, eta, batch, t = np.array([0.2, 0.1]), 0.2, 4, 2.0
    _, M_sme = _sme_moments(X, y, w0, eta, t, batch, 1.0, 1)
    ells = np.array([1, 2, 4, 8, 16])
    gaps = []
    for ell in ells:
        mu, M = _exact_moments(X, y, w0, eta / ell, int(round(t / eta)) * ell, batch, 1.0, noise=ell)
        gaps.append(np.linalg.norm(M - M_sme))
    slope = np.polyfit(np.log(ells), np.log(gaps), 1)[0]
    assert abs(slope + 1) < 0.15, (slope, gaps)


def test_extrapolation_in_dt_removes_euler_maruyamas_first_order_bias():
    """docs/math.md (12.6) on linear regression, exactly: Euler-Maruyama's moments obey SGD's recursion with step dt
    and noise eta / dt, so the bias of E L at dt = eta/2 and of the extrapolation are computed without sampling (the
    extrapolation's is far smaller); the sampled extrapolation lands within 3 standard errors of the SME's E L."""
    from linflow.studies.stochastic.weak import sme_values

    X, y = _problem()
    prob = linflow.Problem(X, y)
    w0, eta, batch, t1, n = np.array([0.2, 0.1]), 0.2, 4, 1.0, 6000
    keys = jax.random.split(jax.random.PRNGKey(11), n)
    (loss, _), ok = sme_values(prob, (w0[None],), eta, t1, np.array([0.0, t1]), batch=batch, keys=keys, order=1)

    def expected_loss(mu, M):
        return np.mean(np.einsum("ia,ab,ib->i", X, M, X) - 2 * y * (X @ mu) + y**2) / 2

    exact = expected_loss(*_sme_moments(X, y, w0, eta, t1, batch, 1.0, 1))
    em = {dt: expected_loss(*_exact_moments(X, y, w0, dt, int(round(t1 / dt)), batch, 1.0, noise=eta / dt))
          for dt in (eta / 2, eta / 4)}
    bias_plain, bias_extrapolated = em[eta / 2] - exact, 2 * em[eta / 4] - em[eta / 2] - exact
    assert abs(bias_extrapolated) < 0.2 * abs(bias_plain), (bias_plain, bias_extrapolated)
    assert ok.all()
    extrapolated = loss[:, -1]
    se = extrapolated.std(ddof=1) / np.sqrt(n)
    assert abs(extrapolated.mean() - exact) < 3 * se, (extrapolated.mean(), exact, se)


def test_epoch_sampling_matches_its_exact_moments_per_epoch():
    """Reshuffled epochs (batches dependent within an epoch, independent across epochs): on linear regression one
    epoch is the affine map w -> A_o w + b_o of the drawn order o, so the moments after each epoch are exact averages
    over the m! equally likely orders (enumerated here: m = 6, B = 2, three steps an epoch)."""
    import itertools

    rng = np.random.default_rng(5)
    m, d, batch, eta, epochs, n = 6, 2, 2, 0.3, 3, 8000
    X = rng.standard_normal((m, d))
    y = X @ np.array([0.5, -1.0]) + 0.4 * rng.standard_normal(m)
    w0 = np.array([0.3, 0.2])
    maps = []
    for order in itertools.permutations(range(m)):
        A, b = np.eye(d), np.zeros(d)
        for s in range(m // batch):
            idx = list(order[s * batch:(s + 1) * batch])
            Hb, cb = X[idx].T @ X[idx] / batch, X[idx].T @ y[idx] / batch
            A, b = (np.eye(d) - eta * Hb) @ A, (np.eye(d) - eta * Hb) @ b + eta * cb
        maps.append((A, b))
    mu, M = w0.copy(), np.outer(w0, w0)
    for _ in range(epochs):
        mu, M = (np.mean([A @ mu + b for A, b in maps], axis=0),
                 np.mean([A @ M @ A.T + np.outer(A @ mu, b) + np.outer(b, A @ mu) + np.outer(b, b) for A, b in maps],
                         axis=0))
    steps = epochs * (m // batch)
    runs = sgd.sgd_ensemble(linflow.Problem(X, y), (w0[None],), eta, steps, batch=batch, sampling="epoch",
                            keys=jax.random.split(jax.random.PRNGKey(12), n), save_every=steps)
    w = np.asarray(runs.end_to_end)[:, -1, 0, :]
    se = w.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(w.mean(axis=0) - mu) < 3 * se), (w.mean(0), mu, se)
    prods = w[:, :, None] * w[:, None, :]
    se2 = prods.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(axis=0) - M) < 3 * se2), (prods.mean(0), M, se2)
    # and the epochs' dependence matters: independent batches ("batch") give other moments, beyond sampling error
    _, M_independent = _exact_moments(X, y, w0, eta, steps, batch, (m - batch) / (m - 1))
    assert np.max(np.abs(np.diag(M - M_independent))) > 5 * np.max(se2)


@pytest.mark.slow
def test_ensemble_summary_is_the_paths_statistics_and_refuses_a_stopped_path():
    prob = linflow.problems.synthetic(m=40, d=3, seed=2)
    layers = linflow.init.balanced((3, 2, 1), 0.3, seed=0)
    runs = sgd.sgd_ensemble(prob, layers, 0.1, 20, batch=4, keys=jax.random.split(jax.random.PRNGKey(0), 50),
                            save_every=5)
    s = runs.ensemble_summary(quantiles=(0.1, 0.5))
    loss = np.asarray(runs.loss)
    w = np.asarray(runs.end_to_end)
    norm = np.sqrt(np.sum(w * w, axis=(-2, -1)))
    np.testing.assert_allclose(s.loss_mean.values, loss.mean(0), rtol=1e-13)
    np.testing.assert_allclose(s.loss_se.values, loss.std(0, ddof=1) / np.sqrt(50), rtol=1e-12)
    np.testing.assert_allclose(s.norm_quantile.sel(quantile=0.5).values, np.median(norm, axis=0), rtol=1e-13)
    np.testing.assert_allclose(s.t.values, 0.1 * np.arange(0, 21, 5))
    assert s.attrs["status"] == "ok" and s.attrs["paths"] == 50
    bad = sgd.sgd_ensemble(prob, layers, 50.0, 200, batch=8, keys=jax.random.split(jax.random.PRNGKey(0), 4))
    b = bad.ensemble_summary()
    assert "paths stopped early (diverged" in b.attrs["status"] and np.all(np.isnan(b.loss_mean.values))
    with pytest.raises(ValueError, match="leading ensemble axis"):
        sgd.sgd(prob, layers, 0.1, 5, batch=4, key=jax.random.PRNGKey(0)).ensemble_summary()
