import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import linflow
from linflow import curvature, init, problems

from conftest import small_regression


def dense_extremes(prob, layers):
    flat, unravel = ravel_pytree(tuple(jnp.asarray(w) for w in layers))
    H = np.asarray(jax.hessian(lambda f: linflow.fields.network_loss(prob, unravel(f)))(flat))
    ev = np.linalg.eigvalsh(H)
    return ev[-1], ev[0]


@pytest.mark.slow
@pytest.mark.parametrize("dims, make", [
    ((4, 8, 1), lambda dims: init.balanced(dims, 0.3 ** 0.5, 0)),       # many zero and repeated eigenvalues
    ((4, 5, 3, 2), lambda dims: init.near_zero(dims, 0.5, 1)),
    ((3, 3, 3, 3), lambda dims: init.identity(dims, 0.1, 2)),
    ((6, 1), lambda dims: init.near_zero(dims, 1.0, 3)),
])
@pytest.mark.parametrize("p, lam", [(2.0, 0.0), (4.0, 0.2)])
def test_lanczos_extremes_match_the_dense_hessian(dims, make, p, lam):
    prob = small_regression(m=30, d=dims[0], k=dims[-1], p=p, weight_decay=lam, seed=2)
    layers = make(dims)
    mx, mn = curvature.hessian_extremes(prob, layers)
    dmx, dmn = dense_extremes(prob, layers)
    scale = max(abs(dmx), abs(dmn))
    assert float(mx) == pytest.approx(dmx, abs=1e-9 * scale)
    assert float(mn) == pytest.approx(dmn, abs=1e-9 * scale)


@pytest.mark.slow  # a solve of seconds: the full command only (the fast tier's 3 minutes)
def test_batched_along_a_trajectory():
    prob = problems.synthetic(m=100, d=4, seed=1)
    tr = linflow.gradient_flow(prob, init.balanced((4, 8, 1), 0.5), 4.0, n_save=6)
    S = np.asarray(linflow.sharpness(prob, tr))
    lam = np.asarray(linflow.smallest_eigenvalue(prob, tr))
    for i in range(6):
        dmx, dmn = dense_extremes(prob, tuple(w[i] for w in tr.layers))
        assert S[i] == pytest.approx(dmx, rel=1e-9) and lam[i] == pytest.approx(dmn, abs=1e-9 * abs(dmx))
    with pytest.raises(ValueError, match="layer run"):
        linflow.sharpness(prob, linflow.end_to_end_flow(prob, np.ones((1, 4)), 2, 1.0))
