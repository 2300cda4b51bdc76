"""Continuous runs: the layer gradient flow, the end-to-end flow and the modified flows, integrated with diffrax.

:func:`solve` is the one pure core: it integrates any field module (``field(t, y, args)`` with an
``observe`` method, :mod:`linflow.fields`) and returns a :class:`~linflow.Trajectory`, all inside one
compiled computation. ``t1``, the save times, the tolerances, the step, the data and the start are
traced arrays, so new values never recompile (docs/math.md section 7), and every public run can be
called under ``jax.jit``, batched with ``jax.vmap`` and differentiated with ``jax.grad`` (diffrax's
default adjoint, recursive checkpointing, backpropagates through the solver's steps).

Solvers are names of :data:`SOLVERS` or diffrax solver objects; step-size controllers are diffrax
objects (default: a PID controller with ``rtol``, ``atol`` for adaptive solvers, constant steps
``dt0`` otherwise). Failures (``max_steps``, a non-finite state, an implicit solver that does not
converge) are reported in :attr:`Trajectory.status` with the time where they happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import checks as _checks, runs as _runs
from .catalog import FLOW_TOLERANCES
from .fields import MODIFIED_FIELDS, EndToEndFlow, LayerFlow, ModifiedFlow
from .problems import Problem
from .trajectory import STATUSES, Trajectory

__all__ = [
    "SolverSpec",
    "SOLVERS",
    "result_code",
    "solve",
    "gradient_flow",
    "gradient_flows",
    "end_to_end_flow",
    "modified_flow",
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

    def nfev(self, num_steps):
        """Vector-field evaluations for ``num_steps`` attempted steps (-1 where unknown; traced-friendly)."""
        if self.evals_per_step is None:
            return -1 + 0 * num_steps
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

_NAME_OF_TYPE = {spec.make: name for name, spec in SOLVERS.items()}

# diffrax results -> linflow's codes (an index into STATUSES); anything else is "failed"
_RESULT_CODES = (
    ("successful", "ok"),
    ("max_steps_reached", "max_steps"),
    ("max_steps_rejected", "max_steps"),
    ("dt_min_reached", "dt_min"),
    ("nonfinite", "nonfinite"),
    ("nonlinear_max_steps_reached", "implicit_failure"),
    ("nonlinear_divergence", "implicit_failure"),
    ("singular", "implicit_failure"),
)


def result_code(result) -> jax.Array:
    """linflow's status code (index into :data:`~linflow.trajectory.STATUSES`) of a diffrax result (traced)."""
    pairs = [(getattr(diffrax.RESULTS, d), STATUSES.index(s)) for d, s in _RESULT_CODES if hasattr(diffrax.RESULTS, d)]
    return jnp.select([result == item for item, _ in pairs], [c for _, c in pairs], STATUSES.index("failed"))


def resolve_solver(solver) -> tuple[diffrax.AbstractSolver, str, SolverSpec | None]:
    """``(solver object, name, spec or None)`` from a name of :data:`SOLVERS` or a diffrax solver object."""
    if isinstance(solver, str):
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(sorted(SOLVERS))} or a diffrax solver; got {solver!r}")
        return SOLVERS[solver].make(), solver, SOLVERS[solver]
    if isinstance(solver, diffrax.AbstractSolver):
        name = _NAME_OF_TYPE.get(type(solver), type(solver).__name__)
        return solver, name, SOLVERS.get(name)
    raise TypeError(f"solver must be a name ({', '.join(sorted(SOLVERS))}) or a diffrax solver object, "
                    f"got {type(solver).__name__}")


def _is_adaptive(solver, spec) -> bool:
    return spec.adaptive if spec is not None else isinstance(solver, diffrax.AbstractAdaptiveSolver)


def step_controller(solver, spec, name, stepsize_controller, rtol, atol, dt0, *, build: bool = True):
    """The step-size controller, with its tolerances as traced arrays (new values never recompile).

    With ``build=False`` the default controller of an adaptive solver is returned as its tolerances
    ``(rtol, atol)``, for :func:`_solve` to build inside the compiled call (building a ``PIDController`` in
    Python costs a warm call about 75 us)."""
    if stepsize_controller is not None:
        if rtol is not None or atol is not None:
            raise ValueError("pass rtol/atol either to the stepsize_controller or to the run, not both")
        if not isinstance(stepsize_controller, diffrax.AbstractStepSizeController):
            raise TypeError("stepsize_controller must be a diffrax step-size controller, got "
                            f"{type(stepsize_controller).__name__}")
        if isinstance(stepsize_controller, diffrax.PIDController):
            return eqx.tree_at(lambda c: (c.rtol, c.atol), stepsize_controller,
                               (_checks.f64(stepsize_controller.rtol), _checks.f64(stepsize_controller.atol)))
        return stepsize_controller
    if _is_adaptive(solver, spec):
        rtol = _checks.positive("rtol", FLOW_TOLERANCES[0] if rtol is None else rtol)
        atol = _checks.positive("atol", FLOW_TOLERANCES[1] if atol is None else atol)
        tolerances = (_checks.f64(rtol), _checks.f64(atol))
        return diffrax.PIDController(rtol=tolerances[0], atol=tolerances[1]) if build else tolerances
    if dt0 is None:
        raise ValueError(f"solver {name!r} takes fixed steps: pass dt0 (the step size) > 0")
    return diffrax.ConstantStepSize()


