import numpy as np
import pytest

import linflow
from linflow import init, problems

from conftest import grad_numpy, small_regression, traces


def chain(mats, n):
    """M_last ... M_first applied to the n x n identity."""
    out = np.eye(n)
    for M in mats:
        out = M @ out
    return out


def numpy_layer_grads(X, Y, layers, p):
    """G_j = (W_N ... W_{j+1})^T g (W_{j-1} ... W_1)^T with plain NumPy products."""
    g = grad_numpy(X, Y, chain(layers, X.shape[1]), p)
    return [chain(layers[j + 1:], layers[j].shape[0]).T @ g @ chain(layers[:j], X.shape[1]).T
            for j in range(len(layers))]


def numpy_gd(X, Y, layers, eta, steps, p, lam):
    """Independent gradient descent on the layers (plain NumPy loop)."""
    layers = [np.array(w) for w in layers]
    out = [tuple(layers)]
    for _ in range(steps):
        G = numpy_layer_grads(X, Y, layers, p)
        layers = [(1 - eta * lam) * w - eta * g for w, g in zip(layers, G)]
        out.append(tuple(layers))
    return out


def numpy_end_to_end_step(X, Y, W, depth, eta, p, lam):
    """Eq. 10 with SciPy's fractional matrix powers (an independent implementation)."""
    g = grad_numpy(X, Y, W, p)

    def power(A, q):
        if q == 0:
            return np.eye(A.shape[0])
        lam_, Q = np.linalg.eigh(A)
        lam_ = np.clip(lam_, 0, None)
        lam_[lam_ < A.shape[0] * 2.2e-16 * lam_.max()] = 0
        return (Q * lam_**q) @ Q.T

    total = sum(power(W @ W.T, (j - 1) / depth) @ g @ power(W.T @ W, (depth - j) / depth) for j in range(1, depth + 1))
    return (1 - eta * lam * depth) * W - eta * total


@pytest.mark.parametrize("dims", [(3, 1), (3, 4, 2), (3, 2, 5, 1), (4, 3, 3, 3, 2)])
@pytest.mark.parametrize("p, lam", [(2.0, 0.0), (4.0, 0.1)])
def test_gradient_descent_matches_an_independent_loop(dims, p, lam):
    prob = small_regression(m=25, d=dims[0], k=dims[-1], p=p, weight_decay=lam, seed=3)
    layers = init.near_zero(dims, std=0.5, seed=2)
    ref = numpy_gd(np.asarray(prob.X), np.asarray(prob.Y), layers, 0.05, 30, p, lam)
    gd = linflow.gradient_descent(prob, layers, 0.05, 30, save_every=1)
    assert gd.ok and len(gd) == 31
    for k in (1, 7, 30):
        for j in range(len(dims) - 1):
            np.testing.assert_allclose(gd.layers[j][k], ref[k][j], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(gd.ts, 0.05 * np.arange(31))


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_end_to_end_descent_matches_eq10(k, depth):
    prob = small_regression(m=25, d=3, k=k, p=4.0, weight_decay=0.05, seed=4)
    W = np.asarray(linflow.end_to_end(init.balanced((3,) + (3,) * (depth - 1) + (k,), 0.8, seed=1)))
    ed = linflow.end_to_end_descent(prob, W, depth, 0.02, 10)
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)
    ref = W
    for _ in range(10):
        ref = numpy_end_to_end_step(X, Y, ref, depth, 0.02, 4.0, 0.05)
    np.testing.assert_allclose(ed.end_to_end[-1], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lam", [0.0, 0.2])
def test_gd_balancedness_obeys_the_exact_one_step_identity(lam):
    # D_j <- a^2 D_j + eta^2 (G_{j+1}^T G_{j+1} - G_j G_j^T), a = 1 - eta lambda
    prob = small_regression(m=30, d=4, k=2, p=2.0, weight_decay=lam, seed=5)
    eta = 0.1
    gd = linflow.gradient_descent(prob, init.balanced((4, 3, 3, 2), 0.9, seed=0), eta, 25)
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)
    a = 1 - eta * lam
    for step in range(25):
        layers = [np.asarray(w[step]) for w in gd.layers]
        nxt = [np.asarray(w[step + 1]) for w in gd.layers]
        G = numpy_layer_grads(X, Y, layers, 2.0)
        for j in range(2):
            D = layers[j + 1].T @ layers[j + 1] - layers[j] @ layers[j].T
            D_next = nxt[j + 1].T @ nxt[j + 1] - nxt[j] @ nxt[j].T
            predicted = a**2 * D + eta**2 * (G[j + 1].T @ G[j + 1] - G[j] @ G[j].T)
            np.testing.assert_allclose(D_next, predicted, atol=1e-13)
    assert gd.imbalance[-1] > 1e-4  # the drift is real (the identity is not trivially 0 = 0)


