"""Continuous runs: the layer gradient flow and the end-to-end flow, integrated with diffrax.

One compiled solve per (field, solver, shapes): ``t1``, the save times, ``rtol``, ``atol``, the step,
the data values and the start are traced arrays, so new values never recompile (REFERENCE.md
section 7). Failures (``max_steps``, a non-finite state, an implicit solver that does not converge)
are reported in :attr:`Trajectory.status` with the time where they happened; the rows reached
before are kept.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import _checks, _runs
from .fields import layer_field, modified_field_1, modified_field_2
from .problems import Problem
from .trajectory import Trajectory

__all__ = [
    "SolverSpec",
    "SOLVERS",
    "gradient_flow",
    "gradient_flows",
    "end_to_end_flow",
    "modified_flow",
    "solve_flow",
    "FlowSettings",
]


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    """A solver by name: its diffrax class, order, whether it adapts its step, and its cost per step.

    ``evals_per_step`` counts new vector-field evaluations per attempted step (rejected steps pay in
    full); FSAL solvers pay one more evaluation at the start. ``None`` for implicit solvers, whose
    cost depends on the Newton iterations.
    """

    make: Callable[[], diffrax.AbstractSolver]
    order: int
    adaptive: bool
    implicit: bool = False
    evals_per_step: int | None = None
    fsal: bool = False

    def nfev(self, num_steps: int) -> int:
        """Vector-field evaluations for ``num_steps`` attempted steps (-1 where unknown)."""
        if self.evals_per_step is None:
            return -1
        return self.evals_per_step * num_steps + int(self.fsal)


SOLVERS: dict[str, SolverSpec] = {
    "euler": SolverSpec(diffrax.Euler, 1, adaptive=False, evals_per_step=1),
    "heun": SolverSpec(diffrax.Heun, 2, adaptive=False, evals_per_step=2),
    "midpoint": SolverSpec(diffrax.Midpoint, 2, adaptive=False, evals_per_step=2),
    "ralston": SolverSpec(diffrax.Ralston, 2, adaptive=False, evals_per_step=2),
    "bosh3": SolverSpec(diffrax.Bosh3, 3, adaptive=True, evals_per_step=3, fsal=True),
    "tsit5": SolverSpec(diffrax.Tsit5, 5, adaptive=True, evals_per_step=6, fsal=True),
    "dopri5": SolverSpec(diffrax.Dopri5, 5, adaptive=True, evals_per_step=6, fsal=True),
    "dopri8": SolverSpec(diffrax.Dopri8, 8, adaptive=True, evals_per_step=13, fsal=True),
    "kvaerno3": SolverSpec(diffrax.Kvaerno3, 3, adaptive=True, implicit=True),
    "kvaerno5": SolverSpec(diffrax.Kvaerno5, 5, adaptive=True, implicit=True),
}

_STATUS = {
    "successful": "ok",
    "max_steps_reached": "max_steps",
    "max_steps_rejected": "max_steps",
    "dt_min_reached": "dt_min",
    "nonfinite": "nonfinite",
    "nonlinear_max_steps_reached": "implicit_failure",
    "nonlinear_divergence": "implicit_failure",
    "singular": "implicit_failure",
}


def _result_name(code) -> str:
    """The name of a diffrax result from its integer code."""
    for name, item in diffrax.RESULTS._name_to_item.items():
        if int(item._value) == int(code):
            return name
    return "unknown"  # pragma: no cover


def _solve_impl(field, observe, depth, solver, max_steps, args, y0, t1, ts, rtol, atol, dt0):
    """One diffrax solve of ``dy/dt = field(args, y, depth)``, saved at ``ts``, plus the observables.

    The state is raveled into one flat vector for the solver: one array per stage instead of one per
    layer, which cuts the solver's per-step overhead on small networks (benchmarks/README.md).
    """
    spec = SOLVERS[solver]
    flat0, unravel = ravel_pytree(y0)
    term = diffrax.ODETerm(lambda t, y, a: ravel_pytree(field(a, unravel(y), depth))[0])
    if spec.adaptive:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
    else:
        controller = diffrax.ConstantStepSize()
    sol = diffrax.diffeqsolve(
        term,
        spec.make(),
        t0=jnp.zeros_like(t1),
        t1=t1,
        dt0=dt0,
        y0=flat0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    ys = jax.vmap(unravel)(sol.ys)
    stats = {k: sol.stats[k] for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
    return ys, observe(args, ys), sol.result._value, stats


_solve = jax.jit(_solve_impl, static_argnums=(0, 1, 2, 3, 4))


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _solve_many(field, observe, depth, solver, max_steps, args, y0, t1, ts, rtol, atol, dt0):
    """:func:`_solve_impl` for ``args = (problem, etas)`` batched over ``etas`` (one compiled computation)."""
    problem, etas = args
    return jax.vmap(lambda e: _solve_impl(field, observe, depth, solver, max_steps, (problem, e), y0, t1, ts, rtol,
                                          atol, dt0))(etas)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _solve_starts(field, observe, depth, solver, max_steps, args, y0s, t1, ts, rtol, atol, dt0):
    """:func:`_solve_impl` batched over starts ``y0s`` (leading axis): one compiled computation."""
    return jax.vmap(lambda y0: _solve_impl(field, observe, depth, solver, max_steps, args, y0, t1, ts, rtol, atol,
                                           dt0))(y0s)


def _time_grid(t1, ts, n_save, time_unit, eta):
    """Validated ``(t1, ts)`` in flow time, from either convention."""
    if time_unit not in ("flow", "iterations"):
        raise ValueError(f"time_unit must be 'flow' or 'iterations', got {time_unit!r}")
    t1 = _checks.positive("t1", t1)
    if time_unit == "iterations":
        if eta is None:
            raise ValueError("time_unit='iterations' needs eta (the learning rate that turns iterations into flow time)")
        eta = _checks.positive("eta", eta)
        t1 = t1 * eta
    if ts is None:
        n_save = _checks.integer("n_save", n_save, minimum=2)
        return t1, np.linspace(0.0, t1, n_save)
    ts = _checks.finite_matrix("ts", ts, ndim=1)
    if time_unit == "iterations":
        ts = ts * eta
    if np.any(np.diff(ts) < 0) or ts[0] < 0 or ts[-1] > t1 * (1 + 1e-12):
        raise ValueError(f"ts must be non-decreasing within [0, t1] = [0, {t1:g}]; got [{ts[0]:g} ... {ts[-1]:g}]")
    return t1, np.minimum(ts, t1)


@dataclasses.dataclass(frozen=True)
class FlowSettings:
    """Validated solver settings of one continuous run (shared by a batch of runs)."""

    solver: str
    t1: float
    ts: np.ndarray
    rtol: float
    atol: float
    dt0: float | None
    max_steps: int

    @classmethod
    def make(cls, t1, *, ts=None, n_save=201, solver="tsit5", rtol=1e-8, atol=1e-10, dt0=None, max_steps=100_000,
             time_unit="flow", eta=None) -> "FlowSettings":
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(sorted(SOLVERS))}; got {solver!r}")
        t1, ts = _time_grid(t1, ts, n_save, time_unit, eta)
        if dt0 is not None:
            dt0 = _checks.positive("dt0", dt0)
        elif not SOLVERS[solver].adaptive:
            raise ValueError(f"solver {solver!r} takes fixed steps: pass dt0 (the step size) > 0")
        return cls(solver, t1, ts, _checks.positive("rtol", rtol), _checks.positive("atol", atol), dt0,
                   _checks.integer("max_steps", max_steps, minimum=1))

    def arrays(self) -> tuple:
        """``(t1, ts, rtol, atol, dt0)`` as float64 arrays: traced, so new values never recompile."""
        f64 = lambda x: None if x is None else jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
        return f64(self.t1), f64(self.ts), f64(self.rtol), f64(self.atol), f64(self.dt0)

    def finish(self, kind: str, depth: int, ys, observed, result, stats, eta=None) -> Trajectory:
        """A Trajectory from one solve's raw outputs: status, message and the rows reached before a failure."""
        ts, t1, solver = self.ts, self.t1, self.solver
        ys, observed = _runs.as_numpy(ys), _runs.as_numpy(observed)
        stats = {k: int(v) for k, v in stats.items()}
        stats["nfev"] = SOLVERS[solver].nfev(stats["num_steps"])
        name = _result_name(result)
        status = _STATUS.get(name, "failed")
        keep = _runs.finite_prefix((ys, observed))  # the state and what is observed of it (W_e, loss)
        message = ""
        if status == "ok" and keep < len(ts):
            status = "nonfinite"
        if status != "ok":
            reached = f"t = {ts[keep - 1]:.6g}" if keep else "the start"
            nxt = f", before t = {ts[keep]:.6g}" if keep < len(ts) else ""
            message = (
                f"{kind} with solver {solver!r} stopped ({name.replace('_', ' ')}) after {stats['num_steps']} steps; "
                f"last saved point reached: {reached}{nxt} (t1 = {t1:.6g})"
            )
            if status == "max_steps":
                message += "; raise max_steps or loosen rtol/atol"
        return _runs.build(kind, depth, ts, ys, observed, keep, stats=stats, status=status, message=message,
                           solver=solver, t1=t1, eta=eta)