def time_grid(t1, ts, n_save, time_unit, eta):
    """Validated ``(t1, ts)`` in flow time, from either convention (value checks on concrete inputs only)."""
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
        if _checks.is_traced(t1):
            return _checks.f64(t1), jnp.linspace(0.0, t1, n_save)
        return _checks.f64(t1), np.linspace(0.0, t1, n_save)
    ts = _checks.finite_matrix("ts", ts, ndim=1)
    if time_unit == "iterations":
        ts = ts * eta
    if not (_checks.is_traced(ts) or _checks.is_traced(t1)):
        if np.any(np.diff(ts) < 0) or ts[0] < 0 or ts[-1] > t1 * (1 + 1e-12):
            raise ValueError(f"ts must be non-decreasing within [0, t1] = [0, {t1:g}]; got [{ts[0]:g} ... {ts[-1]:g}]")
    if _checks.is_traced(ts) or _checks.is_traced(t1):
        return _checks.f64(t1), jnp.minimum(_checks.f64(ts), t1)
    return _checks.f64(t1), np.minimum(ts, t1)


@eqx.filter_jit
def _solve(field, y0, t1, ts, solver, controller, dt0, max_steps: int, name: str, eta) -> Trajectory:
    """One diffrax solve of ``dy/dt = field(t, y, None)`` saved at ``ts``, as a Trajectory (compiled).

    The state is raveled into one flat vector for the solver: one array per stage instead of one per
    layer, which cuts the solver's per-step overhead on small networks (benchmarks/README.md).
    """
    if isinstance(controller, tuple):  # the default controller's (rtol, atol): see step_controller(build=False)
        controller = diffrax.PIDController(rtol=controller[0], atol=controller[1])
    flat0, unravel = ravel_pytree(y0)
    term = diffrax.ODETerm(lambda t, y, a: ravel_pytree(field(t, unravel(y), a))[0])
    sol = diffrax.diffeqsolve(term, solver, t0=jnp.zeros_like(t1), t1=t1, dt0=dt0, y0=flat0,
                              saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller, max_steps=max_steps,
                              throw=False)
    ys = jax.vmap(unravel)(sol.ys)
    observed = field.observe(ys)
    stop = _runs.rows_reached((ys, observed))
    code = result_code(sol.result)
    code = jnp.where((code == 0) & (stop < ts.shape[0]), STATUSES.index("nonfinite"), code)
    stats = {k: jnp.asarray(sol.stats[k]) for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
    spec = SOLVERS.get(name)
    stats["nfev"] = jnp.asarray(-1 if spec is None else spec.nfev(stats["num_steps"]))
    return _runs.trajectory(field.kind, field.depth_of(y0), ts, ys, observed, code, stop, stats=stats, eta=eta, t1=t1,
                            solver=name)


def solve(
    field,
    y0,
    t1,
    *,
    ts=None,
    n_save: int = 201,
    solver="tsit5",
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    dt0: float | None = None,
    max_steps: int = 100_000,
    time_unit: str = "flow",
    eta=None,
) -> Trajectory:
    """Integrate ``dy/dt = field(t, y, None)`` from ``y0`` on ``[0, t1]``: the core of every continuous run.

    ``field`` is a module of :mod:`linflow.fields` (:class:`~linflow.LayerFlow`,
    :class:`~linflow.EndToEndFlow`, :class:`~linflow.ModifiedFlow`) or any ``equinox.Module`` with
    ``__call__(t, y, args)``, ``observe(ys) -> (W_e, loss, imbalance or None)``, ``depth_of(y)`` and a
    class attribute ``kind``. ``y0`` is not validated here (the public runs do it). Options as
    :func:`gradient_flow`.
    """
    solver, name, spec = resolve_solver(solver)
    t1, ts = time_grid(t1, ts, n_save, time_unit, eta)
    if dt0 is not None:
        dt0 = _checks.f64(_checks.positive("dt0", dt0))
    controller = step_controller(solver, spec, name, stepsize_controller, rtol, atol, dt0, build=False)
    max_steps = _checks.integer("max_steps", max_steps, minimum=1)
    eta_out = getattr(field, "eta", None)
    if eta_out is None and time_unit == "iterations":
        eta_out = eta
    eta_out = None if eta_out is None else _checks.f64(eta_out)
    return _solve(field, y0, t1, ts, solver, controller, dt0, max_steps, name, eta_out)


_FLOW_OPTIONS = """
    Options (all runs):
        ts: save times within ``[0, t1]`` (default ``n_save`` evenly spaced points, ``n_save`` = 201).
        solver: a name of :data:`SOLVERS` or a diffrax solver object (``diffrax.Tsit5()``); the fixed-step
            ones (``euler``, ``heun``, ``midpoint``, ``ralston``) need ``dt0``.
        stepsize_controller: a diffrax controller (default: ``PIDController(rtol, atol)`` for adaptive
            solvers, ``ConstantStepSize()`` otherwise); give tolerances to it or to the run, not both.
        rtol, atol: tolerances of the default controller (1e-8, 1e-10).
        dt0: fixed step (fixed-step solvers) or initial step (adaptive; default: automatic).
        max_steps: step budget; reaching it is reported as ``status == "max_steps"``.
        time_unit: ``'flow'`` (default) or ``'iterations'``: then ``t1`` and ``ts`` count GD iterations of
            step ``eta`` (ACH18's convention); the result is always in flow time ``t = k * eta``.
        eta: the learning rate that converts iterations to flow time (``time_unit='iterations'``).
"""


def gradient_flow(problem: Problem, layers0, t1, **options) -> Trajectory:
    """Gradient flow of every layer, ``dW_j/dt = -lambda W_j - dL^N/dW_j``, on ``[0, t1]``.

    Args:
        problem: the :class:`~linflow.Problem`.
        layers0: initial layers ``(W_1, ..., W_N)``.
        t1: final time (flow time, or iterations with ``time_unit='iterations'`` and ``eta``).
        **options: see below.

    Works under ``jax.jit``, ``jax.vmap`` and ``jax.grad`` (in the start, the data, ``t1``).
    {options}
    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> traj = linflow.gradient_flow(prob, linflow.init.balanced((2, 3, 2), 0.1), t1=5.0)
        >>> traj.status
        'ok'
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    return solve(LayerFlow(problem), layers0, t1, **options)


def end_to_end_flow(problem: Problem, W_e0, depth: int | None, t1, *, form: str = "auto", **options) -> Trajectory:
    """End-to-end flow of ACH18 Theorem 1 (Claim 2 form when ``k = 1`` and ``form='auto'``).

    ``dW_e/dt = -lambda N W_e - sum_j [W_e W_e^T]^((j-1)/N) dL1/dW(W_e) [W_e^T W_e]^((N-j)/N)``.

    ``W_e0`` is a ``(k, d)`` matrix, or layers (then ``depth`` may be ``None``; a warning gives the
    measured imbalance if they are not balanced, since Theorem 1 assumes they are). ``form`` is
    ``auto``, ``general`` or ``claim2``.
    {options}
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
    return solve(EndToEndFlow(problem, depth, form), W0, t1, **options)


def modified_flow(problem: Problem, layers0, eta, t1, *, order: int = 1, **options) -> Trajectory:
    """The modified flow of gradient descent with step ``eta`` on the layers (backward error analysis).

    ``order=1``: ``dtheta/dt = -(g + (eta/2) H g)``; ``order=2`` adds
    ``-eta^2 ((1/3) H^2 g + (1/12) D^3L[g, g])``, with ``g``, ``H`` the gradient and Hessian of the
    network loss ``L^N`` (weight decay included) in the layers, through Hessian-vector products only
    (docs/math.md section 5). GD iterate ``k`` stays ``O(eta^(order+1))`` from this flow at
    ``t = k eta`` on a fixed horizon.
    {options}
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
    if "time_unit" in options:
        raise TypeError("modified_flow runs in flow time (t = k * eta); time_unit is not an option here")
    return solve(ModifiedFlow(problem, _checks.f64(eta), order), layers0, t1, **options)


for _f in (gradient_flow, end_to_end_flow, modified_flow):
    _f.__doc__ = _f.__doc__.replace("{options}", _FLOW_OPTIONS)


def gradient_flows(problem: Problem, layers0s, t1, **options) -> list[Trajectory]:
    """The layer gradient flow from a batch of starts: ``jax.vmap`` of :func:`gradient_flow`, one Trajectory each.

    ``layers0s`` is a tuple of stacked layers (each ``(B, n_j, n_{j-1})``) or a list of layer tuples.
    Each start keeps its own adaptive steps.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([1.0, 0.5])
        >>> starts = [linflow.init.balanced((2, 2, 2), 0.3, seed=s) for s in range(3)]
        >>> [tr.status for tr in linflow.gradient_flows(prob, starts, 2.0, n_save=5)]
        ['ok', 'ok', 'ok']
    """
    problem = _runs.check_problem(problem)
    if isinstance(layers0s, list):
        stacked = tuple(jnp.stack(ws) for ws in zip(*[_runs.check_layers(problem, ls) for ls in layers0s]))
    else:
        stacked = tuple(jnp.asarray(w, jnp.float64) for w in layers0s)
        _runs.check_layers(problem, tuple(w[0] for w in stacked))
    return jax.vmap(lambda ls: gradient_flow(problem, ls, t1, **options))(stacked).unstack()