def test_divergence_is_reported_at_the_right_step():
    prob = problems.two_point(10.0, 1.0, p=4)
    layers = init.balanced((2, 2, 1), 0.5, seed=0)
    eta = 0.05
    gd = linflow.gradient_descent(prob, layers, eta, 400, save_every=3)
    assert gd.status == "diverged"
    # independent: the NumPy loop overflows at the same step
    with np.errstate(all="ignore"):
        ref = numpy_gd(np.asarray(prob.X), np.asarray(prob.Y), layers, eta, 400, 4.0, 0.0)
    first_bad = next(k for k, ls in enumerate(ref) if not all(np.all(np.isfinite(w)) for w in ls))
    assert f"the iterate became non-finite at step {first_bad} (t = {first_bad * eta:.6g})" in gd.message
    assert gd.stats["num_steps"] == first_bad
    assert np.all(np.isfinite(gd.end_to_end)) and np.all(np.isfinite(gd.loss))
    k = gd.n_reached
    assert gd.iterations[k - 1] < first_bad <= gd.iterations[k - 1] + 3  # saved every 3 steps
    # the message names the last reached point; the rows after it repeat it (fixed shapes)
    assert f"up to step {gd.iterations[k - 1]} (t = {float(gd.ts[k - 1]):.6g})" in gd.message
    assert len(gd) == 400 // 3 + 2 and np.all(gd.loss[k:] == gd.loss[k - 1]) and np.all(gd.ts[k:] == gd.ts[k - 1])
    assert f"t = {float(gd.ts[-1]):.6g})" in gd.message  # the time axis ends where the message says


def test_overflowing_loss_with_finite_layers_is_a_divergence_and_never_returned():
    # eta = 50 on the synthetic problem: the layers stay finite one step longer than W_e = W_3 W_2 W_1 and its
    # loss, which overflow first; the run must stop at the last finite loss, not return inf/NaN
    prob = problems.synthetic(m=200, d=8)
    layers = init.balanced((8, 4, 4, 1), 0.2, seed=0)
    gd = linflow.gradient_descent(prob, layers, 50.0, 100)
    assert gd.status == "diverged"
    assert np.all(np.isfinite(gd.loss)) and np.all(np.isfinite(gd.end_to_end))
    assert all(np.all(np.isfinite(w)) for w in gd.layers) and np.all(np.isfinite(gd.imbalance))
    with np.errstate(all="ignore"):
        X, Y = np.asarray(prob.X), np.asarray(prob.Y).reshape(len(prob.X), -1)
        k = gd.n_reached
        ref = numpy_gd(X, Y, layers, 50.0, k + 1, 2.0, 0.0)
        w_next = ref[k][2] @ ref[k][1] @ ref[k][0]
        loss_next = np.mean(np.sum((X @ w_next.T - Y) ** 2, axis=1)) / 2
    assert not np.isfinite(loss_next)  # the first point left out is indeed non-finite
    assert f"up to step {gd.iterations[k - 1]} (t = {float(gd.ts[k - 1]):.6g})" in gd.message


def test_save_every_that_does_not_divide_steps():
    prob = small_regression(m=20, d=3, k=1)
    layers = init.balanced((3, 2, 1), 0.5)
    gd = linflow.gradient_descent(prob, layers, 0.1, 10, save_every=4)
    np.testing.assert_array_equal(gd.iterations, [0, 4, 8, 10])
    full = linflow.gradient_descent(prob, layers, 0.1, 10)
    np.testing.assert_allclose(gd.end_to_end, np.asarray(full.end_to_end)[[0, 4, 8, 10]], rtol=1e-14)
    few = linflow.gradient_descent(prob, layers, 0.1, 3, save_every=5)
    np.testing.assert_array_equal(few.iterations, [0, 3])


