"""How a continuous run is integrated: the solvers by name, :class:`SolverSettings` (solver, tolerances, step, budget,
controller; defaulted here and nowhere else) and :func:`flat_solve`, the one call of ``diffrax.diffeqsolve`` that every
flow makes (the layer, end-to-end and modified flows, the central flow's phases, the accuracy study's step record).

A :class:`SolverSettings` is built once (from keywords, the command line or a sweep's TOML) and passed down unchanged
to the compiled solve. Its tolerances and step are float64 arrays, so a new value never recompiles (docs/math.md
section 7); the solver's name and the step budget are static.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from . import checks as _checks
from .catalog import FLOW_TOLERANCES
from .stage_sums import stage_sums_in_place
from .trajectory import STATUSES

__all__ = ["SolverSpec", "SOLVERS", "SolverSettings", "result_code", "resolve_solver", "require_adaptive",
           "require_explicit", "with_newton", "settings_from", "flat_solve", "solver_stats"]


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
    """linflow's status code (index into :data:`~linflow.core.trajectory.STATUSES`) of a diffrax result (traced)."""
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


def _tolerance(name: str, default=None):
    """The converter of a tolerance field: a float64 array (traced: a new value never recompiles); ``None`` is the
    default."""
    def convert(value):
        value = default if value is None else value
        return None if value is None else _checks.f64(_checks.positive(name, value))
    return convert


def _controller(value):
    """A user's controller, its PID tolerances as float64 arrays (traced: a new value never recompiles)."""
    if value is None:
        return None
    if not isinstance(value, diffrax.AbstractStepSizeController):
        raise TypeError(f"stepsize_controller must be a diffrax step-size controller, got {type(value).__name__}")
    if isinstance(value, diffrax.PIDController):
        return eqx.tree_at(lambda c: (c.rtol, c.atol), value, (_checks.f64(value.rtol), _checks.f64(value.atol)))
    return value


class SolverSettings(eqx.Module):
    """How a continuous run is integrated, in one object (like diffrax's option classes).

    Attributes:
        solver: a name of :data:`SOLVERS` or a diffrax solver object (default ``"tsit5"``).
        rtol, atol: tolerances of the default controller, a ``PIDController`` (adaptive solvers; default
            :data:`~linflow.core.catalog.FLOW_TOLERANCES`, 1e-8 and 1e-10).
        dt0: the step of a fixed-step solver (required there), or an adaptive solver's first step (default automatic).
        max_steps: the step budget; reaching it is reported as ``status == "max_steps"`` (default 100,000).
        stepsize_controller: a diffrax controller instead of the default one (then ``rtol``/``atol`` are not given).

    Examples:
        >>> import linflow
        >>> s = linflow.SolverSettings("dopri8", rtol=1e-12, atol=1e-14)
        >>> s.name, float(s.tolerances[0])
        ('dopri8', 1e-12)
    """

    solver: str | diffrax.AbstractSolver = eqx.field(default="tsit5", static=True)
    rtol: jax.Array = eqx.field(default=FLOW_TOLERANCES[0], converter=_tolerance("rtol", FLOW_TOLERANCES[0]))
    atol: jax.Array = eqx.field(default=FLOW_TOLERANCES[1], converter=_tolerance("atol", FLOW_TOLERANCES[1]))
    dt0: jax.Array | None = eqx.field(default=None, converter=_tolerance("dt0"))
    max_steps: int = eqx.field(default=100_000, static=True, converter=lambda v: _checks.integer("max_steps", v, minimum=1))
    stepsize_controller: diffrax.AbstractStepSizeController | None = eqx.field(default=None, converter=_controller)

    def __check_init__(self):
        _, name, _ = resolve_solver(self.solver)
        given = [v for v, d in zip((self.rtol, self.atol), FLOW_TOLERANCES) if _checks.is_traced(v) or v != d]
        if self.stepsize_controller is not None and given:
            raise ValueError("pass rtol/atol either to the stepsize_controller or to the run, not both")
        if self.stepsize_controller is None and not self.adaptive and self.dt0 is None:
            raise ValueError(f"solver {name!r} takes fixed steps: pass dt0 (the step size) > 0")

    @property
    def name(self) -> str:
        """The solver's name (a key of :data:`SOLVERS`, or the class name of another diffrax solver)."""
        return resolve_solver(self.solver)[1]

    @property
    def spec(self) -> SolverSpec | None:
        return resolve_solver(self.solver)[2]

    @property
    def adaptive(self) -> bool:
        return _is_adaptive(self.solver)

    @property
    def tolerances(self) -> tuple:
        """``(rtol, atol)`` of the default controller, or of a user's PID controller;
        ``(None, None)`` for other controllers and fixed steps."""
        if self.stepsize_controller is not None:
            return getattr(self.stepsize_controller, "rtol", None), getattr(self.stepsize_controller, "atol", None)
        return (self.rtol, self.atol) if self.adaptive else (None, None)

    def controller(self) -> diffrax.AbstractStepSizeController:
        """The step-size controller (built inside the compiled call: a ``PIDController`` costs ~75 us in Python)."""
        if self.stepsize_controller is not None:
            return self.stepsize_controller
        if self.adaptive:
            rtol, atol = self.tolerances
            return diffrax.PIDController(rtol=rtol, atol=atol, norm=error_norm)
        return diffrax.ConstantStepSize()


