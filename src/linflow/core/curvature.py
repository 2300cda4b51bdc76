r"""Curvature of the network loss in the layer parameters, from Hessian-vector products only.

The network loss is $L^N(W_1, \dots, W_N) = L^1(W_e) + \frac{\lambda}{2} \sum_j \lVert W_j \rVert_F^2$; its gradient
is minus the layer field, and $H v$ is ``jax.jvp`` of that gradient (no Hessian is ever formed). The extreme
eigenvalues come from Lanczos with full reorthogonalization (restarted on breakdown, so that an
invariant subspace found early never adds spurious zero eigenvalues). With ``iters >= `` the number
of parameters the result is exact to round-off.

``sharpness`` (the largest eigenvalue $S$) sets the stability limit of gradient descent,
$\eta < 2 / S$ (docs/math.md section 5, (5.4)); ``preconditioned_sharpness`` ($\lambda_1(P^{-1} H)$ for a diagonal
$P > 0$) sets that of an adaptive method with preconditioner $P$ (docs/math.md (14.5)).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from . import checks as _checks, runs as _runs
from .fields import hessian_vector_product
from .problems import Problem
from .trajectory import Trajectory

__all__ = ["hessian_extremes", "sharpness", "preconditioned_sharpness", "smallest_eigenvalue", "lanczos_top"]


def _lanczos(matvec, n: int, iters: int, key) -> tuple[jax.Array, jax.Array]:
    """``min(iters, n)`` Lanczos steps on a symmetric operator on R^n: the basis ``Q`` (rows) and the tridiagonal ``T``."""
    m = min(iters, n)
    starts = jax.random.normal(key, (m, n))
    Q = jnp.zeros((m, n))
    alpha = jnp.zeros(m)
    beta = jnp.zeros(m)  # beta[j] couples q_j and q_{j+1}

    def fresh(Q, j):
        """A unit vector orthogonal to the first j rows of Q (a restart)."""
        v = starts[j]
        mask = (jnp.arange(m) < j)[:, None]
        for _ in range(2):
            v = v - (Q * mask).T @ ((Q * mask) @ v)
        return v / jnp.linalg.norm(v)

    def body(j, state):
        Q, alpha, beta, q, q_prev, b_prev, hnorm = state
        Q = Q.at[j].set(q)
        w = matvec(q)
        hnorm = jnp.maximum(hnorm, jnp.linalg.norm(w))  # running estimate of ||H||
        a = q @ w
        r = w - a * q - b_prev * q_prev
        mask = (jnp.arange(m) <= j)[:, None]
        for _ in range(2):  # full reorthogonalization, twice is enough
            r = r - (Q * mask).T @ ((Q * mask) @ r)
        b = jnp.linalg.norm(r)
        # breakdown relative to ||H||, not to this step's numbers: in the null space of H both a and b
        # are round-off, and r / b would be noise that is not orthogonal to Q
        broke = b <= 1e-8 * hnorm + jnp.finfo(r.dtype).tiny
        q_next = jnp.where(broke, fresh(Q, jnp.minimum(j + 1, m - 1)), r / jnp.where(broke, 1.0, b))
        b = jnp.where(broke, 0.0, b)
        return Q, alpha.at[j].set(a), beta.at[j].set(b), q_next, q, b, hnorm

    q0 = starts[0] / jnp.linalg.norm(starts[0])
    state = (Q, alpha, beta, q0, jnp.zeros(n), jnp.asarray(0.0), jnp.asarray(0.0))
    Q, alpha, beta, *_ = jax.lax.fori_loop(0, m, body, state)
    return Q, jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)


def _lanczos_extremes(matvec, n: int, iters: int, key) -> tuple[jax.Array, jax.Array]:
    """Largest and smallest Ritz values of a symmetric operator on R^n after ``iters`` Lanczos steps."""
    ritz = jnp.linalg.eigvalsh(_lanczos(matvec, n, iters, key)[1])
    return ritz[-1], ritz[0]


def lanczos_top(matvec, n: int, iters: int, key) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(lambda_1, lambda_2, u)``: the two largest Ritz values and the unit Ritz vector of the largest."""
    Q, T = _lanczos(matvec, n, iters, key)
    ritz, V = jnp.linalg.eigh(T)
    u = Q.T @ V[:, -1]
    second = ritz[-2] if ritz.shape[0] > 1 else -jnp.inf
    return ritz[-1], second, u / jnp.linalg.norm(u)


@functools.partial(jax.jit, static_argnames=("iters",))
def _extremes(problem: Problem, layers, iters: int):
    flat, unravel = ravel_pytree(layers)

    def matvec(v):
        return ravel_pytree(hessian_vector_product(problem, layers, unravel(v)))[0]

    return _lanczos_extremes(matvec, flat.size, iters, jax.random.PRNGKey(0))


