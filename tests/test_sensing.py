"""Matrix sensing and completion problems (issue 27, part 1): losses and gradients against sums written out in NumPy
and finite differences, the exact dynamics of a fully observed completion problem, Theorem 1 on both kinds, and every
run accepting them."""


import jax
import numpy as np
import pytest

import linflow
from linflow import exact, fields, init, sensing
from linflow.core.sensing import CompletionProblem, SensingProblem
from linflow.studies.sweeps import run_point

from conftest import central_difference


def _numpy_sensing_loss(A, y, W, p):
    r = np.einsum("ikd,kd->i", A, W) - y
    return np.mean(np.abs(r) ** p) / p, np.einsum("i,ikd->kd", np.sign(r) * np.abs(r) ** (p - 1), A) / len(y)


def _numpy_completion_loss(rows, cols, values, shape, W, p):
    loss, grad = 0.0, np.zeros(shape)
    scale = shape[0] * shape[1] / len(values)
    for r, c, v in zip(rows, cols, values):  # one observed entry at a time
        res = W[r, c] - v
        loss += scale * abs(res) ** p / p
        grad[r, c] += scale * np.sign(res) * abs(res) ** (p - 1)
    return loss, grad


@pytest.mark.parametrize("p", [1.5, 2.0, 3.0, 4.0])
def test_sensing_loss_and_gradient_are_the_sums(p, rng):
    prob = sensing.sensing([2.0, 1.0], d=4, m=30, k=3, p=p, seed=2)
    W = rng.standard_normal((3, 4))
    loss, grad = _numpy_sensing_loss(np.asarray(prob.A), np.asarray(prob.y), W, p)
    assert float(prob.loss(W)) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(prob.grad(W), grad, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(prob.grad(W), jax.grad(prob.loss)(W), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(prob.grad(W), central_difference(lambda w: float(prob.loss(w)), W), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("p", [1.5, 2.0, 3.0, 4.0])
def test_completion_loss_and_gradient_are_the_sums(p, rng):
    prob = sensing.completion([2.0, 1.0], d=5, m=11, k=4, p=p, seed=3)
    W = rng.standard_normal((4, 5))
    rows, cols, values = (np.asarray(a) for a in (prob.rows, prob.cols, prob.values))
    loss, grad = _numpy_completion_loss(rows, cols, values, (4, 5), W, p)
    assert float(prob.loss(W)) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(prob.grad(W), grad, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(prob.grad(W), jax.grad(prob.loss)(W), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(prob.grad(W), central_difference(lambda w: float(prob.loss(w)), W), rtol=1e-6, atol=1e-8)
    assert np.all(np.asarray(prob.grad(W))[~prob.mask] == 0.0)  # nothing flows into an unobserved entry


def test_generators_give_the_requested_targets_and_masks():
    W = sensing.low_rank_target([3.0, 1.0, 0.3], 6, 5, seed=4)
    np.testing.assert_allclose(np.linalg.svd(W, compute_uv=False)[:4], [3.0, 1.0, 0.3, 0.0], atol=1e-13)
    rows, cols = sensing.random_mask(5, 6, 17, seed=1)
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 17 and rows.max() < 5 and cols.max() < 6
    np.testing.assert_array_equal(sensing.random_mask(5, 6, 17, seed=1)[0], rows)  # seeded
    prob = sensing.completion([3.0, 1.0], d=6, m=20, seed=5)
    np.testing.assert_allclose(prob.values, np.asarray(prob.target)[prob.mask], rtol=0, atol=0)
    assert float(prob.loss(prob.target)) == 0.0 and np.abs(prob.grad(prob.target)).max() == 0.0


def test_sensing_loss_is_half_the_squared_distance_in_expectation():
    # Gaussian A_i with unit entries: E (1/2) <A_i, D>^2 = (1/2) ||D||_F^2; over m = 40000 measurements the mean has
    # relative standard deviation sqrt(2 / m) = 0.7%
    prob = sensing.sensing([1.0], d=3, m=40_000, seed=0)
    D = np.arange(9.0).reshape(3, 3) / 10
    W = np.asarray(prob.target) + D
    assert float(prob.loss(W)) == pytest.approx(0.5 * np.sum(D**2), rel=0.04)


def test_fully_observed_completion_follows_the_closed_form():
    # every entry observed: L1 = (1/2) ||W - W*||^2, the whitened setting, so the flow from an aligned start is exact
    prob = sensing.completion([2.0, 1.0, 0.5], d=3, m=9, seed=6)
    assert prob.whitened_target is not None
    ts = np.linspace(0.0, 6.0, 13)
    for depth in (2, 3):
        flow = linflow.gradient_flow(prob, init.aligned(prob, depth, 0.05), 6.0, ts=ts, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(flow.end_to_end, exact.end_to_end(prob, depth, 0.05, ts), rtol=0, atol=1e-9)
    assert sensing.completion([2.0], d=3, m=8).whitened_target is None  # one entry missing: no closed form


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sensing", "completion"])
@pytest.mark.parametrize("p", [2.0, 4.0])
def test_theorem1_holds_on_sensing_and_completion(kind, p):
    build = sensing.sensing if kind == "sensing" else sensing.completion
    prob = build([2.0, 1.0], d=4, m=12, p=p, seed=1)
    layers = init.balanced((4, 3, 3, 4), 0.8, seed=2)
    _, dw_e = jax.jvp(linflow.end_to_end, (layers,), (fields.layer_field(prob, layers),))
    np.testing.assert_allclose(dw_e, fields.end_to_end_field(prob, linflow.end_to_end(layers), 3), rtol=1e-9,
                               atol=1e-11)
    # and along the whole trajectory: the layer flow's product equals the end-to-end flow to 1e-8 (Dopri8 at rtol
    # 1e-12 puts the solvers' own error near 5e-11 here)
    ts = np.linspace(0.0, 2.0, 9)
    settings = linflow.SolverSettings("dopri8", rtol=1e-12, atol=1e-14)
    lf = linflow.gradient_flow(prob, layers, 2.0, ts=ts, settings=settings)
    ef = linflow.end_to_end_flow(prob, linflow.end_to_end(layers), 3, 2.0, ts=ts, settings=settings)
    assert lf.ok and ef.ok
    np.testing.assert_allclose(lf.end_to_end, ef.end_to_end, rtol=0, atol=1e-8 * np.abs(lf.end_to_end).max())


@pytest.mark.slow
def test_every_run_accepts_them():
    prob = sensing.completion([2.0, 1.0], d=3, m=7, seed=0)
    layers = init.balanced((3, 3, 3), 0.3)
    ds = linflow.compare(prob, layers, [0.05, 0.025], 1.0, points=11, orders=(1,))
    assert ds.attrs["flow_status"] == "ok" and list(ds.gd_status.values) == ["ok", "ok"]
    cf = linflow.central_flow(prob, layers, 0.05, 1.0, n_save=3)
    assert cf.ok
    point = run_point("run", dict(problem="completion", d=3, m=7, depth=2, width=3, t1=1.0, points=5, eta=0.05))
    assert point["status"] == "ok", point


@pytest.mark.parametrize("build, match", [
    (lambda: CompletionProblem([0, 0], [1, 1], [1.0, 2.0], (2, 2)), "distinct entries"),
    (lambda: CompletionProblem([0, 2], [1, 1], [1.0, 2.0], (2, 2)), r"rows must lie in \[0, 2\)"),
    (lambda: CompletionProblem([0, 1], [1], [1.0, 2.0], (2, 2)), "cols must be integers of shape"),
    (lambda: CompletionProblem([0], [1], [1.0], (2, 0)), "shape must be"),
    (lambda: SensingProblem(np.ones((3, 2, 2)), np.ones(4)), "same number m of measurements"),
    (lambda: SensingProblem(np.ones((3, 2, 2)), np.ones(3), target=np.ones((2, 3))), "target must have shape"),
    (lambda: sensing.random_mask(2, 2, 5), "m must be <= k \\* d = 4"),
    (lambda: sensing.low_rank_target([1.0, 1.0, 1.0], 2), "at most 2"),
    (lambda: init.aligned(SensingProblem(np.ones((3, 2, 2)), np.ones(3)), 2, 0.1), "needs a target matrix"),
])
def test_bad_input_names_the_parameter(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_nuclear_norm_completion_by_a_convex_solver():
    # [[x, 1], [1, 1]]: the nuclear norm is x + 1 for x >= 1 and sqrt((x - 1)^2 + 4) below, so its minimum is at x = 1
    pytest.importorskip("cvxpy", reason="cvxpy is a dependency of linflow; this environment lacks it")
    from linflow.paper.achl19 import nuclear_norm_completion

    X, status = nuclear_norm_completion(CompletionProblem([0, 1, 1], [1, 0, 1], [1.0, 1.0, 1.0], (2, 2)))
    assert status == "optimal"
    np.testing.assert_allclose(X, np.ones((2, 2)), atol=1e-4)

