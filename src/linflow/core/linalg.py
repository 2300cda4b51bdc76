r"""Fractional powers of PSD matrices with an exact derivative, and the end-to-end preconditioner.

``[A]^q`` for symmetric PSD ``A`` and ``q >= 0`` is ``Q diag(lambda^q) Q^T`` from ``eigh``, with
eigenvalues below the noise floor ``n * eps * lambda_max`` treated as zero and ``[A]^0 = I`` exactly
(docs/math.md section 3). ``eigh``'s own derivative is NaN at repeated eigenvalues (``W_e = 0``,
``W_e ~ I``), so the powers carry a custom JVP, the Daleckii-Krein formula

$$
d[A]^q = Q \left(\Gamma \circ (Q^T dA\, Q)\right) Q^T,\qquad
\Gamma_{ab} = \frac{\lambda_a^q - \lambda_b^q}{\lambda_a - \lambda_b}\ (\to q\lambda^{q-1}),
$$

evaluated in a cancellation-free form; where both eigenvalues are zero (the derivative is
unbounded for ``q < 1``) ``Gamma`` is set to 0 (1 for ``q = 1``). For ``A = W^T W`` that block of
``Q^T dA Q`` vanishes, so the convention never changes a derivative of the end-to-end field.

The end-to-end preconditioner takes its powers of ``W W^T`` and ``W^T W`` from one SVD of ``W`` itself
(:func:`gram_powers`): an ``eigh`` of ``W W^T`` squares the condition number, and a singular value below
``sqrt(eps) s_max`` (1e-8 of the largest) lost its relative accuracy, or was set to zero and never grew.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["psd_power", "psd_powers", "gram_powers", "apply_preconditioner", "preconditioner",
           "preconditioner_eigenvalues", "matrix_root", "root_power", "root_preconditioned", "effective_rank",
           "numerical_rank"]


def _eig(A: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Eigen-decomposition of sym(A) with noise-level eigenvalues clipped to exactly 0."""
    A = 0.5 * (A + A.T)
    lam, Q = jnp.linalg.eigh(A)
    floor = A.shape[-1] * jnp.finfo(A.dtype).eps * jnp.max(jnp.abs(lam))
    return jnp.where(lam > floor, lam, 0.0), Q


def _pow(lam: jax.Array, q: float) -> jax.Array:
    return jnp.ones_like(lam) if q == 0 else jnp.where(lam > 0, jnp.where(lam > 0, lam, 1.0) ** q, 0.0)


def _divided_difference(lam: jax.Array, q: float) -> jax.Array:
    """``Gamma_ab = (a^q - b^q) / (a - b)`` for eigenvalues ``a, b >= 0``, limit ``q a^(q-1)`` at ``a = b``."""
    a, b = lam[:, None], lam[None, :]
    both = (a > 0) & (b > 0)
    sa, sb = jnp.where(both, a, 1.0), jnp.where(both, b, 1.0)
    x = jnp.log(sa) - jnp.log(sb)
    xs = jnp.where(x == 0, 1.0, x)
    # b^(q-1) * (e^(q x) - 1) / (e^x - 1), exact also when a and b nearly coincide
    ratio = jnp.where(x == 0, q, jnp.expm1(q * xs) / jnp.expm1(xs))
    g_pos = sb ** (q - 1.0) * ratio
    # one eigenvalue zero: no cancellation, the plain quotient is exact
    diff = a - b
    g_one = (_pow(a, q) - _pow(b, q)) / jnp.where(diff == 0, 1.0, diff)
    g_zero = jnp.full_like(g_pos, 1.0 if q == 1 else 0.0)
    return jnp.where(both, g_pos, jnp.where(diff == 0, g_zero, g_one))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def psd_powers(A: jax.Array, exponents: tuple[float, ...]) -> jax.Array:
    """Stack of ``[A]^q`` for each ``q`` in ``exponents`` (one ``eigh``), shape ``(len(exponents), n, n)``."""
    lam, Q = _eig(A)
    return _powers_of(lam, Q, exponents, jnp.eye(A.shape[-1], dtype=A.dtype))


@psd_powers.defjvp
def _psd_powers_jvp(exponents, primals, tangents):
    (A,), (dA,) = primals, tangents
    lam, Q = _eig(A)
    dAt = Q.T @ (0.5 * (dA + dA.T)) @ Q
    return (_powers_of(lam, Q, exponents, jnp.eye(A.shape[-1], dtype=A.dtype)),
            _dpowers_of(lam, Q, exponents, dAt))


def psd_power(A: jax.Array, q: float) -> jax.Array:
    """``[A]^q`` for symmetric PSD ``A`` and a static ``q >= 0`` (``[A]^0 = I`` exactly).

    Examples:
        >>> import numpy as np
        >>> np.asarray(psd_power(np.diag([4.0, 9.0]), 0.5)).tolist()
        [[2.0, 0.0], [0.0, 3.0]]
    """
    if q < 0:
        raise ValueError(f"q must be >= 0, got {q}")
    return psd_powers(A, (float(q),))[0]


