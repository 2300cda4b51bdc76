import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import linflow
from linflow import linalg, problems


def numpy_power(A, q):
    lam, Q = np.linalg.eigh((A + A.T) / 2)
    lam = np.where(lam > A.shape[0] * np.finfo(float).eps * np.abs(lam).max(), lam, 0.0)
    return (Q * lam**q) @ Q.T


@pytest.mark.parametrize("q", [0.25, 1 / 3, 0.5, 2 / 3, 1.0, 1.5])
def test_power_matches_scipy_on_a_definite_matrix(q, rng):
    B = rng.standard_normal((5, 5))
    A = B @ B.T + 0.1 * np.eye(5)
    np.testing.assert_allclose(linalg.psd_power(A, q), np.real(scipy.linalg.fractional_matrix_power(A, q)), rtol=1e-10,
                               atol=1e-12)


def test_power_zero_is_the_exact_identity_even_for_singular_input():
    for A in (np.zeros((3, 3)), np.outer([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])):
        np.testing.assert_array_equal(linalg.psd_power(A, 0.0), np.eye(3))


def test_noise_floor_on_a_rank_deficient_matrix(rng):
    W = rng.standard_normal((2, 6))
    A = W.T @ W  # rank 2, four eigenvalues at round-off level (some negative)
    P = np.asarray(linalg.psd_power(A, 1 / 3))
    assert np.all(np.isfinite(P))
    # [A]^(1/3) has the same range as A and cubes back to A
    np.testing.assert_allclose(P @ P @ P, A, atol=1e-12)
    assert np.linalg.matrix_rank(P, tol=1e-8) == 2


def _fd_jvp(f, A, E, h=1e-6):
    return (np.asarray(f(A + h * E)) - np.asarray(f(A - h * E))) / (2 * h)


@pytest.mark.parametrize("q", [1 / 3, 0.5, 2 / 3, 1.5])
def test_daleckii_krein_jvp_against_finite_differences(q, rng):
    B = rng.standard_normal((4, 4))
    A = B @ B.T + 0.5 * np.eye(4)
    E = rng.standard_normal((4, 4))
    E = E + E.T
    f = lambda a: linalg.psd_power(a, q)  # noqa: E731
    _, tangent = jax.jvp(f, (jnp.asarray(A),), (jnp.asarray(E),))
    np.testing.assert_allclose(tangent, _fd_jvp(f, A, E), rtol=1e-6, atol=1e-8)


def test_jvp_at_repeated_eigenvalues_is_finite_and_exact(rng):
    # d/dh [I + h E]^q at h = 0 is q E (every eigenvalue equal: plain eigh gives NaN here)
    E = rng.standard_normal((4, 4))
    E = E + E.T
    for q in (1 / 3, 0.5, 2.0):
        _, t = jax.jvp(lambda a: linalg.psd_power(a, q), (jnp.eye(4),), (jnp.asarray(E),))
        np.testing.assert_allclose(t, q * E, rtol=1e-12, atol=1e-14)
    # nearly coincident eigenvalues (no cancellation in the divided difference)
    A = np.diag([1.0, 1.0 + 1e-9, 2.0, 2.0])
    _, t = jax.jvp(lambda a: linalg.psd_power(a, 0.5), (jnp.asarray(A),), (jnp.asarray(E),))
    fd = _fd_jvp(lambda a: linalg.psd_power(a, 0.5), A, E, h=1e-7)
    np.testing.assert_allclose(t, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_end_to_end_field_is_differentiable_at_zero_and_at_identity(depth):
    prob = problems.whitened([2.0, 1.0, 0.5], seed=0)
    f = lambda w: linflow.fields.end_to_end_field(prob, w, depth)  # noqa: E731
    J0 = np.asarray(jax.jacfwd(f)(jnp.zeros((3, 3))))
    assert np.all(np.isfinite(J0))
    if depth >= 3:
        # the preconditioned term is O(||W||^(2-2/N)) with 2 - 2/N > 1: its Jacobian at 0 vanishes
        np.testing.assert_allclose(J0, 0.0, atol=1e-14)
    J1 = np.asarray(jax.jacfwd(f)(jnp.eye(3)))
    assert np.all(np.isfinite(J1))
    E = np.random.default_rng(0).standard_normal((3, 3))
    fd = _fd_jvp(f, np.eye(3), E)
    np.testing.assert_allclose(np.einsum("ijkl,kl->ij", J1, E), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("shape", [(2, 3), (3, 3), (1, 4)])
def test_claim1_preconditioner(depth, shape, rng):
    W = rng.standard_normal(shape)
    P = np.asarray(linalg.preconditioner(W, depth))
    # independent construction with scipy's fractional powers (column-major vec)
    k, d = shape
    R = lambda e: np.eye(d) if e == 0 else numpy_power(W.T @ W, e)  # noqa: E731
    L = lambda e: np.eye(k) if e == 0 else numpy_power(W @ W.T, e)  # noqa: E731
    P_ref = sum(np.kron(R((depth - j) / depth), L((j - 1) / depth)) for j in range(1, depth + 1))
    np.testing.assert_allclose(P, P_ref, atol=1e-10)
    np.testing.assert_allclose(np.linalg.eigvalsh(P), linalg.preconditioner_eigenvalues(W, depth), rtol=1e-9,
                               atol=1e-10)
    assert np.linalg.eigvalsh(P).min() > -1e-10  # PSD
    # vec(dW_e/dt) = -P_W vec(grad) without weight decay
    prob = problems.Problem(rng.standard_normal((10, d)), rng.standard_normal((10, k)))
    g = np.asarray(prob.grad(W))
    field = np.asarray(linflow.fields.end_to_end_field(prob, jnp.asarray(W), depth))
    np.testing.assert_allclose(field.ravel(order="F"), -P @ g.ravel(order="F"), rtol=1e-10, atol=1e-12)
    # applied without forming P_W: the same vector, for any G
    G = rng.standard_normal(shape)
    applied = np.asarray(linalg.apply_preconditioner(jnp.asarray(W), jnp.asarray(G), depth))
    np.testing.assert_allclose(applied.ravel(order="F"), P_ref @ G.ravel(order="F"), rtol=1e-10, atol=1e-12)


def test_preconditioner_eigenvalues_closed_form_for_a_scalar():
    # k = d = 1: P = N sigma^(2(N-1)/N)
    np.testing.assert_allclose(linalg.preconditioner_eigenvalues(np.array([[2.0]]), 3), [3 * 2.0 ** (4 / 3)])