def solve_flow(kind: str, field, observe, args, y0, depth: int, t1, **options) -> Trajectory:
    """Integrate ``dy/dt = field(args, y, depth)`` from ``y0`` on ``[0, t1]`` and build a Trajectory.

    The building block of :func:`gradient_flow`, :func:`end_to_end_flow` and :func:`modified_flow`;
    ``observe(args, ys)`` gives ``(W_e, loss, imbalance)`` of the saved states. ``options`` are those
    of :func:`gradient_flow`.
    """
    settings = FlowSettings.make(t1, **options)
    out = _solve(field, observe, depth, settings.solver, settings.max_steps, args, y0, *settings.arrays())
    eta = options.get("eta") if options.get("time_unit") == "iterations" else None
    return settings.finish(kind, depth, *out, eta=eta)


def gradient_flow(
    problem: Problem,
    layers0,
    t1,
    *,
    ts=None,
    n_save: int = 201,
    solver: str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    dt0: float | None = None,
    max_steps: int = 100_000,
    time_unit: str = "flow",
    eta: float | None = None,
) -> Trajectory:
    """Gradient flow of every layer, ``dW_j/dt = -lambda W_j - dL^N/dW_j``, on ``[0, t1]``.

    Args:
        problem: the :class:`~linflow.Problem`.
        layers0: initial layers ``(W_1, ..., W_N)``.
        t1: final time (flow time, or iterations with ``time_unit='iterations'`` and ``eta``).
        ts: save times within ``[0, t1]`` (default ``n_save`` evenly spaced points, ``n_save`` = 201).
        solver: one of :data:`SOLVERS` (``euler``, ``heun``, ``midpoint``, ``ralston`` need ``dt0``).
        rtol: relative tolerance of the adaptive step-size controller.
        atol: absolute tolerance of the adaptive step-size controller.
        dt0: fixed step (fixed-step solvers) or initial step (adaptive; default: automatic).
        max_steps: step budget; reaching it is reported as ``status == "max_steps"``.
        time_unit: ``'flow'`` (default) or ``'iterations'``: then ``t1`` and ``ts`` count GD iterations of
            step ``eta`` (ACH18's convention); the result is always in flow time ``t = k * eta``.
        eta: the learning rate that converts iterations to flow time (``time_unit='iterations'``).

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> traj = linflow.gradient_flow(prob, linflow.init.balanced((2, 3, 2), 0.1), t1=5.0)
        >>> traj.status
        'ok'
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    return solve_flow(
        "gradient_flow", layer_field, _runs.observe_layers, problem, layers0, len(layers0), t1, ts=ts, n_save=n_save,
        solver=solver, rtol=rtol, atol=atol, dt0=dt0, max_steps=max_steps, time_unit=time_unit, eta=eta,
    )


def end_to_end_flow(
    problem: Problem,
    W_e0,
    depth: int | None,
    t1,
    *,
    form: str = "auto",
    ts=None,
    n_save: int = 201,
    solver: str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    dt0: float | None = None,
    max_steps: int = 100_000,
    time_unit: str = "flow",
    eta: float | None = None,
) -> Trajectory:
    """End-to-end flow of ACH18 Theorem 1 (Claim 2 form when ``k = 1`` and ``form='auto'``).

    ``dW_e/dt = -lambda N W_e - sum_j [W_e W_e^T]^((j-1)/N) dL1/dW(W_e) [W_e^T W_e]^((N-j)/N)``.

    ``W_e0`` is a ``(k, d)`` matrix, or layers (then ``depth`` may be ``None``; a warning gives the
    measured imbalance if they are not balanced, since Theorem 1 assumes they are). ``form`` is
    ``auto``, ``general`` or ``claim2``. Other options as :func:`gradient_flow`.

    Examples:
        >>> import numpy as np, linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> layers = linflow.init.balanced((2, 2, 2, 2), 0.5)
        >>> traj = linflow.end_to_end_flow(prob, linflow.end_to_end(layers), depth=3, t1=5.0)
        >>> traj.end_to_end.shape
        (201, 2, 2)
    """
    problem = _runs.check_problem(problem)
    W0, depth = _runs.check_end_to_end_start(problem, W_e0, depth)
    field = _runs.end_to_end_form(problem, form)
    return solve_flow(
        "end_to_end_flow", field, _runs.observe_end_to_end, problem, W0, depth, t1, ts=ts, n_save=n_save,
        solver=solver, rtol=rtol, atol=atol, dt0=dt0, max_steps=max_steps, time_unit=time_unit, eta=eta,
    )


MODIFIED_FIELDS = {1: modified_field_1, 2: modified_field_2}


def observe_modified(args, ys):
    """Observables of a modified flow, whose ``args`` are ``(problem, eta)``."""
    return _runs.observe_layers(args[0], ys)


def modified_flow(
    problem: Problem,
    layers0,
    eta,
    t1,
    *,
    order: int = 1,
    ts=None,
    n_save: int = 201,
    solver: str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    dt0: float | None = None,
    max_steps: int = 100_000,
) -> Trajectory:
    """The modified flow of gradient descent with step ``eta`` on the layers (backward error analysis).

    ``order=1``: ``dtheta/dt = -(g + (eta/2) H g)``; ``order=2`` adds
    ``-eta^2 ((1/3) H^2 g + (1/12) D^3L[g, g])``, with ``g``, ``H`` the gradient and Hessian of the
    network loss ``L^N`` (weight decay included) in the layers, through Hessian-vector products only
    (REFERENCE.md section 5). GD iterate ``k`` stays ``O(eta^(order+1))`` from this flow at
    ``t = k eta`` on a fixed horizon. Options as :func:`gradient_flow`.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> mf = linflow.modified_flow(prob, linflow.init.balanced((2, 3, 2), 0.5), eta=0.05, t1=1.0, order=2)
        >>> mf.kind, mf.status
        ('modified_flow', 'ok')
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    eta = _checks.positive("eta", eta)
    if order not in MODIFIED_FIELDS:
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    settings = FlowSettings.make(t1, ts=ts, n_save=n_save, solver=solver, rtol=rtol, atol=atol, dt0=dt0,
                                 max_steps=max_steps)
    args = (problem, jnp.asarray(eta, dtype=jnp.float64))
    out = _solve(MODIFIED_FIELDS[order], observe_modified, len(layers0), settings.solver, settings.max_steps, args,
                 layers0, *settings.arrays())
    return settings.finish("modified_flow", len(layers0), *out, eta=eta)


