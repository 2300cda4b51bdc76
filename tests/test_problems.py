import numpy as np
import pytest

from linflow import problems
from linflow.core.problems import Problem

from conftest import central_difference, grad_numpy, loss_numpy, small_regression


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, 4.0])
@pytest.mark.parametrize("k", [1, 3])
def test_loss_and_grad_match_direct_sums(p, k, rng):
    prob = small_regression(d=4, k=k, p=p)
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)
    W = rng.standard_normal((k, 4))
    assert float(prob.loss(W)) == pytest.approx(loss_numpy(X, Y, W, p), rel=1e-12)
    np.testing.assert_allclose(np.asarray(prob.grad(W)), grad_numpy(X, Y, W, p), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("p", [2.0, 3.0, 4.0, 2.5])
def test_grad_against_finite_differences(p, rng):
    prob = small_regression(d=3, k=2, p=p)
    W = rng.standard_normal((2, 3))
    fd = central_difference(lambda w: float(prob.loss(w)), W)
    np.testing.assert_allclose(np.asarray(prob.grad(W)), fd, rtol=1e-6, atol=1e-8)


def test_one_dimensional_targets_mean_one_output():
    prob = Problem(np.ones((3, 2)), np.arange(3.0))
    assert (prob.m, prob.d, prob.k) == (3, 2, 1)
    assert prob.Y.shape == (3, 1)


def test_p2_loss_does_not_touch_the_samples():
    # The l2 path must use only the moments: a problem built from moments-equivalent data
    # (same X^T X, Y^T X, Y^T Y, different m and rows) gives the same loss and gradient.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    Y = rng.standard_normal((50, 1))
    A = np.vstack([X, X])  # duplicated rows: identical moments, twice as many samples
    B = np.vstack([Y, Y])
    W = rng.standard_normal((1, 3))
    p1, p2 = Problem(X, Y), Problem(A, B)
    assert float(p1.loss(W)) == pytest.approx(float(p2.loss(W)), rel=1e-13)
    np.testing.assert_allclose(p1.grad(W), p2.grad(W), rtol=1e-13)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(p=0.5), "p must be >= 1"),
        (dict(p=float("nan")), "p must be finite"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Problem(np.ones((3, 2)), np.ones(3), **kwargs)


def test_bad_data():
    with pytest.raises(ValueError, match="X must be finite"):
        Problem(np.array([[1.0, np.inf]]), np.ones(1))
    with pytest.raises(ValueError, match="Y must be finite"):
        Problem(np.ones((2, 2)), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="same number of rows"):
        Problem(np.ones((3, 2)), np.ones(4))
    with pytest.raises(ValueError, match="X must have 2 dimensions"):
        Problem(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"W must have shape \(k, d\) = \(1, 2\)"):
        Problem(np.ones((3, 2)), np.ones(3)).loss(np.ones((2, 1)))
    with pytest.raises(TypeError, match="p must be a real"):
        Problem(np.ones((3, 2)), np.ones(3), p="2")


def test_synthetic_is_deterministic_and_shaped_like_the_gas_task():
    a = problems.synthetic(seed=3)
    b = problems.synthetic(seed=3)
    c = problems.synthetic(seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(np.asarray(a.X), np.asarray(c.X))
    assert a.k == 1 and a.m >= 1000 and 32 <= a.d <= 128
    X, y = np.asarray(a.X), np.asarray(a.Y)[:, 0]
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-12)
    assert y.std() == pytest.approx(1.0)
    stds = X.std(axis=0)
    assert stds.max() / stds.min() > 5  # features on very different scales


def test_synthetic_l2_and_l4_have_different_minimizers():
    # l2 and l4 weigh large residuals differently: their minimizers differ measurably
    from scipy.optimize import minimize

    p2, p4 = problems.synthetic(m=400, d=8, p=2), problems.synthetic(m=400, d=8, p=4)
    sols = []
    for prob in (p2, p4):
        res = minimize(lambda w: float(prob.loss(w[None])), np.zeros(8), jac=lambda w: np.asarray(prob.grad(w[None]))[0],
                       method="BFGS", options={"gtol": 1e-10})
        sols.append(res.x)
    assert np.linalg.norm(sols[0] - sols[1]) > 1e-2 * np.linalg.norm(sols[0])


def test_whitened_problem_has_identity_covariance_and_the_requested_target():
    s = np.array([3.0, 2.0, 0.5])
    prob = problems.whitened(s, d=5, k=4, m=20, seed=1)
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)
    np.testing.assert_allclose(X.T @ X / 20, np.eye(5), atol=1e-13)
    np.testing.assert_allclose(np.linalg.svd(Y.T @ X / 20, compute_uv=False)[:3], s, rtol=1e-13)
    # the minimum of the l2 loss is zero (targets exactly linear in the inputs)
    phi = Y.T @ X / 20
    assert float(prob.loss(phi)) == pytest.approx(0.0, abs=1e-13)
    with pytest.raises(ValueError, match="at most 2"):
        problems.whitened([1.0, 2.0, 3.0], d=2, k=5)


def test_two_point():
    prob = problems.two_point(5.0, 1.0, p=4)
    w = np.array([[5.0, 0.0]])
    # (1/2) * (1/4) * |0 - 1|^4
    assert float(prob.loss(w)) == pytest.approx(1.0 / 8.0)


def test_one_builder_for_the_command_line_and_the_sweeps():
    """The CLI and a sweep point build the same problem and start from the same settings (linflow.core.specs)."""
    import jax.numpy as jnp

    from linflow import cli, init, problems
    from linflow.core import specs
    from linflow.studies.sweeps import tasks

    args = cli.build_parser().parse_args(["run", "--m", "50", "--d", "3", "--depth", "3", "--widths", "4,4",
                                          "--init", "near_zero", "--scale", "0.1", "--seed", "2"])
    cli.options.settle(args)
    prob_cli, layers_cli = cli.commands.build(args)
    params = {"problem": "synthetic", "m": 50, "d": 3, "p": 2.0, "weight_decay": 0.0, "seed": 2, "data": "",
              "width": 4, "depth": 3, "init": "near_zero", "scale": 0.1}
    prob_sweep, layers_sweep = tasks.problem_and_layers(params)
    direct = init.near_zero((3, 4, 4, 1), std=0.1, seed=2)  # written out: what both must equal
    for a, b, c in zip(layers_cli, layers_sweep, direct):
        assert jnp.array_equal(a, c) and jnp.array_equal(b, c)
    ref = problems.synthetic(m=50, d=3, seed=2)
    assert jnp.array_equal(prob_cli.X, ref.X) and jnp.array_equal(prob_sweep.Y, ref.Y)
    with pytest.raises(ValueError, match="init must be one of balanced, near_zero, identity"):
        specs.start(ref, 2, None, "orthogonal")
    with pytest.raises(ValueError, match="problem must be one of synthetic, whitened, gas_sensor"):
        specs.problem("mnist")