@functools.partial(jax.jit, static_argnames=("iters",))
def _extremes_batched(problem: Problem, layers, iters: int):
    return jax.vmap(lambda ls: _extremes(problem, ls, iters))(layers)


def hessian_extremes(problem: Problem, layers, *, iters: int = 64) -> tuple[jax.Array, jax.Array]:
    """``(lambda_max, lambda_min)`` of the Hessian of ``L^N`` at ``layers``.

    ``layers`` may carry a leading batch (time) axis, e.g. ``traj.layers``: the result then has that
    shape. A :class:`~linflow.Trajectory` of a layer run is accepted too.
    """
    problem = _runs.check_problem(problem)
    if isinstance(layers, Trajectory):
        if layers.layers is None:
            raise ValueError("the curvature is defined in the layer parameters: pass a layer run, not an end-to-end run")
        layers = layers.layers
    layers = tuple(jnp.asarray(w) for w in layers)
    if layers[0].ndim == 3:
        return _extremes_batched(problem, layers, iters)
    _runs.check_layers(problem, layers)
    return _extremes(problem, layers, iters)


def sharpness(problem: Problem, layers, *, iters: int = 64) -> jax.Array:
    """Largest eigenvalue ``S`` of the Hessian of ``L^N`` in the layer parameters (batched along a run).

    Examples:
        >>> import numpy as np, linflow
        >>> prob = linflow.Problem(np.array([[1.0]]), np.array([1.5]))   # L = (1/2)(w2 w1 - 1.5)^2
        >>> at_min = (np.array([[1.5 ** 0.5]]), np.array([[1.5 ** 0.5]]))
        >>> round(float(sharpness(prob, at_min)), 12)  # N s^(2 - 2/N) = 2 * 1.5
        3.0
    """
    return hessian_extremes(problem, layers, iters=iters)[0]


@functools.partial(jax.jit, static_argnames=("iters",))
def _preconditioned_top(problem: Problem, layers, preconditioner, iters: int):
    flat, unravel = ravel_pytree(layers)
    scale = jax.lax.rsqrt(ravel_pytree(preconditioner)[0])

    def matvec(v):  # P^{-1/2} H P^{-1/2} v: symmetric, with the eigenvalues of P^{-1} H
        return scale * ravel_pytree(hessian_vector_product(problem, layers, unravel(scale * v)))[0]

    return _lanczos_extremes(matvec, flat.size, iters, jax.random.PRNGKey(0))[0]


def preconditioned_sharpness(problem: Problem, layers, preconditioner, *, iters: int = 64) -> jax.Array:
    r"""$\lambda_1(P^{-1} H)$: the largest eigenvalue of the Hessian of ``L^N`` at ``layers`` preconditioned by the
    diagonal $P$ given as ``preconditioner`` (a pytree shaped like ``layers``, every entry positive), computed as
    $\lambda_1(P^{-1/2} H P^{-1/2})$ (docs/math.md (14.5)). With $P = 1$ it is :func:`sharpness`.

    Traceable (no checks on traced input): e.g. read inside a run's loop on an optimizer's state
    (:mod:`linflow.studies.edges`).

    Examples:
        >>> import numpy as np, linflow
        >>> prob = linflow.Problem(np.array([[1.0]]), np.array([1.5]))   # L = (1/2)(w2 w1 - 1.5)^2
        >>> at_min = (np.array([[1.5 ** 0.5]]), np.array([[1.5 ** 0.5]]))
        >>> P = (np.array([[2.0]]), np.array([[2.0]]))                   # H / 2 at the minimum
        >>> round(float(preconditioned_sharpness(prob, at_min, P)), 12)
        1.5
    """
    layers = tuple(jnp.asarray(w) for w in layers)
    preconditioner = tuple(jnp.asarray(p, dtype=jnp.float64) for p in preconditioner)
    if not _checks.is_traced(layers[0]):
        problem = _runs.check_problem(problem)
        _runs.check_layers(problem, layers)
        if [p.shape for p in preconditioner] != [w.shape for w in layers]:
            raise ValueError(f"preconditioner must have the layers' shapes {[w.shape for w in layers]}; got "
                             f"{[p.shape for p in preconditioner]}")
        if not _checks.is_traced(preconditioner[0]) and not all(bool(jnp.all(p > 0)) for p in preconditioner):
            raise ValueError("preconditioner must be positive everywhere (the diagonal of P > 0)")
    return _preconditioned_top(problem, layers, preconditioner, iters)


def smallest_eigenvalue(problem: Problem, layers, *, iters: int = 64) -> jax.Array:
    """Smallest eigenvalue of the Hessian of ``L^N`` in the layer parameters (batched along a run)."""
    return hessian_extremes(problem, layers, iters=iters)[1]
