r"""Newton's method for the implicit stages of the layer flow on a completion problem, its Krylov solves
preconditioned by the Gauss-Newton inverse (docs/math.md (9.3)-(9.4)).

An implicit Runge-Kutta stage of ``dtheta/dt = F(theta)`` solves ``z - F(y + c z) = 0`` (``c`` = the tableau's
diagonal times the step), whose Newton matrix is ``I - c J_F``. On the layer flow of
``L(theta) = L1(W_e(theta)) + (lambda / 2) |theta|^2``, ``-J_F = lambda I + D^T H D + R`` with ``D`` the derivative of
the product ``W_e = W_N ... W_1``, ``H`` the Hessian of ``L1`` and ``R`` the residual's term (zero at a fit). For
matrix completion ``H = s S^T S`` (``S`` picks the ``m`` observed entries, ``s = kd/m``, docs/math.md (9.2)), and
the Gauss-Newton part inverts exactly by Woodbury on the observed entries:

$$
\big((1 + c\lambda) I + c D^\top H D\big)^{-1} = \frac{1}{1 + c\lambda}\Big(I - c' s D^\top S^\top
(I_m + c' s\, S D D^\top S^\top)^{-1} S D\Big),\qquad c' = \frac{c}{1 + c\lambda},
$$

with ``D D^T E = sum_j A_j E B_j``, ``A_j = W_{N:j+1} W_{N:j+1}^T``, ``B_j = W_{j-1:1}^T W_{j-1:1}`` (any layers;
for balanced ones it is ACH18's preconditioner ``P_{W_e}``). The ``m x m`` matrix is formed from the ``A_j``,
``B_j`` gathered at the observed pairs and factored (Cholesky) once per step of the solver (:class:`CompletionNewton`,
``frozen``) or once per Newton iteration; the Krylov solver then sees ``I`` plus the residual's term (and the drift
of the point within the step). Measured (docs/guide/performance.md): GMRES per Newton solve on a 100 x 100
depth-4 flow, 40,000 unknowns, 1,500 entries, 82-148 ms against 0.47-3.9 s unpreconditioned.

The stage's point is read from the root finder's arguments, whose layout diffrax documents for custom root finders
(``stage_index, diagonal, vf, prod, ti, yi_partial, args, control`` in the ``f`` form; without ``prod`` in the
``k`` form); the state is the raveled layers of :func:`linflow.core.settings.flat_solve`.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree

from .init import end_to_end

__all__ = ["gauss_newton_inverse", "GaussNewtonInverse", "CompletionNewton", "completion_newton"]


def _gram_sides(layers) -> list[tuple[jax.Array, jax.Array]]:
    """``(A_j, B_j)`` for every layer ``j``: ``W_{N:j+1} W_{N:j+1}^T`` and ``W_{j-1:1}^T W_{j-1:1}``, from the
    products below and above each layer built once (``I`` where there is none)."""
    k, d = layers[-1].shape[0], layers[0].shape[1]
    below, above = [jnp.eye(d)], [jnp.eye(k)]
    for w in layers[:-1]:
        below.append(w @ below[-1])
    for w in reversed(layers[1:]):
        above.append(above[-1] @ w)
    above.reverse()
    return [(a @ a.T, b.T @ b) for a, b in zip(above, below)]


class GaussNewtonInverse(eqx.Module):
    r"""``v -> ((1 + c lambda) I + c D^T H D)^{-1} v`` over layer tuples, factored at ``layers`` (docs/math.md
    (9.4)): the layers, the Cholesky factor of the ``m x m`` matrix and the two scalars ``1 / (1 + c lambda)``,
    ``c s / (1 + c lambda)``. A pytree of arrays: it can be carried in a solver's state and applied at later
    points (a frozen preconditioner)."""

    layers: tuple[jax.Array, ...]
    rows: jax.Array
    cols: jax.Array
    cholesky: jax.Array
    shrink: jax.Array
    cs: jax.Array

    def linearized(self):
        """The inverse as a function whose product ``W_e`` is linearized once, here: for many applications (a Krylov
        solve's), each then costs the product's tangent and its transpose, not the product again."""
        W, tangent = jax.linearize(end_to_end, self.layers)
        cotangent = jax.linear_transpose(tangent, self.layers)

        def apply(v):
            z = jax.scipy.linalg.cho_solve((self.cholesky, False), tangent(tuple(v))[self.rows, self.cols])
            (back,) = cotangent(jnp.zeros_like(W).at[self.rows, self.cols].set(z))
            return tuple(self.shrink * (vi - self.cs * bi) for vi, bi in zip(v, back))

        return apply

    def __call__(self, v):
        return self.linearized()(v)


def gauss_newton_inverse(rows, cols, scale: float, layers, c, weight_decay: float = 0.0) -> GaussNewtonInverse:
    r"""``v -> ((1 + c lambda) I + c D^T H D)^{-1} v`` over layer tuples, ``H = scale S^T S`` the completion loss's
    Hessian (observed entries ``rows``, ``cols``); exact (module docstring, docs/math.md (9.4))."""
    layers = tuple(jnp.asarray(w) for w in layers)
    rows, cols = jnp.asarray(rows), jnp.asarray(cols)
    shrink = 1.0 / (1.0 + c * weight_decay)
    cs = c * shrink * scale
    inner = jnp.eye(rows.shape[0], dtype=layers[0].dtype)
    for A, B in _gram_sides(layers):
        inner = inner + cs * A[rows][:, rows] * B[cols][:, cols]
    cholesky, _ = jax.scipy.linalg.cho_factor(inner)
    return GaussNewtonInverse(layers, rows, cols, cholesky, jnp.asarray(shrink), jnp.asarray(cs))


class _Preconditioned(lx.AbstractLinearSolver):
    """A lineax solver run with a given preconditioner (lineax takes it as an option of each solve)."""

    inner: lx.AbstractLinearSolver
    preconditioner: lx.AbstractLinearOperator

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {**options, "preconditioner": self.preconditioner}

    def init(self, operator, options):
        return self.inner.init(operator, self._options(options))

    def compute(self, state, vector, options):
        return self.inner.compute(state, vector, self._options(options))

    def transpose(self, state, options):
        return self.inner.transpose(state, options)

    def conj(self, state, options):
        return self.inner.conj(state, options)

    def assume_full_rank(self):
        return self.inner.assume_full_rank()


class CompletionNewton(optx.Newton):
    """``optimistix.Newton`` for the implicit stages of the layer flow of a completion problem, each linear solve
    preconditioned by :func:`gauss_newton_inverse`. ``frozen`` (the default): the inverse is factored where the root
    finder is initialised and carried in its state; diffrax initialises it once per step (at the second stage of an
    ESDIRK method, whose implicit stages share one diagonal) and hands that state to every stage, so each step factors
    the ``m x m`` matrix once (a chord preconditioner: Newton's own linear systems stay exact, only GMRES's
    preconditioner lags). ``frozen=False``: factored anew at every Newton iterate. The mask and the layer shapes are
    static (a compiled solve serves one mask)."""

    rows: tuple[int, ...] = eqx.field(static=True, default=())
    cols: tuple[int, ...] = eqx.field(static=True, default=())
    scale: float = eqx.field(static=True, default=1.0)
    weight_decay: float = eqx.field(static=True, default=0.0)
    layer_shapes: tuple[tuple[int, int], ...] = eqx.field(static=True, default=())
    frozen: bool = eqx.field(static=True, default=True)

    def _inverse(self, y, args) -> GaussNewtonInverse:
        """The Gauss-Newton inverse at the stage point of the root finder's iterate ``y``."""
        if len(args) == 8:  # the f form: the stage's point is yi_partial + diagonal * prod(f, control)
            _, diagonal, _, prod, _, partial, _, control = args
            increment = prod(y, control)
        else:  # the k form: yi_partial + diagonal * k
            _, diagonal, _, _, partial, _, control = args
            increment = y
        point = jax.lax.stop_gradient(partial + diagonal * increment)
        _, unravel = ravel_pytree(tuple(jnp.zeros(s, point.dtype) for s in self.layer_shapes))
        return gauss_newton_inverse(jnp.asarray(self.rows), jnp.asarray(self.cols), self.scale, unravel(point),
                                    jax.lax.stop_gradient(diagonal * control), self.weight_decay)

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        state = super().init(fn, y, args, options, f_struct, aux_struct, tags)
        if not self.frozen:
            return state
        given = options.get("init_state")
        inverse = given.linear_state if given is not None else self._inverse(y, args)
        return eqx.tree_at(lambda s: s.linear_state, state, inverse, is_leaf=lambda x: x is None)

    def step(self, fn, y, args, options, state, tags):
        inverse = state.linear_state if self.frozen else self._inverse(y, args)
        _, unravel = ravel_pytree(inverse.layers)
        apply = inverse.linearized()
        operator = lx.FunctionLinearOperator(lambda v: ravel_pytree(apply(unravel(v)))[0],
                                             jax.eval_shape(lambda: y))
        preconditioned = eqx.tree_at(lambda s: s.linear_solver, self, _Preconditioned(self.linear_solver, operator))
        return optx.Newton.step(preconditioned, fn, y, args, options, state, tags)


def completion_newton(problem, layers, rtol: float, atol: float, linear_solver, frozen: bool = True) -> CompletionNewton:
    """:class:`CompletionNewton` for the layer flow of ``problem`` (a ``CompletionProblem`` with ``p = 2``) from
    ``layers`` (their shapes; ``W_1`` first), Newton stopping at ``rtol``, ``atol``, its linear solves by the lineax
    ``linear_solver`` (an iterative one: ``lineax.GMRES``)."""
    if problem.p != 2:
        raise ValueError(f"the Gauss-Newton preconditioner needs the squared loss (p = 2), got p = {problem.p:g}")
    k, d = problem.shape
    rows, cols = (tuple(int(i) for i in np.asarray(a)) for a in (problem.rows, problem.cols))
    return CompletionNewton(rtol=rtol, atol=atol, linear_solver=linear_solver, rows=rows, cols=cols,
                            scale=k * d / len(rows), weight_decay=float(problem.weight_decay),
                            layer_shapes=tuple(tuple(np.shape(w)) for w in layers), frozen=frozen)