def test_no_recompilation_for_new_eta_data_or_start():
    prob = small_regression(m=20, d=3, k=1)
    linflow.gradient_descent(prob, init.balanced((3, 2, 1), 0.5), 0.1, 20, save_every=5)
    with traces() as traced:  # new eta, data, weight decay and start: nothing traced, so nothing compiled
        linflow.gradient_descent(small_regression(m=20, d=3, k=1, seed=9, weight_decay=0.3),
                                 init.near_zero((3, 2, 1)), 0.037, 20, save_every=5)
    assert traced == []
    with traces() as traced:  # the probe itself sees a compilation: another number of steps is another program
        linflow.gradient_descent(prob, init.balanced((3, 2, 1), 0.5), 0.1, 21, save_every=7)
    assert traced


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda p, ls: linflow.gradient_descent(p, ls, 0.0, 10), ValueError, "eta must be > 0"),
        (lambda p, ls: linflow.gradient_descent(p, ls, -1.0, 10), ValueError, "eta must be > 0"),
        (lambda p, ls: linflow.gradient_descent(p, ls, 0.1, 0), ValueError, "steps must be >= 1"),
        (lambda p, ls: linflow.gradient_descent(p, ls, 0.1, 2.5), TypeError, "steps must be an integer"),
        (lambda p, ls: linflow.gradient_descent(p, ls, 0.1, 5, save_every=0), ValueError, "save_every must be >= 1"),
        (lambda p, ls: linflow.gradient_descent(p, ls, float("inf"), 5), ValueError, "eta must be finite"),
        (lambda p, ls: linflow.end_to_end_descent(p, np.ones((1, 3)), 0, 0.1, 5), ValueError, "depth must be >= 1"),
        (lambda p, ls: linflow.end_to_end_descent(p, ls, 3, 0.1, 5), ValueError, "depth = 3 but 2 layers"),
    ],
)
def test_bad_input(call, exc, match):
    prob = small_regression(m=20, d=3, k=1)
    with pytest.raises(exc, match=match):
        call(prob, init.balanced((3, 2, 1), 0.5))


def test_batched_learning_rates_match_single_runs():
    prob = problems.two_point(10.0, 1.0, p=4)
    layers = init.balanced((2, 2, 1), 0.5)
    runs = linflow.gradient_descents(prob, layers, [0.001, 0.01, 0.05], 300, save_every=7)
    for eta, tr in zip([0.001, 0.01, 0.05], runs):
        single = linflow.gradient_descent(prob, layers, eta, 300, save_every=7)
        assert (tr.status, tr.message) == (single.status, single.message)
        np.testing.assert_allclose(tr.end_to_end, single.end_to_end, rtol=1e-13)
    assert runs[-1].status == "diverged" and runs[0].ok


def test_optax_sgd_is_gradient_descent_and_the_textbook_rules():
    prob = small_regression(m=20, d=3, k=1, p=4.0, weight_decay=0.1)
    layers = init.balanced((3, 2, 1), 0.6)
    sgd = linflow.optax_descents(prob, layers, "sgd", [0.01, 0.02], 50, save_every=10)
    for lr, tr in zip([0.01, 0.02], sgd):
        gd = linflow.gradient_descent(prob, layers, lr, 50, save_every=10)
        np.testing.assert_allclose(tr.end_to_end, gd.end_to_end, rtol=1e-12)
    # textbook AdaGrad on the linear model, written out: w -= lr g / sqrt(sum of g^2)
    lin = (np.asarray(init.near_zero((3, 1), 0.1, seed=1)[0]),)
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)
    w, acc = lin[0].copy(), np.zeros_like(lin[0])
    for _ in range(5):
        g = grad_numpy(X, Y, w, 4.0) + 0.1 * w
        acc += g**2
        w = w - 0.05 * g / np.sqrt(acc)
    ada = linflow.optax_descents(prob, lin, "adagrad", [0.05], 5)[0]
    np.testing.assert_allclose(ada.end_to_end[-1], w, rtol=1e-12)
    # AdaDelta with a learning rate descends
    dl = linflow.optax_descents(prob, lin, "adadelta", [1.0], 200)[0]
    assert dl.loss[-1] < dl.loss[0]
    with pytest.raises(ValueError, match="optimizer must be one of"):
        linflow.optax_descents(prob, lin, "lbfgs", [0.1], 5)


