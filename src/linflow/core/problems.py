r"""Problems: what every run needs of a loss (:class:`AbstractProblem`), lp regression (:class:`Problem`) and the
built-in regression data sets. Matrix sensing and completion are in :mod:`linflow.core.sensing`.

The loss of a linear map ``W`` (shape ``(k, d)``) on data ``X`` (``(m, d)``), ``Y`` (``(m, k)``) is

$$
L^1(W) = \frac1m \sum_i \frac1p \sum_c |(W x_i - y_i)_c|^p, \qquad p \ge 1,
$$

with gradient $\frac1m \sum_i s_i x_i^\top$, $s_i = \operatorname{sign}(r_i) \lvert r_i \rvert^{p-1}$,
$r_i = W x_i - y_i$ (docs/math.md (1.1)). For ``p = 2`` both are computed from the moments ``X^T X / m``,
``Y^T X / m`` and ``Y^T Y / m``, so their cost does not grow with ``m``.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import checks as _checks

__all__ = ["AbstractProblem", "Problem", "loss_options", "lp_loss", "lp_derivative", "synthetic", "whitened", "two_point"]


def lp_loss(r: jax.Array, p: float) -> jax.Array:
    """``sum_i (1/p) |r_i|^p`` over every entry of the residuals ``r``."""
    return jnp.sum(jnp.abs(r) ** p) / p


def lp_derivative(r: jax.Array, p: float) -> jax.Array:
    """``d/dr (1/p) |r|^p = sign(r) |r|^(p-1)``, entrywise (``r^(p-1)`` for even ``p``: smooth everywhere)."""
    if p == 2.0:
        return r
    if p == 1.0:
        return jnp.sign(r)
    if float(p).is_integer() and int(p) % 2 == 0:
        return r ** int(p - 1)
    return jnp.sign(r) * jnp.abs(r) ** (p - 1.0)


def loss_options(p, weight_decay) -> tuple[float, jax.Array]:
    """``(p, weight_decay)`` checked (``p >= 1``, ``weight_decay >= 0``), the decay as a float64 array (traced)."""
    p = _checks.real_scalar("p", p, minimum=1.0)
    return p, jnp.asarray(_checks.real_scalar("weight_decay", weight_decay, minimum=0.0), dtype=jnp.float64)


class AbstractProblem(eqx.Module):
    """What every run needs of a problem: the data term ``L1(W)`` of the end-to-end matrix ``W`` (shape ``(k, d)``),
    its gradient, the shapes, the loss exponent ``p`` and the weight decay ``lambda`` on the layers.

    Theorem 1 holds for any differentiable ``L1`` of ``W_e``, so the flows, GD, Eq. 10, the central flow and the studies
    take any subclass: :class:`Problem` (lp regression), :class:`~linflow.core.sensing.SensingProblem` and
    :class:`~linflow.core.sensing.CompletionProblem`. ``target`` is the matrix an aligned start takes its singular
    vectors from (``None`` where there is none).
    """

    weight_decay: eqx.AbstractVar[jax.Array]
    p: eqx.AbstractVar[float]

    @property
    @abc.abstractmethod
    def d(self) -> int:
        """Input dimension (columns of ``W``)."""

    @property
    @abc.abstractmethod
    def k(self) -> int:
        """Output dimension (rows of ``W``)."""

    @property
    @abc.abstractmethod
    def m(self) -> int:
        """Number of samples, measurements or observed entries."""

    @property
    def target(self) -> jax.Array | None:
        return None

    @property
    def whitened_target(self) -> np.ndarray | None:
        """``Phi`` where ``L1(W) = (1/2) ||W - Phi||_F^2 + const`` exactly (the setting of the closed-form solutions,
        docs/math.md section 4), else ``None``."""
        return None

    @abc.abstractmethod
    def loss(self, W: jax.Array) -> jax.Array:
        """``L1(W)`` (no weight decay)."""

    @abc.abstractmethod
    def grad(self, W: jax.Array) -> jax.Array:
        """``dL1/dW``, shape ``(k, d)``."""

    def _check_shape(self, W) -> None:
        if np.shape(W) != (self.k, self.d):
            raise ValueError(f"W must have shape (k, d) = ({self.k}, {self.d}), got {np.shape(W)}")


class Problem(AbstractProblem):
    """An lp regression problem ``L1(W)`` with weight decay ``lambda`` on the network's layers.

    Args:
        X: inputs, shape ``(m, d)`` (rows are samples).
        Y: targets, shape ``(m, k)``; a 1-D ``Y`` of length ``m`` means ``k = 1``.
        p: exponent of the loss, any real ``p >= 1`` (2 and 4 in the paper).
        weight_decay: ``lambda >= 0``; the network loss adds ``(lambda / 2) sum_j ||W_j||_F^2``.
            It is not part of :meth:`loss`, which is the data term ``L1`` alone.

    A Problem is a pytree (an equinox Module): the data and ``weight_decay`` are traced arrays, so
    compiled runs are reused when only their values change; ``p`` is static. The moments ``xx``, ``yx``,
    ``yy`` the fields use are computed here, once: to vary the data or ``weight_decay`` under
    ``jax.vmap`` or ``jax.grad``, build the Problem inside the function (``linflow.Problem(X, c * Y)``
    accepts tracers), not ``eqx.tree_at`` on ``X`` or ``Y``, which would leave the moments stale.

    Examples:
        >>> import numpy as np, linflow
        >>> prob = linflow.Problem(np.eye(2), np.array([1.0, 2.0]), p=2)
        >>> float(prob.loss(np.zeros((1, 2))))
        1.25
    """

    X: jax.Array
    Y: jax.Array
    weight_decay: jax.Array
    xx: jax.Array  # X^T X / m
    yx: jax.Array  # Y^T X / m
    yy: jax.Array  # Y^T Y / m
    p: float = eqx.field(static=True)

    def __init__(self, X, Y, p: float = 2.0, weight_decay: float = 0.0):
        X = _checks.finite_matrix("X", X, ndim=2)
        Y = _checks.finite_matrix("Y", Y, ndim=(1, 2))
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X and Y must have the same number of rows (samples); got X {X.shape} and Y {Y.shape}"
            )
        self.p, self.weight_decay = loss_options(p, weight_decay)
        m = X.shape[0]
        self.X = jnp.asarray(X)
        self.Y = jnp.asarray(Y)
        self.xx = jnp.asarray(X.T @ X / m)
        self.yx = jnp.asarray(Y.T @ X / m)
        self.yy = jnp.asarray(Y.T @ Y / m)

    @property
    def m(self) -> int:
        """Number of samples."""
        return self.X.shape[0]

    @property
    def d(self) -> int:
        """Input dimension."""
        return self.X.shape[1]

    @property
    def k(self) -> int:
        """Output dimension."""
        return self.Y.shape[1]

    @property
    def target(self) -> jax.Array:
        """``Phi = Y^T X / m``: the minimizer of the l2 loss when ``X^T X / m = I`` (whitened inputs)."""
        return self.yx

    @property
    def whitened_target(self) -> np.ndarray | None:
        """``Phi = Y^T X / m`` when ``p = 2`` and ``X^T X / m = I`` (to 1e-12), else ``None``."""
        if self.p != 2.0 or not np.allclose(np.asarray(self.xx), np.eye(self.d), rtol=0, atol=1e-12):
            return None
        return np.asarray(self.yx)

    def residuals(self, W: jax.Array) -> jax.Array:
        """``R = X W^T - Y``, shape ``(m, k)``: row i is ``r_i = W x_i - y_i``."""
        self._check_shape(W)
        return self.X @ jnp.asarray(W).T - self.Y

    def loss(self, W: jax.Array) -> jax.Array:
        """``L1(W) = (1/m) sum_i (1/p) sum_c |r_ic|^p`` (no weight decay)."""
        self._check_shape(W)
        W = jnp.asarray(W)
        if self.p == 2.0:
            # (1/2) tr(W Sxx W^T) - tr(Syx W^T) + (1/2) tr(Syy)
            return 0.5 * jnp.sum((W @ self.xx) * W) - jnp.sum(self.yx * W) + 0.5 * jnp.trace(self.yy)
        return lp_loss(self.residuals(W), self.p) / self.m

    def grad(self, W: jax.Array) -> jax.Array:
        """``dL1/dW = (1/m) sum_i sign(r_i) |r_i|^(p-1) x_i^T``, shape ``(k, d)``."""
        self._check_shape(W)
        W = jnp.asarray(W)
        if self.p == 2.0:
            return W @ self.xx - self.yx
        return lp_derivative(self.residuals(W), self.p).T @ self.X / self.m


def synthetic(
    m: int = 2000,
    d: int = 32,
    *,
    p: float = 2.0,
    weight_decay: float = 0.0,
    scale_range: float = 10.0,
    noise: float = 0.1,
    seed: int = 0,
) -> Problem:
    """The embedded default problem, shaped like the paper's gas-sensor Ethanol task (k = 1).

    Features ``x_ic = a_c z_ic`` with ``z`` standard normal and per-feature scales ``a_c`` spaced
    log-uniformly from 1 down to ``1 / scale_range`` (the sensor features span orders of magnitude).
    The target ``y = X w* + noise * e`` uses ``w*_c ~ N(0, 1) / (a_c sqrt(d))`` so that every feature
    contributes alike, then ``X`` and ``y`` are centred and ``y`` is scaled to unit variance.
    Small-scale features are the slow directions of gradient descent; the lp exponent changes how
    strongly large residuals dominate, so l2 and l4 behave differently. Deterministic from ``seed``.

    Examples:
        >>> prob = synthetic(seed=0)
        >>> (prob.m, prob.d, prob.k, prob.p)
        (2000, 32, 1, 2.0)
    """
    m = _checks.integer("m", m, minimum=2)
    d = _checks.integer("d", d, minimum=1)
    scale_range = _checks.real_scalar("scale_range", scale_range, minimum=1.0)
    noise = _checks.real_scalar("noise", noise, minimum=0.0)
    rng = np.random.default_rng(seed)
    scales = np.logspace(0.0, -np.log10(scale_range), d)
    X = rng.standard_normal((m, d)) * scales
    w = rng.standard_normal(d) / (scales * np.sqrt(d))
    y = X @ w + noise * rng.standard_normal(m)
    X = X - X.mean(axis=0)
    y = y - y.mean()
    y = y / y.std()
    return Problem(X, y, p=p, weight_decay=weight_decay)


def orthonormal(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    """An ``(n, r)`` matrix with orthonormal columns (QR of a Gaussian matrix, signs fixed)."""
    q, rr = np.linalg.qr(rng.standard_normal((n, r)))
    return q * np.sign(np.diag(rr))


def whitened(
    singular_values,
    d: int | None = None,
    k: int | None = None,
    *,
    m: int | None = None,
    p: float = 2.0,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> Problem:
    """Whitened inputs (``X^T X / m = I`` exactly) and a target ``Phi = Y^T X / m`` with the given singular values.

    The setting of the exact solutions (docs/math.md section 4): ``X = sqrt(m) Q`` with ``Q`` having
    orthonormal columns and ``Y = X Phi^T``, ``Phi = U diag(s) V^T`` with random orthonormal ``U``, ``V``.
    ``d`` and ``k`` default to ``len(singular_values)``; ``m`` defaults to ``max(d, 8)``.

    Examples:
        >>> import numpy as np
        >>> prob = whitened([2.0, 1.0])
        >>> bool(np.allclose(prob.xx, np.eye(2)))
        True
    """
    s = _checks.finite_matrix("singular_values", np.atleast_1d(singular_values), ndim=1)
    if np.any(s < 0):
        raise ValueError(f"singular_values must be >= 0, got {s}")
    r = len(s)
    d = r if d is None else _checks.integer("d", d, minimum=1)
    k = r if k is None else _checks.integer("k", k, minimum=1)
    if r > min(d, k):
        raise ValueError(f"singular_values has {r} entries but a (k, d) = ({k}, {d}) target has at most {min(d, k)}")
    m = max(d, 8) if m is None else _checks.integer("m", m, minimum=d)
    rng = np.random.default_rng(seed)
    X = np.sqrt(m) * orthonormal(rng, m, d)
    U = orthonormal(rng, k, r)
    V = orthonormal(rng, d, r)
    phi = (U * s) @ V.T
    return Problem(X, X @ phi.T, p=p, weight_decay=weight_decay)


def two_point(y1: float = 4.0, y2: float = 1.0, *, p: float = 4.0, weight_decay: float = 0.0) -> Problem:
    """The two-point example of ACH18 section 6: inputs ``[1, 0]`` and ``[0, 1]`` with targets ``y1``, ``y2``.

    linflow's loss averages over the two points, so ``L1(w) = (1/2) sum_i (1/p) |w_i - y_i|^p``: half
    the paper's sum (the same dynamics with time scaled by 2).

    Examples:
        >>> float(two_point(4.0, 1.0, p=2).loss([[0.0, 0.0]]))  # (1/2)(1/2)(16 + 1)
        4.25
    """
    y1 = _checks.real_scalar("y1", y1)
    y2 = _checks.real_scalar("y2", y2)
    return Problem(np.eye(2), np.array([y1, y2]), p=p, weight_decay=weight_decay)
