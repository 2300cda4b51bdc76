"""First-passage times of a flow: when each of several observables of ``W_e`` first reaches its level, located by
diffrax events on the solver's dense output (docs/math.md section 10).

A small start learns the singular modes of its target one at a time (saddle to saddle); mode ``i`` *escapes* when
the ``i``-th largest singular value of ``W_e`` first reaches half of the target's ``s_i``. :func:`first_passages`
finds every such time along any flow (the layer flow, the end-to-end flow, the modified flows) with an adaptive
solver: one event-terminated solve per passage, the event being ``max_i (f_i(W_e) - level_i)`` over the observables
not passed yet crossing zero from below, its root found by bisection on the dense output. A plateau of length
``alpha^-(1-2/N)`` costs the solver a few dozen steps, where GD needs ``t / eta``.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree

from . import checks as _checks
from .settings import SolverSettings, flat_solve, require_adaptive, result_code, settings_from
from .trajectory import STATUSES

__all__ = ["first_passages", "singular_values"]


def singular_values(W_e: jax.Array) -> jax.Array:
    """The singular values of ``W_e``, largest first (the default observable: ``f_i`` is the ``i``-th of them)."""
    return jnp.linalg.svd(W_e, compute_uv=False)


def _end_to_end_of(field, y) -> jax.Array:
    """``W_e`` of one state ``y`` of ``field`` (through its batched ``observe``)."""
    return field.observe(jax.tree_util.tree_map(lambda a: a[None], y))[0][0]


@eqx.filter_jit
def _to_next_passage(field, y0, t0, t1, levels, pending, observable, settings: SolverSettings, root_tol, value_tol):
    """Solve from ``(t0, y0)`` until the first pending observable reaches its level (or ``t1``): ``(t_end, y_end,
    values of the observables there, whether an event fired, status code, steps)``."""
    unravel = ravel_pytree(y0)[1]

    def gap(y):
        excess = observable(_end_to_end_of(field, unravel(y)))[: levels.shape[0]] - levels
        return jnp.max(jnp.where(pending, excess, -jnp.inf))

    event = diffrax.Event(lambda t, y, args, **kw: gap(y), direction=True,
                          root_finder=optx.Bisection(rtol=root_tol, atol=value_tol))
    sol, unravel = flat_solve(field, y0, t0, t1, diffrax.SaveAt(t1=True), settings, event=event)
    y_end = unravel(sol.ys[-1])
    code = jnp.where(sol.result == diffrax.RESULTS.event_occurred, 0, result_code(sol.result))
    values = observable(_end_to_end_of(field, y_end))[: levels.shape[0]]
    return sol.ts[-1], y_end, values, jnp.asarray(sol.event_mask), code, sol.stats["num_steps"]


def first_passages(field, y0, levels, t1, *, observable: Callable = singular_values, settings=None,
                   root_tol: float = 1e-12) -> dict:
    """The first time ``t_i`` at which ``observable(W_e(t))[i] >= levels[i]``, for every ``i``, along ``field`` from
    ``y0`` on ``[0, t1]`` (``inf`` where not reached by ``t1``).

    Args:
        field: a flow's field module (:class:`~linflow.LayerFlow`, :class:`~linflow.EndToEndFlow`, ...).
        y0: its start (layers, or ``W_e`` for the end-to-end flow).
        levels: the levels, shape ``(r,)`` (e.g. half the target's singular values: the escape times).
        t1: the horizon (flow time).
        observable: ``W_e -> (n,)`` with ``n >= r`` (default: :func:`singular_values`, largest first).
        settings: a :class:`~linflow.SolverSettings` with an adaptive solver (default: tsit5 at rtol 1e-10,
            atol 1e-12: an escape time's error follows the solver's).
        root_tol: the bisection's relative tolerance on the event time; it stops where the bracket is below
            ``root_tol * (1 + |t|)`` and the observable within ``10 root_tol max(1, |levels|)`` of its level (a
            tighter value tolerance than the rounding of the observable at late times would never be met).

    Returns:
        ``{"times": (r,), "states": the state at each passage (a list; None where not reached), "status",
        "message", "num_steps", "final_time", "final_state"}`` (the last two: where the solve ended); ``status``
        is ``"ok"`` unless the solver failed (``max_steps``, a non-finite state), said in ``message`` with the
        time reached.

    Examples:
        >>> import numpy as np, linflow
        >>> from linflow.core.passages import first_passages
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> layers = linflow.init.aligned(prob, 2, 1e-6)
        >>> out = first_passages(linflow.LayerFlow(prob), layers, [1.0, 0.5], 50.0)
        >>> np.round(out["times"], 4).tolist()  # ln((s - alpha) / alpha) / (2 s) at sigma = s / 2
        [3.6272, 6.9078]
    """
    levels = _checks.finite_matrix("levels", np.atleast_1d(levels), ndim=1)
    t1 = float(_checks.positive("t1", t1))
    settings = SolverSettings(rtol=1e-10, atol=1e-12) if settings is None else settings_from(settings, first_passages)
    require_adaptive("first_passages (it locates the passages on the solver's dense output)", settings.solver)
    r = len(levels)
    times, states = np.full(r, np.inf), [None] * r
    pending = np.ones(r, bool)
    t, y, steps, code = 0.0, y0, 0, 0
    reached, final = 0.0, y0
    while pending.any() and t < t1:
        t_end, y_end, values, fired, code, n = _to_next_passage(
            field, y, jnp.asarray(t), jnp.asarray(t1), jnp.asarray(levels), jnp.asarray(pending), observable,
            settings, root_tol, root_tol * max(1.0, float(np.abs(levels).max())) * 10)
        steps += int(n)
        code = int(code)
        reached, final = float(t_end), y_end
        if code != 0 or not bool(fired):
            break
        t = float(t_end)
        passed = pending & (np.asarray(values) >= levels - 1e-12 * np.maximum(1.0, np.abs(levels)))
        if not passed.any():  # the root finder stopped a hair below: the largest pending excess passed
            passed = np.zeros(r, bool)
            passed[np.flatnonzero(pending)[np.argmax((np.asarray(values) - levels)[pending])]] = True
        times[passed] = t
        for i in np.flatnonzero(passed):
            states[i] = y_end
        pending &= ~passed
        y = y_end
    status = STATUSES[code]
    message = "" if code == 0 else f"{status} at t = {reached:.6g} after {steps} steps: later passages not located"
    return {"times": times, "states": states, "status": status, "message": message, "num_steps": steps,
            "final_time": reached, "final_state": final}
