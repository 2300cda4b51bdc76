"""Plumbing shared by the continuous and discrete runs (private).

Validation of a start, the observables saved with every run (``W_e``, loss, imbalance), the choice of
the end-to-end form, and the assembly of a :class:`~linflow.trajectory.Trajectory` that keeps only the
rows reached before a failure.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .fields import END_TO_END_FORMS
from .init import end_to_end, imbalance
from .problems import Problem
from .trajectory import Trajectory

IMBALANCE_WARN = 1e-6  # relative imbalance above which an end-to-end run from layers warns


def check_problem(problem) -> Problem:
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a linflow.Problem, got {type(problem).__name__}")
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
    return jnp.asarray(W), _checks.integer("depth", depth, minimum=1)


def end_to_end_form(problem: Problem, form: str):
    """The end-to-end field for ``form`` in ``auto`` (Claim 2 when k = 1), ``general``, ``claim2``."""
    if form == "auto":
        form = "claim2" if problem.k == 1 else "general"
    if form not in END_TO_END_FORMS:
        raise ValueError(f"form must be one of 'auto', {', '.join(map(repr, END_TO_END_FORMS))}; got {form!r}")
    if form == "claim2" and problem.k != 1:
        raise ValueError(f"form='claim2' needs k = 1 output, the problem has k = {problem.k}")
    return END_TO_END_FORMS[form]


def observe_layers(problem: Problem, ys):
    """``(W_e, loss, imbalance)`` for a batch of saved layer tuples."""
    w_e = end_to_end(ys)
    return w_e, jax.vmap(problem.loss)(w_e), imbalance(ys)


def observe_end_to_end(problem: Problem, ys):
    return ys, jax.vmap(problem.loss)(ys), None


def as_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def build(kind: str, depth: int, ts, ys, observed, keep: int, **meta) -> Trajectory:
    """A Trajectory of the first ``keep`` saved rows."""
    w_e, loss, imb = observed
    layers = tuple(y[:keep] for y in ys) if isinstance(ys, tuple) else None
    return Trajectory(
        kind=kind,
        depth=depth,
        ts=ts[:keep],
        end_to_end=w_e[:keep],
        loss=loss[:keep],
        layers=layers,
        imbalance=None if imb is None else imb[:keep],
        **meta,
    )


def finite_prefix(tree) -> int:
    """How many leading saved rows have every entry of every leaf finite (leaves share their first axis)."""
    leaves = jax.tree_util.tree_leaves(tree)
    finite = np.logical_and.reduce([np.all(np.isfinite(y.reshape(y.shape[0], -1)), axis=1) for y in leaves])
    return int(np.argmin(finite)) if not finite.all() else len(finite)


def padded(values, n: int) -> np.ndarray:
    """The first ``n`` rows of ``values`` followed by NaN rows up to ``n`` (a run that stopped early)."""
    values = np.asarray(values, dtype=float)
    out = np.full((n, *values.shape[1:]), np.nan)
    out[: min(n, len(values))] = values[:n]
    return out
