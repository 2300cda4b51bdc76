r"""Layer initializations, the end-to-end matrix and balancedness.

Layers are a tuple ``(W_1, ..., W_N)`` of jax arrays, $W_j$ of shape $(n_j, n_{j-1})$, described
by ``dims = (d, n_1, ..., n_{N-1}, k)``. The end-to-end matrix is $W_e = W_N \cdots W_1$ and the
balancedness matrices are $D_j = W_{j+1}^\top W_{j+1} - W_j W_j^\top$ (docs/math.md (2.5)).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import checks as _checks
from .problems import Problem, orthonormal

__all__ = [
    "balanced",
    "factorize",
    "near_zero",
    "identity",
    "aligned",
    "end_to_end",
    "balancedness",
    "imbalance",
    "target_svd",
]


def _balanced_factors(U: np.ndarray, s: np.ndarray, V: np.ndarray, widths, rng) -> tuple[jax.Array, ...]:
    """Exactly balanced layers whose product is ``U diag(s) V^T``.

    With ``Q_j`` ``(n_j, r)`` orthonormal: ``W_1 = Q_1 S^(1/N) V^T``, ``W_j = Q_j S^(1/N) Q_{j-1}^T``,
    ``W_N = U S^(1/N) Q_{N-1}^T``, so ``W_{j+1}^T W_{j+1} = Q_j S^(2/N) Q_j^T = W_j W_j^T``.
    ``rng=None`` takes ``Q_j`` as the first ``r`` columns of the identity.
    """
    r = len(s)
    depth = len(widths) + 1
    root = s ** (1.0 / depth)
    qs = [V]
    for n in widths:
        if n < r:
            raise ValueError(f"hidden widths must be >= the rank {r} of the end-to-end matrix, got width {n}")
        qs.append(np.eye(n, r) if rng is None else orthonormal(rng, n, r))
    qs.append(U)
    return tuple(jnp.asarray((qs[j + 1] * root) @ qs[j].T) for j in range(depth))


def balanced(dims, scale: float = 0.1, seed: int = 0, *, rank: int | None = None) -> tuple[jax.Array, ...]:
    """Exactly balanced random layers (``D_j = 0`` to round-off), every layer of spectral norm ``scale``.

    The end-to-end matrix is ``scale^N A / ||A||_2`` projected to its top ``rank`` singular directions,
    with ``A`` a ``(k, d)`` standard Gaussian matrix; ``rank`` defaults to ``min(dims)``, and hidden
    widths must be at least ``rank``.

    Examples:
        >>> layers = balanced((4, 3, 3, 2), scale=0.5, seed=0)
        >>> float(imbalance(layers)) < 1e-14
        True
    """
    dims = _checks.dims(dims)
    scale = _checks.real_scalar("scale", scale, minimum=0.0)
    rank = min(dims) if rank is None else _checks.integer("rank", rank, minimum=1)
    if rank > min(dims[0], dims[-1]):
        raise ValueError(f"rank must be <= min(d, k) = {min(dims[0], dims[-1])}, got {rank}")
    rng = np.random.default_rng(seed)
    U, S, Vt = np.linalg.svd(rng.standard_normal((dims[-1], dims[0])), full_matrices=False)
    s = scale ** (len(dims) - 1) * S[:rank] / S[0]
    return _balanced_factors(U[:, :rank], s, Vt[:rank].T, dims[1:-1], rng)


def near_zero(dims, std: float = 1e-2, seed: int = 0) -> tuple[jax.Array, ...]:
    """Independent ``N(0, std^2)`` entries in every layer (near-zero initialization; not balanced).

    Examples:
        >>> [w.shape for w in near_zero((4, 3, 2), std=0.01)]
        [(3, 4), (2, 3)]
    """
    dims = _checks.dims(dims)
    std = _checks.real_scalar("std", std, minimum=0.0)
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(std * rng.standard_normal((dims[j + 1], dims[j]))) for j in range(len(dims) - 1))


def identity(dims, std: float = 0.0, seed: int = 0) -> tuple[jax.Array, ...]:
    """Linear residual start: ``W_j = I`` (rectangular ``eye(n_j, n_{j-1})``) plus ``N(0, std^2)`` noise.

    Examples:
        >>> identity((2, 2, 2))[0].tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    dims = _checks.dims(dims)
    std = _checks.real_scalar("std", std, minimum=0.0)
    rng = np.random.default_rng(seed)
    return tuple(
        jnp.asarray(np.eye(dims[j + 1], dims[j]) + std * rng.standard_normal((dims[j + 1], dims[j])))
        for j in range(len(dims) - 1)
    )