def _gram_eig(W: jax.Array, rank: int | None = None):
    """Eigenpairs of ``W W^T`` and ``W^T W`` from one SVD of ``W``: ``(lam_left (k,), U, lam_right (d,), V)``.

    The eigenvalues are the squared singular values (padded with zeros), singular values below the noise
    floor ``max(k, d) * eps * s_max`` set to exactly 0, and so are those beyond ``rank`` when it is given (the rank
    ``W`` has in exact arithmetic: its further singular values are rounding). Small singular values keep their
    relative accuracy: an ``eigh`` of ``W W^T`` itself loses every eigenvalue below ``eps * s_max^2`` (the condition
    number is squared), so a mode of ``W_e`` 1e-10 of the largest would never grow (docs/math.md section 3)."""
    k, d = W.shape
    U, s, Vt = jnp.linalg.svd(W, full_matrices=True)
    floor = max(k, d) * jnp.finfo(W.dtype).eps * jnp.max(s)
    kept = s > floor
    if rank is not None:
        kept = kept & (jnp.arange(s.shape[0]) < rank)
    lam = jnp.where(kept, s, 0.0) ** 2
    r = s.shape[0]
    lam_left = jnp.zeros(k, W.dtype).at[:r].set(lam)
    lam_right = jnp.zeros(d, W.dtype).at[:r].set(lam)
    return lam_left, U, lam_right, Vt.T


def _powers_of(lam, Q, exponents, eye):
    """``[A]^q = Q diag(lam^q) Q^T`` for each ``q`` (``eye`` for ``q = 0``), stacked."""
    return jnp.stack([eye if q == 0 else (Q * _pow(lam, q)) @ Q.T for q in exponents])


def _dpowers_of(lam, Q, exponents, dAt):
    """Their derivatives (Daleckii-Krein) for ``dAt = Q^T dA Q``: ``Q (Gamma_q o dAt) Q^T`` (0 for ``q = 0``)."""
    return jnp.stack([jnp.zeros_like(dAt) if q == 0 else Q @ (_divided_difference(lam, q) * dAt) @ Q.T
                      for q in exponents])


def _gram_tangents(W, dW, U, V):
    """``d(W W^T)`` in the basis ``U`` and ``d(W^T W)`` in the basis ``V`` for a tangent ``dW``."""
    return U.T @ (dW @ W.T + W @ dW.T) @ U, V.T @ (dW.T @ W + W.T @ dW) @ V


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def gram_powers(W: jax.Array, left: tuple[float, ...], right: tuple[float, ...]) -> tuple[jax.Array, jax.Array]:
    """``([W W^T]^q for q in left, [W^T W]^q for q in right)`` from one SVD of ``W`` (see :func:`_gram_eig`): the
    powers the end-to-end preconditioner needs, accurate for singular values down to ``eps * s_max``, with the
    Daleckii-Krein derivative of :func:`psd_powers` (``dA = dW W^T + W dW^T`` on the left, ``dW^T W + W^T dW`` on
    the right)."""
    return _gram_powers_at(_gram_eig(W), left, right)


def _gram_powers_at(eig, left, right):
    lam_l, U, lam_r, V = eig
    return (_powers_of(lam_l, U, left, jnp.eye(U.shape[0], dtype=U.dtype)),
            _powers_of(lam_r, V, right, jnp.eye(V.shape[0], dtype=V.dtype)))


@gram_powers.defjvp
def _gram_powers_jvp(left, right, primals, tangents):
    (W,), (dW,) = primals, tangents
    eig = lam_l, U, lam_r, V = _gram_eig(W)
    d_left, d_right = _gram_tangents(W, dW, U, V)
    return _gram_powers_at(eig, left, right), (_dpowers_of(lam_l, U, left, d_left), _dpowers_of(lam_r, V, right, d_right))


def _factors(W: jax.Array, depth: int):
    """``([W W^T]^((j-1)/N), [W^T W]^((N-j)/N))`` for ``j = 1 .. N``, from one SVD of ``W`` (:func:`gram_powers`)."""
    N = depth
    return gram_powers(W, tuple((j - 1) / N for j in range(1, N + 1)), tuple((N - j) / N for j in range(1, N + 1)))