def test_optax_descent_takes_a_built_transformation():
    """A built ``optax.GradientTransformation`` is the step rule as given: ``optax.sgd(eta)`` is GD; a chain with
    gradient clipping is GD on the clipped gradient, written out here."""
    import optax

    prob = small_regression(m=20, d=3, k=1, p=2.0, weight_decay=0.1)
    layers = init.balanced((3, 2, 1), 0.6)
    built = linflow.optax_descent(prob, layers, optax.sgd(0.02), 0.02, 40, save_every=10)
    gd = linflow.gradient_descent(prob, layers, 0.02, 40, save_every=10)
    np.testing.assert_allclose(built.end_to_end, gd.end_to_end, rtol=1e-12)
    np.testing.assert_allclose(built.ts, gd.ts, rtol=1e-15)
    assert built.kind == "optax" and built.ok
    lin = (np.asarray(init.near_zero((3, 1), 0.1, seed=1)[0]),)
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)
    w = lin[0].copy()
    for _ in range(5):  # clip by the global norm 0.1, then a step of 0.5
        g = grad_numpy(X, Y, w, 2.0) + 0.1 * w
        w = w - 0.5 * g * min(1.0, 0.1 / np.linalg.norm(g))
    clipped = linflow.optax_descent(prob, lin, optax.chain(optax.clip_by_global_norm(0.1), optax.sgd(0.5)), 0.5, 5)
    np.testing.assert_allclose(clipped.end_to_end[-1], w, rtol=1e-12)
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        linflow.optax_descent(prob, lin, 0.5, 0.5, 5)


def _numpy_rule(name: str, lr: float, grad, w0: np.ndarray, steps: int) -> np.ndarray:
    """The step rules of linflow.descent.OPTIMIZERS written out from their equations (optax's conventions and
    defaults: heavy ball and Nesterov with momentum 0.9; AdaDelta rho 0.9, eps 1e-6; Adam 0.9, 0.999, 1e-8)."""
    w = w0.copy()
    v, m, e_g, e_x = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        g = grad(w)
        if name == "momentum":  # v <- 0.9 v + g; w <- w - lr v
            v = 0.9 * v + g
            w = w - lr * v
        elif name == "nesterov":  # the same v, and the step looks ahead: w <- w - lr (g + 0.9 v)
            v = 0.9 * v + g
            w = w - lr * (g + 0.9 * v)
        elif name == "adadelta":  # Zeiler 2012: E[g^2], then dx = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) g
            e_g = 0.9 * e_g + 0.1 * g**2
            dx = np.sqrt(e_x + 1e-6) / np.sqrt(e_g + 1e-6) * g
            e_x = 0.9 * e_x + 0.1 * dx**2
            w = w - lr * dx
        elif name == "adam":  # Kingma & Ba 2015, bias-corrected moments
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            w = w - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w


@pytest.mark.parametrize("name, lr", [("momentum", 0.02), ("nesterov", 0.02), ("adadelta", 1.0), ("adam", 0.05)])
def test_each_optax_rule_against_its_equations(name, lr):
    prob = small_regression(m=20, d=3, k=1, p=4.0, weight_decay=0.1)
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)
    w0 = np.asarray(init.near_zero((3, 1), 0.1, seed=1)[0])
    expected = _numpy_rule(name, lr, lambda w: grad_numpy(X, Y, w, 4.0) + 0.1 * w, w0, 30)
    run = linflow.optax_descent(prob, (w0,), name, lr, 30, save_every=30)
    assert np.all(np.isfinite(expected)) and np.linalg.norm(expected - w0) > 1e-2  # a real, finite move
    np.testing.assert_allclose(run.end_to_end[-1], expected, rtol=1e-10, atol=1e-14)
    assert float(run.loss[-1]) < float(run.loss[0])
