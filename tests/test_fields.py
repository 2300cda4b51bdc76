import jax
import jax.numpy as jnp
import numpy as np
import pytest

import linflow
from linflow import fields, init

from conftest import central_difference, small_regression


@pytest.mark.parametrize("p", [2.0, 4.0])
@pytest.mark.parametrize("dims", [(4, 1), (4, 3, 2), (4, 5, 3, 1), (3, 2, 2, 2, 2), (2, 3, 4), (2, 2, 2)])
def test_layer_gradients_are_the_chain_rule(p, dims, rng):
    prob = small_regression(d=dims[0], k=dims[-1], p=p)
    layers = tuple(jnp.asarray(0.5 * rng.standard_normal((dims[j + 1], dims[j]))) for j in range(len(dims) - 1))
    ours = fields.layer_gradients(prob, layers)
    auto = jax.grad(lambda ls: prob.loss(linflow.end_to_end(ls)))(layers)
    for a, b in zip(ours, auto):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    # and against finite differences on the first layer
    f = lambda w0: float(prob.loss(linflow.end_to_end((jnp.asarray(w0),) + layers[1:])))  # noqa: E731
    np.testing.assert_allclose(ours[0], central_difference(f, np.asarray(layers[0])), rtol=1e-6, atol=1e-8)


def test_layer_field_is_minus_gradient_of_network_loss_with_decay(rng):
    prob = small_regression(d=3, k=2, weight_decay=0.3)
    layers = tuple(jnp.asarray(rng.standard_normal(s)) for s in [(4, 3), (2, 4)])
    grads = jax.grad(lambda ls: fields.network_loss(prob, ls))(layers)
    for f, g, w in zip(fields.layer_field(prob, layers), grads, layers):
        np.testing.assert_allclose(f, -g, rtol=1e-12)
        # -lambda W_j - dL^N/dW_j
    np.testing.assert_allclose(fields.layer_field(prob, layers)[0],
                               -0.3 * layers[0] - fields.layer_gradients(prob, layers)[0], rtol=1e-13)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("p", [2.0, 4.0])
@pytest.mark.parametrize("lam", [0.0, 0.2])
def test_claim2_equals_theorem1_for_one_output(depth, p, lam, rng):
    prob = small_regression(d=6, k=1, p=p, weight_decay=lam)
    W = jnp.asarray(rng.standard_normal((1, 6)))
    np.testing.assert_allclose(fields.claim2_field(prob, W, depth), fields.end_to_end_field(prob, W, depth),
                               rtol=1e-10, atol=1e-12)


def test_claim2_at_zero():
    prob = small_regression(d=3, k=1)
    zero = jnp.zeros((1, 3))
    np.testing.assert_array_equal(fields.claim2_field(prob, zero, 3), 0.0)
    np.testing.assert_allclose(fields.claim2_field(prob, zero, 1), -prob.grad(zero))
    J = jax.jacfwd(lambda w: fields.claim2_field(prob, w, 3))(zero)
    assert np.all(np.isfinite(np.asarray(J)))
    with pytest.raises(ValueError, match="single output"):
        fields.claim2_field(small_regression(d=3, k=2), jnp.zeros((2, 3)), 3)


@pytest.mark.parametrize("dims", [(4, 4, 2), (3, 5, 5, 2), (5, 2, 3, 4, 1), (3, 3, 3, 3)])
@pytest.mark.parametrize("p, lam", [(2.0, 0.0), (4.0, 0.0), (2.0, 0.5), (3.0, 0.1)])
def test_theorem1_instantaneously(dims, p, lam):
    # at a balanced point, d/dt (W_N ... W_1) by the product rule on the layer field equals Theorem 1
    prob = small_regression(d=dims[0], k=dims[-1], p=p, weight_decay=lam)
    layers = init.balanced(dims, scale=0.9, seed=3)
    w_e = linflow.end_to_end(layers)
    _, dw_e = jax.jvp(linflow.end_to_end, (layers,), (fields.layer_field(prob, layers),))
    np.testing.assert_allclose(dw_e, fields.end_to_end_field(prob, w_e, len(layers)), rtol=1e-9, atol=1e-11)


def test_theorem1_fails_off_balance():
    # the identity really needs balancedness: an unbalanced start breaks it (the test can fail)
    prob = small_regression(d=3, k=2)
    layers = init.near_zero((3, 4, 2), std=0.8, seed=0)
    _, dw_e = jax.jvp(linflow.end_to_end, (layers,), (fields.layer_field(prob, layers),))
    gap = np.abs(np.asarray(dw_e) - np.asarray(fields.end_to_end_field(prob, linflow.end_to_end(layers), 2))).max()
    assert gap > 1e-3