def apply_preconditioner(W: jax.Array, G: jax.Array, depth: int, rank: int | None = None) -> jax.Array:
    """``P_W(G) = sum_{j=1}^N [W W^T]^((j-1)/N) G [W^T W]^((N-j)/N)`` (ACH18 Theorem 1), without forming ``P_W``.

    The end-to-end field is ``-lambda N W - P_W(dL1/dW(W))``; ``depth = 1`` gives ``G``. Computed in the singular
    basis of ``W = U S V^T``: ``P_W(G) = U (C o (U^T G V)) V^T`` with ``C_ab = sum_j s_a^(2(j-1)/N) s_b^(2(N-j)/N)``
    (Claim 1's eigenvalues), so a weak mode of ``W_e`` keeps its relative accuracy beside strong ones (dense powers
    of ``W W^T`` would bury it under the rounding of the strong modes). Derivative: Daleckii-Krein, in the same
    basis.

    ``rank``: the rank ``W`` has in exact arithmetic, when known; its singular values beyond ``rank`` are taken as
    exactly 0. The end-to-end flow keeps the rank of its start (``N >= 2``: ``C_ab = 0`` where both singular values
    are 0), so a spurious singular value grown from rounding (1e-13 beside 0.3, say) must not be preconditioned:
    its fractional powers ``s^(2/N)`` are not Lipschitz at 0 and cost both accuracy and steps (docs/math.md
    section 3).

    Examples:
        >>> import numpy as np
        >>> W, G = np.array([[2.0]]), np.array([[1.0]])
        >>> float(apply_preconditioner(W, G, 2)[0, 0])  # N |W|^(2 - 2/N) G = 2 * 2
        4.0
    """
    if depth == 1:
        return G
    return _preconditioned(W, G, depth, rank)


def numerical_rank(W) -> int:
    """The rank of a concrete matrix: its singular values above ``max(k, d) * eps * s_max`` (NumPy's rule)."""
    s = np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False)
    return int(np.sum(s > max(np.shape(W)) * np.finfo(np.float64).eps * (s.max() if s.size else 0.0)))


def _weights(lam_l, lam_r, depth: int):
    """``C_ab = sum_j lam_l[a]^((j-1)/N) lam_r[b]^((N-j)/N)`` and its terms' exponents."""
    N = depth
    pairs = [((j - 1) / N, (N - j) / N) for j in range(1, N + 1)]
    return sum(_pow(lam_l, q)[:, None] * _pow(lam_r, p)[None, :] for q, p in pairs), pairs


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _preconditioned(W, G, depth: int, rank: int | None):
    lam_l, U, lam_r, V = _gram_eig(W, rank)
    C, _ = _weights(lam_l, lam_r, depth)
    return U @ (C * (U.T @ G @ V)) @ V.T


@_preconditioned.defjvp
def _preconditioned_jvp(depth, rank, primals, tangents):
    (W, G), (dW, dG) = primals, tangents
    lam_l, U, lam_r, V = _gram_eig(W, rank)
    C, pairs = _weights(lam_l, lam_r, depth)
    Gt, dGt = U.T @ G @ V, U.T @ dG @ V
    dL, dR = _gram_tangents(W, dW, U, V)  # d(W W^T), d(W^T W) in the left and right singular bases
    dP = C * dGt
    for q, p in pairs:  # d([A]^q) = Gamma_q o dA in the eigenbasis (zero for q = 0)
        if q:
            dP = dP + (_divided_difference(lam_l, q) * dL) @ (Gt * _pow(lam_r, p)[None, :])
        if p:
            dP = dP + (_pow(lam_l, q)[:, None] * Gt) @ (_divided_difference(lam_r, p) * dR)
    return U @ (C * Gt) @ V.T, U @ dP @ V.T


def matrix_root(W, depth: int):
    """``Theta = U diag(s^(1/N)) V^T`` for ``W = U diag(s) V^T``: the root state of the end-to-end flow (NumPy).

    ``W = Theta (Theta^T Theta)^((N-1)/2)`` (:func:`root_power`); a balanced network's layers have singular values
    ``s^(1/N)``, and so does ``Theta``: a weak mode ``s = 1e-10`` is stored as ``1e-10^(1/N)``, with the relative
    accuracy the layer flow has (docs/math.md section 10)."""
    U, s, Vt = np.linalg.svd(np.asarray(W, dtype=np.float64), full_matrices=False)
    return (U * s ** (1.0 / depth)) @ Vt


def root_power(Theta: jax.Array, depth: int) -> jax.Array:
    """``W_e = U diag(theta^N) V^T`` for ``Theta = U diag(theta) V^T`` (inverse of :func:`matrix_root`)."""
    if depth == 1:
        return Theta
    U, th, Vt = jnp.linalg.svd(Theta, full_matrices=False)
    return (U * th**depth) @ Vt


