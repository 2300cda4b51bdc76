"""SGD on the layers (issue 31, first part): depth 1 with the l2 loss (linear regression), where the ensemble's mean
and second moment obey exact linear recursions, computed here independently of linflow."""

import jax
import numpy as np
import pytest

import linflow
from linflow.core import sgd


def _exact_moments(X, y, w0, eta, steps, batch, factor):
    """E[w_k] and E[w_k w_k^T] of SGD on L = (1/m) sum (1/2)(x_i^T w - y_i)^2 with Cov[g_B | w] = factor Sigma(w) / B,
    Sigma(w) = (1/m) sum g_i g_i^T - g g^T, g_i = x_i (x_i^T w - y_i): exact, since Sigma is quadratic in w."""
    m = len(X)
    H, c = X.T @ X / m, X.T @ y / m
    mu, M = w0.copy(), np.outer(w0, w0)
    for _ in range(steps):
        Egg = H @ M @ H - H @ np.outer(mu, c) - np.outer(c, mu) @ H + np.outer(c, c)
        r2 = np.einsum("ia,ab,ib->i", X, M, X) - 2 * y * (X @ mu) + y**2  # E[(x_i^T w - y_i)^2]
        sigma = (X.T * r2) @ X / m - Egg
        Ewg = M @ H - np.outer(mu, c)
        M = M - eta * (Ewg + Ewg.T) + eta**2 * (Egg + factor * sigma / batch)
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