def gradient_flows(problem: Problem, layers0s, t1, **options) -> list[Trajectory]:
    """The layer gradient flow from a batch of starts (e.g. 32 seeds) in one compiled, vectorized solve.

    ``layers0s`` is a tuple of stacked layers (each ``(B, n_j, n_{j-1})``) or a list of layer tuples.
    Each start keeps its own adaptive steps. Options as :func:`gradient_flow`; returns one
    Trajectory per start.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([1.0, 0.5])
        >>> starts = [linflow.init.balanced((2, 2, 2), 0.3, seed=s) for s in range(3)]
        >>> [tr.status for tr in linflow.gradient_flows(prob, starts, 2.0, n_save=5)]
        ['ok', 'ok', 'ok']
    """
    problem = _runs.check_problem(problem)
    if isinstance(layers0s, list):
        checked = [_runs.check_layers(problem, ls) for ls in layers0s]
        stacked = tuple(jnp.stack(ws) for ws in zip(*checked))
    else:
        stacked = tuple(jnp.asarray(w) for w in layers0s)
        _runs.check_layers(problem, tuple(w[0] for w in stacked))
    settings = FlowSettings.make(t1, **options)
    depth = len(stacked)
    ys, observed, results, stats = _solve_starts(layer_field, _runs.observe_layers, depth, settings.solver,
                                                 settings.max_steps, problem, stacked, *settings.arrays())
    return [
        settings.finish("gradient_flow", depth, tuple(y[b] for y in ys), tuple(o[b] for o in observed), results[b],
                        {k: v[b] for k, v in stats.items()})
        for b in range(stacked[0].shape[0])
    ]