def error_norm(x) -> jax.Array:
    r"""The step controller's error norm: the RMS norm (diffrax's default), with NaN read as $+\infty$.

    A trial step too long for a stiff start overflows its stages, and its error estimate is ``inf - inf = NaN``.
    diffrax's ``PIDController`` turns a NaN error into a NaN step size and then rejects every step to ``max_steps``
    (measured: a depth-3 scalar network from weights (20.4, -25.6, 4.18), 100,000 rejected steps and no step
    accepted); an infinite error is a rejection with the smallest factor, after which the step shrinks and the run
    goes on (2,653 accepted steps to ``t = 1``, tests/test_properties.py)."""
    import optimistix as optx

    norm = optx.rms_norm(x)
    return jnp.where(jnp.isnan(norm), jnp.inf, norm)


def with_newton(solver, rtol: float = 1e-6, atol: float = 1e-8, *, linear_solver=None,
                gauss_newton=None) -> diffrax.AbstractSolver:
    """An implicit solver (a name of :data:`SOLVERS` or an object) whose stage equations are solved by Newton's method
    (``optimistix.Newton``) instead of diffrax's default chord iteration, which reuses one Jacobian per step. On stiff
    flows whose Jacobian turns within a step the chord iteration fails and the step is rejected: measured on the
    layer flow from a small start (depth 4, alpha = 1e-8, to the last escape) 2,843 steps against 476 with Newton,
    and on Razin & Cohen's 2 x 2 polar flow to t = 1e9 9,528 (half rejected) against 240. ``rtol``, ``atol`` stop
    the stage solves; keep them looser than the step controller's (which judges the step's accuracy): stage
    tolerances of 1e-10 that rounding cannot reach on the polar flow at depth 3 made every step fail past
    t = 2e6 (measured), 1e-6 reaches t = 1e12 in 447 steps with the same states to 1e-7.

    ``linear_solver``: a lineax solver for Newton's linear systems (default: lineax's, which forms the Jacobian).
    ``lineax.GMRES`` never forms it (Jacobian-vector products only): on large states, where the Jacobian does not fit
    or costs one JVP per coordinate, the way in (the ACHL19 completion flows, :mod:`linflow.paper.achl19`).

    ``gauss_newton``: ``(problem, layers)``, a ``CompletionProblem`` and the layers of the flow's start: each linear
    solve preconditioned by the Gauss-Newton inverse of the layer flow's stage (:mod:`linflow.core.stages`; needs an
    iterative ``linear_solver``)."""
    import optimistix as optx

    if not _is_implicit(solver):
        raise ValueError(f"with_newton needs an implicit solver; {resolve_solver(solver)[1]!r} is explicit")
    if gauss_newton is not None:
        from .stages import completion_newton

        if linear_solver is None:
            raise ValueError("with_newton: gauss_newton preconditions an iterative linear_solver (lineax.GMRES); "
                             "none was given")
        newton = completion_newton(*gauss_newton, rtol, atol, linear_solver)
    else:
        newton = optx.Newton(rtol=rtol, atol=atol) if linear_solver is None else optx.Newton(
            rtol=rtol, atol=atol, linear_solver=linear_solver)
    return eqx.tree_at(lambda s: s.root_finder, resolve_solver(solver)[0], newton)


