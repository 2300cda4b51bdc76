"""Plumbing shared by the continuous and discrete runs (private).

Validation of a start (shapes on every input, values on concrete ones) and the assembly of a
:class:`~linflow.core.trajectory.Trajectory` inside the compiled run: the rows reached before a failure,
the later rows holding the last reached one.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from . import checks as _checks
from .init import end_to_end, imbalance
from .problems import AbstractProblem, Problem
from .trajectory import Trajectory

IMBALANCE_WARN = 1e-6  # relative imbalance above which an end-to-end run from layers warns


def check_problem(problem) -> AbstractProblem:
    if not isinstance(problem, AbstractProblem):
        raise TypeError("problem must be a linflow.Problem (regression), SensingProblem or CompletionProblem (any "
                        f"linflow.core.problems.AbstractProblem), got {type(problem).__name__}")
    return problem


def check_layers(problem: Problem, layers0) -> tuple[jax.Array, ...]:
    """Layers that chain and map ``d`` inputs to ``k`` outputs."""
    layers0 = _checks.layers(layers0)
    if layers0[0].shape[1] != problem.d or layers0[-1].shape[0] != problem.k:
        dims = (layers0[0].shape[1], *(w.shape[0] for w in layers0))
        raise ValueError(
            f"layers map {dims[0]} inputs to {dims[-1]} outputs (dims {dims}) but the problem has "
            f"d = {problem.d} inputs and k = {problem.k} outputs"
        )
    return layers0


def check_end_to_end_start(problem: Problem, start, depth) -> tuple[jax.Array, int]:
    """``W_e(0)`` from a matrix or from layers (warning when the layers are not balanced)."""
    if isinstance(start, tuple) or (isinstance(start, list) and start and all(np.ndim(w) == 2 for w in start)):
        layers0 = check_layers(problem, start)
        if depth is not None and _checks.integer("depth", depth, minimum=1) != len(layers0):
            raise ValueError(f"depth = {depth} but {len(layers0)} layers were given")
        if any(_checks.is_traced(w) for w in layers0):
            return end_to_end(layers0), len(layers0)
        scale = max(float(jnp.sum(w * w)) for w in layers0)
        gap = float(imbalance(layers0))
        if scale > 0 and gap > IMBALANCE_WARN * scale:
            warnings.warn(
                f"the layers are not balanced: max_j ||D_j||_F = {gap:.3e} ({gap / scale:.1e} relative to "
                f"max_j ||W_j||_F^2); Theorem 1 assumes D_j = 0, so the end-to-end run need not match "
                f"the layer dynamics",
                stacklevel=3,
            )
        return end_to_end(layers0), len(layers0)
    W = _checks.finite_matrix("W_e0", start, ndim=2)
    if W.shape != (problem.k, problem.d):
        raise ValueError(f"W_e0 must have shape (k, d) = ({problem.k}, {problem.d}), got {W.shape}")
    return W, _checks.integer("depth", depth, minimum=1)


def rows_reached(tree) -> jax.Array:
    """How many leading saved rows have every entry of every leaf finite (leaves share their first axis; traced)."""
    leaves = jax.tree_util.tree_leaves(tree)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1) for x in leaves]), axis=0)
    rows = jnp.arange(finite.shape[0])
    return jnp.min(jnp.where(finite, finite.shape[0], rows))  # the first non-finite row (a plain min: quick to compile)


def hold_last(tree, stop):
    """Rows ``stop, stop + 1, ...`` of every leaf replaced by row ``stop - 1`` (row 0 when ``stop == 0``).

    One dynamic row read and a select per leaf (a gather per leaf costs several times more to compile).
    """
    def hold(x):
        last = jax.lax.dynamic_index_in_dim(x, jnp.maximum(stop - 1, 0), keepdims=True)
        keep = (jnp.arange(x.shape[0]) < stop).reshape((-1,) + (1,) * (x.ndim - 1))
        return jnp.where(keep, x, last)
    return jax.tree_util.tree_map(hold, tree)


def trajectory(kind: str, depth: int, ts, ys, observed, result, stop, extras=None, cls=Trajectory, **meta) -> Trajectory:
    """A Trajectory (or its subclass ``cls``) of saved states ``ys``, their observables ``(W_e, loss, imbalance)``
    and optional per-save ``extras``; the rows from ``stop`` on (times included) repeat row ``stop - 1``."""
    ts, ys, (w_e, loss, imb), extras = hold_last((ts, ys, observed, extras or {}), stop)
    return cls(
        ts=ts, end_to_end=w_e, loss=loss, layers=ys if isinstance(ys, tuple) else None, imbalance=imb, extras=extras,
        result=jnp.asarray(result, dtype=jnp.int32), stop=jnp.asarray(stop, dtype=jnp.int32), kind=kind,
        depth=depth, **meta,
    )


def save_norms(tree) -> jax.Array:
    """The Frobenius norm of a pytree of saved states, one per save (leading axis: saves)."""
    return jnp.sqrt(sum(jnp.sum(x * x, axis=tuple(range(1, x.ndim))) for x in jax.tree_util.tree_leaves(tree)))


def flow_time_only(name: str, options: dict) -> None:
    """A flow that models a discrete method at step ``eta`` runs in flow time ``t = k eta``: ``time_unit`` is refused."""
    if "time_unit" in options:
        raise TypeError(f"{name} runs in flow time (t = k * eta); time_unit is not an option here")


def padded(values, n: int) -> np.ndarray:
    """The first ``n`` rows of ``values`` followed by NaN rows up to ``n`` (a run cut by ``reached()``)."""
    values = np.asarray(values, dtype=float)
    out = np.full((n, *values.shape[1:]), np.nan)
    out[: min(n, len(values))] = values[:n]
    return out
