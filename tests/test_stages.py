"""The Gauss-Newton inverse of an implicit stage of the layer flow (linflow.core.stages, docs/math.md (9.4)) against
the dense Newton matrix built from the loss's own Hessian (jax.hessian of L1(W_e(theta)) + weight decay)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.flatten_util import ravel_pytree

from linflow.core.init import end_to_end
from linflow.core.sensing import CompletionProblem
from linflow.core.stages import gauss_newton_inverse

from conftest import budget


def _dense_newton_matrix(problem, layers, c):
    """``(1 + c lambda) I + c Hess_theta L1(W_e(theta))`` at a point where the residual is zero: there that Hessian is
    exactly ``D^T H D`` (no residual term); computed by differentiating the loss twice."""
    flat, unravel = ravel_pytree(tuple(layers))
    hess = jax.hessian(lambda f: problem.loss(end_to_end(unravel(f))))(flat)
    return (1 + c * float(problem.weight_decay)) * np.eye(flat.size) + c * np.asarray(hess), unravel


@pytest.mark.slow  # each shape compiles (7 s for 3): the full command only (the fast tier's 3 minutes)
@settings(max_examples=budget(3), deadline=None)  # 3 in the README's command, 75 in the long profile
@given(depth=st.integers(1, 4), k=st.integers(1, 4), d=st.integers(1, 4), width=st.integers(1, 4),
       seed=st.integers(0, 10_000), c=st.floats(1e-3, 1e3), decay=st.sampled_from([0.0, 0.1, 2.0]),
       fraction=st.floats(0.2, 1.0))
def test_the_preconditioner_inverts_the_gauss_newton_matrix(depth, k, d, width, seed, c, decay, fraction):
    rng = np.random.default_rng(seed)
    widths = (d,) + (width,) * (depth - 1) + (k,)
    layers = tuple(jnp.asarray(rng.standard_normal((widths[i + 1], widths[i]))) for i in range(depth))
    count = max(1, int(fraction * k * d))
    flat_index = np.sort(rng.choice(k * d, count, replace=False))
    rows, cols = np.unravel_index(flat_index, (k, d))
    W = np.asarray(end_to_end(layers))
    problem = CompletionProblem(rows, cols, W[rows, cols], (k, d), weight_decay=decay)  # a fit: no residual term
    newton, unravel = _dense_newton_matrix(problem, layers, c)
    inverse = gauss_newton_inverse(jnp.asarray(rows), jnp.asarray(cols), k * d / count, layers, c, decay)
    columns = jax.vmap(lambda v: ravel_pytree(inverse(unravel(v)))[0])(jnp.eye(newton.shape[0]))
    product = np.asarray(columns).T @ newton
    assert np.abs(product - np.eye(newton.shape[0])).max() < 1e-8 * max(1.0, np.linalg.cond(newton)) ** 0.5


def test_with_newton_refuses_a_preconditioner_it_cannot_use():
    import lineax as lx

    from linflow.core.settings import with_newton

    layers = (jnp.eye(2), jnp.eye(2))
    squared = CompletionProblem([0, 1], [0, 1], [1.0, 2.0], (2, 2))
    with pytest.raises(ValueError, match="linear_solver"):
        with_newton("kvaerno5", gauss_newton=(squared, layers))
    with pytest.raises(ValueError, match="p = 2"):
        with_newton("kvaerno5", linear_solver=lx.GMRES(1e-4, 1e-8),
                    gauss_newton=(CompletionProblem([0, 1], [0, 1], [1.0, 2.0], (2, 2), p=1.5), layers))


@pytest.mark.slow  # a solve of seconds: the full command only (the fast tier's 3 minutes)
def test_kvaerno5_with_the_preconditioned_stages_follows_the_explicit_flow():
    # 12 x 12 rank 2 from 60 entries, weight decay 0.01, depth 3 from a small balanced start, to t = 30 (the
    # modes learned and settling): Kvaerno5 with Gauss-Newton-preconditioned GMRES stages against Tsit5 at rtol 1e-10
    import lineax as lx

    from linflow.core import init
    from linflow.core.integrate import gradient_flow
    from linflow.core.settings import SolverSettings, with_newton

    rng = np.random.default_rng(3)
    target = rng.standard_normal((12, 2)) @ rng.standard_normal((2, 12))
    flat_index = np.sort(rng.choice(144, 60, replace=False))
    rows, cols = np.unravel_index(flat_index, (12, 12))
    problem = CompletionProblem(rows, cols, target[rows, cols], (12, 12), weight_decay=0.01)
    layers0 = init.factorize(1e-3 * np.eye(12), 3)
    implicit = with_newton("kvaerno5", 1e-8, 1e-10, linear_solver=lx.GMRES(1e-6, 1e-10, restart=5, max_steps=50),
                           gauss_newton=(problem, layers0))
    reference = gradient_flow(problem, layers0, 30.0, settings=SolverSettings("tsit5", rtol=1e-10, atol=1e-12))
    run = gradient_flow(problem, layers0, 30.0, settings=SolverSettings(implicit, rtol=1e-8, atol=1e-10))
    W_ref, W = (np.asarray(init.end_to_end(tuple(layer[-1] for layer in r.layers))) for r in (reference, run))
    assert np.linalg.norm(W_ref) > 1.0  # the flow left its start
    assert np.abs(W - W_ref).max() <= 1e-5 * np.abs(W_ref).max()
