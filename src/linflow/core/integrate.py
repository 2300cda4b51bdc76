"""Continuous runs: the layer gradient flow, the end-to-end flow and the modified flows, integrated with diffrax.

:func:`solve` is the one pure core: it integrates any field module (``field(t, y, args)`` with an
``observe`` method, :mod:`linflow.fields`) and returns a :class:`~linflow.Trajectory`, all inside one
compiled computation. ``t1``, the save times, the tolerances, the step, the data and the start are
traced arrays, so new values never recompile (docs/math.md section 7), and every public run can be
called under ``jax.jit``, batched with ``jax.vmap`` and differentiated with ``jax.grad`` (diffrax's
default adjoint, recursive checkpointing, backpropagates through the solver's steps).

Solvers are names of :data:`SOLVERS` or diffrax solver objects; step-size controllers are diffrax
objects (default: a PID controller with ``rtol``, ``atol`` for adaptive solvers, constant steps
``dt0`` otherwise); all of them together are one :class:`~linflow.SolverSettings`
(:mod:`linflow.core.settings`). Failures (``max_steps``, a non-finite state, an implicit solver that does not
converge) are reported in :attr:`Trajectory.status` with the time where they happened.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import checks as _checks, runs as _runs
from .settings import SOLVERS, SolverSettings, SolverSpec, flat_solve, result_code, settings_from, solver_stats
from .parallel import spread_calls
from .fields import MODIFIED_FIELDS, AbstractField, EndToEndFlow, LayerFlow, ModifiedFlow
from .problems import Problem
from .trajectory import STATUSES, Trajectory

__all__ = [
    "SolverSettings",
    "SolverSpec",
    "SOLVERS",
    "result_code",
    "solve",
    "gradient_flow",
    "gradient_flows",
    "end_to_end_flow",
    "modified_flow",
]


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
def _solve(field, y0, t1, ts, settings: SolverSettings, eta) -> Trajectory:
    """One diffrax solve of ``dy/dt = field(t, y, None)`` saved at ``ts``, as a Trajectory (compiled)."""
    sol, unravel = flat_solve(field, y0, jnp.zeros_like(t1), t1, diffrax.SaveAt(ts=ts), settings)
    ys = jax.vmap(unravel)(sol.ys)
    # saves at t = 0 hold the start, known exactly, even when no step was accepted (diffrax then saves nothing)
    start = jnp.asarray(ts) <= 0
    ys = jax.tree_util.tree_map(lambda y, y_0: jnp.where(start.reshape((-1,) + (1,) * (y.ndim - 1)), y_0[None], y),
                                ys, y0)
    observed = field.observe(ys)
    stop = _runs.rows_reached((ys, observed))
    code = result_code(sol.result)
    code = jnp.where((code == 0) & (stop < ts.shape[0]), STATUSES.index("nonfinite"), code)
    kept, extras = field.split(ys)
    return _runs.trajectory(field.kind, field.depth_of(y0), ts, kept, observed, code, stop, extras=extras,
                            stats=solver_stats(sol, settings), eta=eta, t1=t1, solver=settings.name)


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
    settings: SolverSettings | None = None,
) -> Trajectory:
    """Integrate ``dy/dt = field(t, y, None)`` from ``y0`` on ``[0, t1]``: the core of every continuous run.

    ``field`` is an :class:`~linflow.fields.AbstractField`: a module of :mod:`linflow.fields`
    (:class:`~linflow.LayerFlow`, :class:`~linflow.EndToEndFlow`, :class:`~linflow.ModifiedFlow`) or a subclass of
    its own (``__call__(t, y, args)``, ``observe(ys) -> (W_e, loss, imbalance or None)``, ``depth_of(y)``, a class
    attribute ``kind``). ``y0`` is not validated here (the public runs do it). Options as
    :func:`gradient_flow`; the solver options come either as keywords or in one :class:`SolverSettings`.
    """
    if not isinstance(field, AbstractField):
        raise TypeError(f"field must be a linflow.fields.AbstractField (LayerFlow, EndToEndFlow, ModifiedFlow or a "
                        f"subclass with __call__(t, y, args), observe, depth_of and kind); got {type(field).__name__}")
    settings = settings_from(settings, solve, solver=solver, stepsize_controller=stepsize_controller, rtol=rtol,
                             atol=atol, dt0=dt0, max_steps=max_steps)
    t1, ts = time_grid(t1, ts, n_save, time_unit, eta)
    if isinstance(field, EndToEndFlow) and field.rank is None:
        field = field.for_start(y0)  # a rank-deficient start keeps its rank (docs/math.md section 3)
    eta_out = field.modelled_step
    if eta_out is None and time_unit == "iterations":
        eta_out = eta
    eta_out = None if eta_out is None else _checks.f64(eta_out)
    return _solve(field, y0, t1, ts, settings, eta_out)


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
        settings: a :class:`~linflow.SolverSettings` holding ``solver``, ``rtol``, ``atol``, ``dt0``, ``max_steps``
            and ``stepsize_controller`` at once (then those keywords are not given).
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


def end_to_end_flow(problem: Problem, W_e0, depth: int | None, t1, *, form: str = "auto", state: str = "dense",
                    **options) -> Trajectory:
    """End-to-end flow of ACH18 Theorem 1 (Claim 2 form when ``k = 1`` and ``form='auto'``).

    ``dW_e/dt = -lambda N W_e - sum_j [W_e W_e^T]^((j-1)/N) dL1/dW(W_e) [W_e^T W_e]^((N-j)/N)``.

    ``W_e0`` is a ``(k, d)`` matrix, or layers (then ``depth`` may be ``None``; a warning gives the
    measured imbalance if they are not balanced, since Theorem 1 assumes they are). ``form`` is
    ``auto``, ``general`` or ``claim2``. ``state='root'`` integrates ``Theta = U diag(s^(1/N)) V^T`` instead of ``W_e``
    (:class:`~linflow.EndToEndFlow`): use it from a small start, where the dense state loses the weak modes'
    relative accuracy (explicit solvers).
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
    field = EndToEndFlow(problem, depth, form, state).for_start(W0)
    return solve(field, field.start(W0), t1, **options)


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
    _runs.flow_time_only("modified_flow", options)
    return solve(ModifiedFlow(problem, _checks.f64(eta), order), layers0, t1, **options)


for _f in (gradient_flow, end_to_end_flow, modified_flow):
    _f.__doc__ = _f.__doc__.replace("{options}", _FLOW_OPTIONS)


def gradient_flows(problem: Problem, layers0s, t1, **options) -> list[Trajectory]:
    """The layer gradient flow from a batch of starts: ``jax.vmap`` of :func:`gradient_flow` spread over the cores
    (:func:`linflow.core.parallel.spread`; each share of the batch stops with its own slowest member), one Trajectory
    each.

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
    return spread_calls(_flow_member, stacked, problem, t1, **options).unstack()


def _flow_member(layers0, problem, t1, **options):
    return gradient_flow(problem, layers0, t1, **options)