def require_adaptive(who: str, solver) -> None:
    """Raise where ``solver`` (a name of :data:`SOLVERS` or a diffrax solver object) takes fixed steps: ``who``
    needs an adaptive one (its step record, or its events located on the dense output)."""
    if not _is_adaptive(solver):
        raise ValueError(f"{who} needs an adaptive solver; solver {resolve_solver(solver)[1]!r} takes fixed steps")


def require_explicit(who: str, solver) -> None:
    """Raise where ``solver`` is implicit (its Newton iterations need a Jacobian that ``who`` cannot give)."""
    if _is_implicit(solver):
        raise ValueError(f"{who} needs an explicit solver; solver {resolve_solver(solver)[1]!r} is implicit")


def _is_implicit(solver) -> bool:
    solver_object, _, spec = resolve_solver(solver)
    return spec.implicit if spec is not None else isinstance(solver_object, diffrax.AbstractImplicitSolver)


def _is_adaptive(solver) -> bool:
    solver_object, _, spec = resolve_solver(solver)
    return spec.adaptive if spec is not None else isinstance(solver_object, diffrax.AbstractAdaptiveSolver)


def _same(value, default) -> bool:
    return value is default or (isinstance(value, (str, int, float)) and not isinstance(value, bool)
                                and isinstance(default, type(value)) and value == default)


def settings_from(settings: SolverSettings | None, function, **options) -> SolverSettings:
    """``settings`` when given (then every keyword in ``options`` must be at ``function``'s default: a run takes its
    solver options in one place), else ``SolverSettings(**options)``."""
    if settings is None:
        return SolverSettings(**options)
    if not isinstance(settings, SolverSettings):
        raise TypeError(f"settings must be a linflow.SolverSettings, got {type(settings).__name__}")
    defaults = inspect.signature(function).parameters
    clash = sorted(k for k, v in options.items() if not _same(v, defaults[k].default))
    if clash:
        raise ValueError(f"pass {', '.join(clash)} either in settings or as keywords, not both")
    return settings


def flat_solve(field, y0, t0, t1, saveat: diffrax.SaveAt, settings: SolverSettings, *, event=None):
    """``diffrax.diffeqsolve`` of ``dy/dt = field(t, y, None)`` from the pytree ``y0``, on the raveled state (one array
    per stage instead of one per layer: less per-step overhead on small networks, benchmarks/README.md).

    Call inside a compiled function. Returns ``(solution, unravel)``: the solution's states are flat vectors. A field
    with an ``explicit_only`` reason (the end-to-end flow's root state) refuses an implicit solver here, for every
    run at once."""
    reason = field.explicit_only
    if reason:
        require_explicit(reason, settings.solver)
    flat0, unravel = ravel_pytree(y0)
    term = diffrax.ODETerm(lambda t, y, a: ravel_pytree(field(t, unravel(y), a))[0])
    with stage_sums_in_place():  # the stage sums without a transposed copy of the stages (core/stage_sums.py)
        sol = diffrax.diffeqsolve(term, resolve_solver(settings.solver)[0], t0=t0, t1=t1, dt0=settings.dt0, y0=flat0,
                                  saveat=saveat, stepsize_controller=settings.controller(),
                                  max_steps=settings.max_steps, throw=False, event=event)
    return sol, unravel


def solver_stats(sol, settings: SolverSettings) -> dict:
    """``num_steps``, ``num_accepted_steps``, ``num_rejected_steps`` and ``nfev`` (vector-field evaluations; -1 where
    the solver's cost per step is not known) of a solution."""
    stats = {k: jnp.asarray(sol.stats[k]) for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
    spec = settings.spec
    stats["nfev"] = jnp.asarray(-1 if spec is None else spec.nfev(stats["num_steps"]))
    return stats
