import numpy as np
import pytest

import linflow
from linflow import init, problems


def numpy_imbalance(layers):
    layers = [np.asarray(w) for w in layers]
    return max([np.linalg.norm(layers[j + 1].T @ layers[j + 1] - layers[j] @ layers[j].T) for j in range(len(layers) - 1)],
               default=0.0)


@pytest.mark.parametrize("dims", [(4, 3), (5, 4, 2), (6, 7, 3, 2), (3, 5, 5, 5, 1), (4, 1, 1, 1)])
def test_balanced_is_balanced_with_layers_of_spectral_norm_scale(dims):
    layers = init.balanced(dims, scale=0.7, seed=2)
    assert [w.shape for w in layers] == [(dims[j + 1], dims[j]) for j in range(len(dims) - 1)]
    norms = [np.linalg.norm(np.asarray(w), 2) for w in layers]
    np.testing.assert_allclose(norms, 0.7, rtol=1e-13)
    assert numpy_imbalance(layers) < 1e-14
    assert float(linflow.imbalance(layers)) == pytest.approx(numpy_imbalance(layers), abs=1e-15)


def test_balanced_rank_and_width_errors():
    layers = init.balanced((6, 4, 5), scale=1.0, rank=2)
    assert np.linalg.matrix_rank(np.asarray(linflow.end_to_end(layers))) == 2
    with pytest.raises(ValueError, match="rank must be <= min"):
        init.balanced((3, 4, 2), rank=3)
    with pytest.raises(ValueError, match="dims must hold at least"):
        init.balanced((3,))
    with pytest.raises(ValueError, match=r"dims\[1\] must be a positive integer"):
        init.balanced((3, 0, 2))


def test_near_zero_and_identity():
    layers = init.near_zero((50, 60, 40), std=0.01, seed=0)
    allv = np.concatenate([np.ravel(w) for w in layers])
    assert abs(allv.std() - 0.01) < 5e-4 and abs(allv.mean()) < 5e-4
    eye = init.identity((3, 4, 2))
    np.testing.assert_array_equal(eye[0], np.eye(4, 3))
    np.testing.assert_array_equal(linflow.end_to_end(eye), np.eye(2, 3))
    assert float(linflow.imbalance(init.identity((3, 3, 3, 3)))) == 0.0


def test_aligned_start_is_balanced_and_on_the_target_basis():
    prob = problems.whitened([3.0, 1.5], d=4, k=2, seed=5)
    layers = init.aligned(prob, 3, [0.2, 0.1], widths=(4, 6), seed=1)
    w_e = np.asarray(linflow.end_to_end(layers))
    phi = np.asarray(prob.Y).T @ np.asarray(prob.X) / prob.m
    U, s, Vt = np.linalg.svd(phi, full_matrices=False)
    # same singular vectors as the target, prescribed singular values
    np.testing.assert_allclose(U.T @ w_e @ Vt.T, np.diag([0.2, 0.1]), atol=1e-14)
    assert numpy_imbalance(layers) < 1e-14
    with pytest.raises(ValueError, match="sigma0 must be a scalar or have shape"):
        init.aligned(prob, 3, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="widths must hold depth - 1 = 2"):
        init.aligned(prob, 3, 0.1, widths=(4,))


def test_end_to_end_and_balancedness_on_batches(rng):
    layers = tuple(rng.standard_normal(s) for s in [(3, 2), (4, 3), (1, 4)])
    expected = layers[2] @ layers[1] @ layers[0]
    np.testing.assert_allclose(linflow.end_to_end(layers), expected, rtol=1e-14)
    batched = tuple(np.stack([w, 2 * w]) for w in layers)
    out = np.asarray(linflow.end_to_end(batched))
    np.testing.assert_allclose(out[1], 8 * expected, rtol=1e-14)
    d = linflow.balancedness(layers)
    np.testing.assert_allclose(d[0], layers[1].T @ layers[1] - layers[0] @ layers[0].T, atol=1e-14)
    imb = np.asarray(linflow.imbalance(batched))
    assert imb.shape == (2,)
    np.testing.assert_allclose(imb, [numpy_imbalance(layers), 4 * numpy_imbalance(layers)], rtol=1e-13)
    assert float(linflow.imbalance(layers[:1])) == 0.0


def test_aligned_accepts_dims():
    prob = problems.whitened([2.0, 1.0], d=3, k=2, seed=1)
    a = init.aligned(prob, (3, 4, 5, 2), 0.2, seed=0)
    b = init.aligned(prob, 3, 0.2, widths=(4, 5), seed=0)
    assert [w.shape for w in a] == [(4, 3), (5, 4), (2, 5)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="must start with d = 3"):
        init.aligned(prob, (2, 4, 2), 0.2)
