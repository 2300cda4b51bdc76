"""The Gauss-Newton inverse of an implicit stage of the layer flow (linflow.core.stages, docs/math.md (9.4)) against
the dense Newton matrix built from the loss's own Hessian (jax.hessian of L1(W_e(theta)) + weight decay)."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st
from jax.flatten_util import ravel_pytree

from linflow.core.init import end_to_end
from linflow.core.sensing import CompletionProblem
from linflow.core.stages import gauss_newton_inverse


def _dense_newton_matrix(problem, layers, c):
    """``(1 + c lambda) I + c Hess L`` at a point where the residual is zero: there the Hessian of the layer loss is
    exactly ``lambda I + D^T H D`` (no residual term), computed by differentiating the loss twice."""
    flat, unravel = ravel_pytree(tuple(layers))
    hess = jax.hessian(lambda f: problem.loss(end_to_end(unravel(f))))(flat)
    return (1 + c * float(problem.weight_decay)) * np.eye(flat.size) + c * np.asarray(hess), unravel


@settings(max_examples=12, deadline=None)
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