def root_preconditioned(Theta: jax.Array, G: jax.Array, depth: int) -> jax.Array:
    """The velocity of the root state ``Theta`` that moves ``W_e = root_power(Theta)`` by ``P_{W_e}(G)``.

    In the singular basis of ``Theta = U diag(theta) V^T`` (``theta`` padded with zeros), with ``Ghat = U^T G V``:
    ``P`` is ``C o Ghat``, ``C_ab = sum_j theta_a^(2(j-1)) theta_b^(2(N-j))``, and the derivative of ``theta -> theta^N``
    acts on the symmetric part by ``f_s = (theta_a^N - theta_b^N) / (theta_a - theta_b)`` and on the antisymmetric part
    by ``f_a = (theta_a^N + theta_b^N) / (theta_a + theta_b)``, so the velocity is
    ``U ((C / f_s) o sym(Ghat) + (C / f_a) o skew(Ghat)) V^T`` (outside the square block ``f_s = f_a``). Every ratio is
    a quotient of sums of positive terms: no cancellation, whatever the spread of ``theta``. Derivatives: autodiff
    through the SVD (explicit solvers; the dense state has the custom derivative that implicit solvers need)."""
    N = depth
    if N == 1:
        return G
    k, d = Theta.shape
    U, th, Vt = jnp.linalg.svd(Theta, full_matrices=True)
    r = th.shape[0]
    a = jnp.zeros(k, Theta.dtype).at[:r].set(th)[:, None]
    b = jnp.zeros(d, Theta.dtype).at[:r].set(th)[None, :]
    C = sum(a ** (2 * (j - 1)) * b ** (2 * (N - j)) for j in range(1, N + 1))
    f_s = sum(a**c * b ** (N - 1 - c) for c in range(N))
    plus = a + b
    f_a = (a**N + b**N) / jnp.where(plus > 0, plus, 1.0)
    ratio_s = jnp.where(f_s > 0, C / jnp.where(f_s > 0, f_s, 1.0), 0.0)
    ratio_a = jnp.where(f_a > 0, C / jnp.where(f_a > 0, f_a, 1.0), 0.0)
    Gh = U.T @ G @ Vt.T
    B = ratio_s * Gh
    S = Gh[:r, :r]
    B = B.at[:r, :r].set(ratio_s[:r, :r] * (S + S.T) / 2 + ratio_a[:r, :r] * (S - S.T) / 2)
    return U @ B @ Vt


def effective_rank(W: jax.Array) -> jax.Array:
    """Roy & Vetterli's (2007) effective rank ``exp(-sum_i p_i log p_i)``, ``p_i = sigma_i / sum_j sigma_j`` (``0 log 0
    = 0``): 1 for a rank-one matrix, ``r`` for ``r`` equal singular values, in between otherwise; 0 for ``W = 0``.
    Batch axes allowed.

    Examples:
        >>> import numpy as np
        >>> round(float(effective_rank(np.diag([2.0, 2.0, 0.0]))), 12)
        2.0
    """
    s = jnp.linalg.svd(jnp.asarray(W), compute_uv=False)
    total = jnp.sum(s, axis=-1, keepdims=True)
    p = s / jnp.where(total > 0, total, 1.0)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return jnp.where(total[..., 0] > 0, jnp.exp(entropy), 0.0)


def preconditioner(W: jax.Array, depth: int) -> jax.Array:
    """Explicit ``P_W = sum_j [W^T W]^((N-j)/N) kron [W W^T]^((j-1)/N)`` (ACH18 Claim 1), shape ``(kd, kd)``.

    ``vec`` is column-major: ``vec(dW_e/dt) = -P_W vec(dL1/dW)`` without weight decay. Dense: for
    checks and pictures only (the fields never form it).
    """
    left, right = _factors(W, depth)
    return sum(jnp.kron(right[j], left[j]) for j in range(depth))


def preconditioner_eigenvalues(W, depth: int) -> np.ndarray:
    """Eigenvalues of ``P_W`` from the singular values (Claim 1), sorted ascending (NumPy).

    ``sum_j mu_r^((N-j)/N) nu_r'^((j-1)/N)`` over the ``d`` eigenvalues ``mu`` of ``W^T W`` and the
    ``k`` eigenvalues ``nu`` of ``W W^T`` (squared singular values padded with zeros; ``0^0 = 1``).

    Examples:
        >>> import numpy as np
        >>> preconditioner_eigenvalues(np.array([[2.0]]), depth=2).tolist()  # N sigma^(2(N-1)/N) = 2 * 2
        [4.0]
    """
    W = np.asarray(W, dtype=np.float64)
    k, d = W.shape
    sig2 = np.linalg.svd(W, compute_uv=False) ** 2
    mu = np.zeros(d)
    nu = np.zeros(k)
    mu[: len(sig2)] = sig2
    nu[: len(sig2)] = sig2
    N = depth
    vals = sum(mu[:, None] ** ((N - j) / N) * nu[None, :] ** ((j - 1) / N) for j in range(1, N + 1))
    return np.sort(np.ravel(vals))
