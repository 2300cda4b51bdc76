r"""Matrix sensing and matrix completion: losses of the end-to-end matrix beyond regression (docs/math.md section 9).

Matrix sensing observes ``m`` linear measurements ``y_i = <A_i, W*>`` of a ``(k, d)`` matrix ``W*``:

$$
L^1(W) = \frac1m \sum_i \frac1p |\langle A_i, W\rangle - y_i|^p .
$$

Matrix completion observes ``m`` entries ``(r_i, c_i)`` of ``W*`` (a mask ``Omega``):

$$
L^1(W) = \frac{kd}{m} \sum_{(r, c) \in \Omega} \frac1p |W_{rc} - W^*_{rc}|^p ,
$$

its gradient a scatter onto the observed entries (never a dense operator). The factor ``kd / m`` makes both losses
``(1/p) ||W - W*||_p^p`` in expectation (Gaussian ``A_i`` with unit-variance entries; a uniformly random mask), and
the completion loss exactly that when every entry is observed: then the l2 dynamics are those of whitened
regression, whose solutions are in closed form (docs/math.md section 4).

The generators draw low-rank targets with chosen singular values (:func:`low_rank_target`), Gaussian measurements
(:func:`sensing`) and uniformly random masks (:func:`random_mask`, :func:`completion`), each from a seed.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import checks as _checks
from .problems import AbstractProblem, loss_options, lp_derivative, lp_loss, orthonormal

__all__ = ["SensingProblem", "CompletionProblem", "low_rank_target", "random_mask", "sensing", "completion"]


def _target(value, shape) -> jax.Array | None:
    if value is None:
        return None
    value = _checks.finite_matrix("target", value, ndim=2)
    if value.shape != shape:
        raise ValueError(f"target must have shape (k, d) = {shape}, got {value.shape}")
    return jnp.asarray(value)


class SensingProblem(AbstractProblem):
    """Matrix sensing: ``L1(W) = (1/m) sum_i (1/p) |<A_i, W> - y_i|^p`` (module docstring).

    Args:
        A: the measurement matrices, shape ``(m, k, d)``.
        y: the measurements, shape ``(m,)``.
        p: exponent of the loss, ``p >= 1``.
        weight_decay: ``lambda >= 0`` on the layers (not part of :meth:`loss`).
        target: the matrix measured (``(k, d)``; optional): what aligned starts and recovery errors refer to.

    Examples:
        >>> import numpy as np
        >>> prob = SensingProblem(np.eye(2)[None], np.array([3.0]))  # one measurement: the trace
        >>> float(prob.loss(np.eye(2)))  # (1/2) (2 - 3)^2
        0.5
    """

    A: jax.Array
    y: jax.Array
    weight_decay: jax.Array
    target_matrix: jax.Array | None
    p: float = eqx.field(static=True)

    def __init__(self, A, y, p: float = 2.0, weight_decay: float = 0.0, target=None):
        A = _checks.finite_matrix("A", A, ndim=3)
        y = _checks.finite_matrix("y", y, ndim=1)
        if y.shape[0] != A.shape[0]:
            raise ValueError(f"A and y must hold the same number m of measurements; got A {A.shape} and y {y.shape}")
        self.A, self.y = jnp.asarray(A), jnp.asarray(y)
        self.p, self.weight_decay = loss_options(p, weight_decay)
        self.target_matrix = _target(target, A.shape[1:])

    @property
    def m(self) -> int:
        return self.A.shape[0]

    @property
    def k(self) -> int:
        return self.A.shape[1]

    @property
    def d(self) -> int:
        return self.A.shape[2]

    @property
    def target(self) -> jax.Array | None:
        return self.target_matrix

    def residuals(self, W: jax.Array) -> jax.Array:
        """``r_i = <A_i, W> - y_i``, shape ``(m,)``."""
        self._check_shape(W)
        return jnp.einsum("ikd,kd->i", self.A, jnp.asarray(W)) - self.y

    def loss(self, W: jax.Array) -> jax.Array:
        """``(1/m) sum_i (1/p) |r_i|^p``."""
        return lp_loss(self.residuals(W), self.p) / self.m

    def grad(self, W: jax.Array) -> jax.Array:
        """``(1/m) sum_i sign(r_i) |r_i|^(p-1) A_i``."""
        return jnp.einsum("i,ikd->kd", lp_derivative(self.residuals(W), self.p), self.A) / self.m


class CompletionProblem(AbstractProblem):
    """Matrix completion: ``L1(W) = (kd/m) sum_{(r, c) in Omega} (1/p) |W_rc - v_rc|^p`` (module docstring).

    Args:
        rows: the observed entries' row indices, shape ``(m,)``.
        cols: their column indices, shape ``(m,)`` (the pairs distinct).
        values: the observed values, shape ``(m,)``.
        shape: ``(k, d)``, the shape of ``W``.
        p: exponent of the loss, ``p >= 1``.
        weight_decay: ``lambda >= 0`` on the layers (not part of :meth:`loss`).
        target: the matrix observed (``(k, d)``; optional).

    The gradient scatters ``(kd/m) sign(r) |r|^(p-1)`` onto the observed entries; nothing of size ``m x kd`` is
    formed.

    Examples:
        >>> import numpy as np
        >>> prob = CompletionProblem([0, 1], [0, 1], [1.0, 2.0], shape=(2, 2))  # the diagonal observed
        >>> float(prob.loss(np.zeros((2, 2))))  # (4 / 2) (1/2) (1 + 4)
        5.0
    """

    rows: jax.Array
    cols: jax.Array
    values: jax.Array
    weight_decay: jax.Array
    target_matrix: jax.Array | None
    shape: tuple[int, int] = eqx.field(static=True)
    p: float = eqx.field(static=True)

    def __init__(self, rows, cols, values, shape, p: float = 2.0, weight_decay: float = 0.0, target=None):
        if len(tuple(shape)) != 2 or any(isinstance(n, bool) or int(n) != n or n < 1 for n in shape):
            raise ValueError(f"shape must be (k, d) with positive integers, got {shape!r}")
        k, d = (int(n) for n in shape)
        rows, cols = np.asarray(rows), np.asarray(cols)
        values = _checks.finite_matrix("values", values, ndim=1)
        for name, idx, size in (("rows", rows, k), ("cols", cols, d)):
            if idx.ndim != 1 or idx.shape != values.shape or not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"{name} must be integers of shape {values.shape} (one per observed value), got "
                                 f"{idx.dtype} of shape {idx.shape}")
            if idx.size and (idx.min() < 0 or idx.max() >= size):
                raise ValueError(f"{name} must lie in [0, {size}), got values in [{idx.min()}, {idx.max()}]")
        if values.size == 0:
            raise ValueError("a completion problem needs at least one observed entry")
        if len(set(zip(rows.tolist(), cols.tolist()))) != values.size:
            raise ValueError("rows, cols must name distinct entries (an entry observed twice)")
        self.rows, self.cols, self.values = jnp.asarray(rows), jnp.asarray(cols), jnp.asarray(values)
        self.shape = (k, d)
        self.p, self.weight_decay = loss_options(p, weight_decay)
        self.target_matrix = _target(target, (k, d))

    @property
    def m(self) -> int:
        return self.values.shape[0]

    @property
    def k(self) -> int:
        return self.shape[0]

    @property
    def d(self) -> int:
        return self.shape[1]

    @property
    def target(self) -> jax.Array | None:
        return self.target_matrix

    @property
    def whitened_target(self) -> np.ndarray | None:
        """The observed matrix when ``p = 2`` and every entry is observed (then ``L1(W) = (1/2) ||W - W*||_F^2``)."""
        if self.p != 2.0 or self.m != self.k * self.d:
            return None
        out = np.zeros(self.shape)
        out[np.asarray(self.rows), np.asarray(self.cols)] = np.asarray(self.values)
        return out

    @property
    def mask(self) -> np.ndarray:
        """The observed entries as a boolean ``(k, d)`` matrix."""
        out = np.zeros(self.shape, bool)
        out[np.asarray(self.rows), np.asarray(self.cols)] = True
        return out

    def residuals(self, W: jax.Array) -> jax.Array:
        """``W_rc - v_rc`` at the observed entries, shape ``(m,)``."""
        self._check_shape(W)
        return jnp.asarray(W)[self.rows, self.cols] - self.values

    def loss(self, W: jax.Array) -> jax.Array:
        """``(kd/m) sum_Omega (1/p) |W_rc - v_rc|^p``."""
        return lp_loss(self.residuals(W), self.p) * (self.k * self.d / self.m)

    def grad(self, W: jax.Array) -> jax.Array:
        """``(kd/m) sign(r) |r|^(p-1)`` scattered onto the observed entries, zero elsewhere."""
        s = lp_derivative(self.residuals(W), self.p) * (self.k * self.d / self.m)
        return jnp.zeros(self.shape, s.dtype).at[self.rows, self.cols].add(s)


def low_rank_target(singular_values, d: int, k: int | None = None, *, seed: int = 0) -> np.ndarray:
    """``W* = U diag(s) V^T`` of shape ``(k, d)`` (``k`` defaults to ``d``) with random orthonormal ``U``, ``V``.

    Examples:
        >>> W = low_rank_target([3.0, 1.0], 4, seed=1)
        >>> np.round(np.linalg.svd(W, compute_uv=False), 12).tolist()
        [3.0, 1.0, 0.0, 0.0]
    """
    s = _checks.finite_matrix("singular_values", np.atleast_1d(singular_values), ndim=1)
    if np.any(s < 0):
        raise ValueError(f"singular_values must be >= 0, got {s}")
    d = _checks.integer("d", d, minimum=1)
    k = d if k is None else _checks.integer("k", k, minimum=1)
    if len(s) > min(k, d):
        raise ValueError(f"singular_values has {len(s)} entries but a (k, d) = ({k}, {d}) matrix has at most {min(k, d)}")
    rng = np.random.default_rng(seed)
    return (orthonormal(rng, k, len(s)) * s) @ orthonormal(rng, d, len(s)).T


def random_mask(k: int, d: int, m: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of ``m`` distinct entries of a ``(k, d)`` matrix, drawn uniformly without replacement."""
    k, d = _checks.integer("k", k, minimum=1), _checks.integer("d", d, minimum=1)
    m = _checks.integer("m", m, minimum=1)
    if m > k * d:
        raise ValueError(f"m must be <= k * d = {k * d} (the number of entries), got {m}")
    flat = np.sort(np.random.default_rng(seed).choice(k * d, size=m, replace=False))
    return flat // d, flat % d