def target_svd(problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``Phi = U diag(s) V^T`` of the problem's target (``Phi = Y^T X / m`` for regression, ``W*`` for sensing
    and completion; NumPy, deterministic)."""
    if problem.target is None:
        raise ValueError(f"an aligned start needs a target matrix; this {type(problem).__name__} has none "
                         "(build it with target=W*)")
    U, s, Vt = np.linalg.svd(np.asarray(problem.target), full_matrices=False)
    return U, s, Vt.T


def aligned(problem: Problem, depth: int, sigma0, *, widths=None, seed: int | None = None) -> tuple[jax.Array, ...]:
    """Balanced layers aligned with the target: ``W_e(0) = U diag(sigma0) V^T`` where ``Phi = U S V^T``.

    The setting of the exact solutions (docs/math.md section 4, with whitened data): each singular
    value of ``W_e`` then moves alone. ``sigma0`` is a scalar or one value per singular value of
    ``Phi`` (``min(k, d)`` of them). ``widths`` (``depth - 1`` hidden widths) default to ``max(d, k)``;
    ``seed`` picks random orthonormal hidden bases (``None``: coordinate bases).

    Examples:
        >>> from linflow import problems
        >>> layers = aligned(problems.whitened([2.0, 1.0]), depth=3, sigma0=0.1)
        >>> float(imbalance(layers)) < 1e-15
        True
    """
    if isinstance(depth, (tuple, list)):
        dims = _checks.dims(depth)
        if (dims[0], dims[-1]) != (problem.d, problem.k):
            raise ValueError(f"dims {dims} must start with d = {problem.d} and end with k = {problem.k}")
        if widths is not None and tuple(widths) != dims[1:-1]:
            raise ValueError(f"widths {tuple(widths)} disagree with dims {dims}")
        depth, widths = len(dims) - 1, dims[1:-1]
    depth = _checks.integer("depth", depth, minimum=1)
    U, s, V = target_svd(problem)
    r = len(s)
    sig = np.asarray(sigma0, dtype=np.float64)
    sig = np.broadcast_to(sig, (r,)) if sig.ndim == 0 else sig
    if sig.shape != (r,):
        raise ValueError(f"sigma0 must be a scalar or have shape ({r},), got shape {sig.shape}")
    if np.any(sig < 0) or not np.all(np.isfinite(sig)):
        raise ValueError(f"sigma0 must be finite and >= 0, got {sig}")
    if widths is None:
        widths = (max(problem.d, problem.k),) * (depth - 1)
    widths = tuple(widths)
    if len(widths) != depth - 1:
        raise ValueError(f"widths must hold depth - 1 = {depth - 1} hidden widths, got {widths}")
    _checks.dims((problem.d, *widths, problem.k))
    rng = None if seed is None else np.random.default_rng(seed)
    return _balanced_factors(U, sig, V, widths, rng)


def factorize(W_e, depth: int, *, widths=None, seed: int | None = None) -> tuple[jax.Array, ...]:
    """Exactly balanced layers whose product is ``W_e`` (its thin SVD ``U diag(s) V^T``; each layer has singular
    values ``s^(1/N)``). ``widths`` default to ``max(d, k)``; ``seed`` picks random orthonormal hidden bases
    (``None``: coordinate bases).

    Examples:
        >>> import numpy as np
        >>> W = np.array([[1.0, 2.0], [0.0, 1e-8]])
        >>> layers = factorize(W, 3)
        >>> bool(np.allclose(end_to_end(layers), W, rtol=0, atol=1e-15)), float(imbalance(layers)) < 1e-15
        (True, True)
    """
    W = _checks.finite_matrix("W_e", W_e, ndim=2)
    depth = _checks.integer("depth", depth, minimum=1)
    k, d = W.shape
    widths = (max(d, k),) * (depth - 1) if widths is None else tuple(widths)
    if len(widths) != depth - 1:
        raise ValueError(f"widths must hold depth - 1 = {depth - 1} hidden widths, got {widths}")
    _checks.dims((d, *widths, k))
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    return _balanced_factors(U, s, Vt.T, widths, None if seed is None else np.random.default_rng(seed))


def end_to_end(layers) -> jax.Array:
    """``W_e = W_N W_{N-1} ... W_1``; works on a leading batch (time) axis too.

    Examples:
        >>> end_to_end(identity((2, 2, 2))).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    return functools.reduce(lambda acc, w: w @ acc, layers[1:], layers[0])


def balancedness(layers) -> tuple[jax.Array, ...]:
    """``D_j = W_{j+1}^T W_{j+1} - W_j W_j^T`` for j = 1..N-1 (empty for depth 1); batch axes allowed."""
    tr = lambda a: jnp.swapaxes(a, -1, -2)  # noqa: E731
    return tuple(tr(layers[j + 1]) @ layers[j + 1] - layers[j] @ tr(layers[j]) for j in range(len(layers) - 1))


def imbalance(layers) -> jax.Array:
    """``max_j ||D_j||_F`` (0 for depth 1); batch axes allowed.

    Examples:
        >>> import numpy as np
        >>> float(imbalance((np.array([[1.0]]), np.array([[2.0]]))))  # |2^2 - 1^2|
        3.0
    """
    ds = balancedness(layers)
    if not ds:
        return jnp.zeros(jnp.shape(layers[0])[:-2])
    return functools.reduce(jnp.maximum, (jnp.sqrt(jnp.sum(dj**2, axis=(-2, -1))) for dj in ds))