def sensing(singular_values, d: int, m: int, k: int | None = None, *, p: float = 2.0, weight_decay: float = 0.0,
            seed: int = 0) -> SensingProblem:
    """Gaussian matrix sensing of a low-rank target: ``A_i`` with independent ``N(0, 1)`` entries, ``y_i = <A_i, W*>``,
    ``W* =`` :func:`low_rank_target` ``(singular_values, d, k)``.

    Examples:
        >>> prob = sensing([2.0, 1.0], d=3, m=40)
        >>> (prob.m, prob.k, prob.d), round(float(prob.loss(prob.target)), 12)
        ((40, 3, 3), 0.0)
    """
    W = low_rank_target(singular_values, d, k, seed=seed)
    m = _checks.integer("m", m, minimum=1)
    A = np.random.default_rng([seed, 1]).standard_normal((m, *W.shape))
    return SensingProblem(A, np.einsum("ikd,kd->i", A, W), p=p, weight_decay=weight_decay, target=W)


def completion(singular_values, d: int, m: int, k: int | None = None, *, p: float = 2.0, weight_decay: float = 0.0,
               seed: int = 0) -> CompletionProblem:
    """Completion of a low-rank target from ``m`` uniformly random entries: ``W* =`` :func:`low_rank_target`
    ``(singular_values, d, k)``, the mask :func:`random_mask` (``m = k d``: every entry).

    Examples:
        >>> prob = completion([2.0, 1.0], d=4, m=10)
        >>> int(prob.mask.sum()), float(prob.loss(prob.target))
        (10, 0.0)
    """
    W = low_rank_target(singular_values, d, k, seed=seed)
    rows, cols = random_mask(*W.shape, m, seed=seed + 1)
    return CompletionProblem(rows, cols, W[rows, cols], W.shape, p=p, weight_decay=weight_decay, target=W)
