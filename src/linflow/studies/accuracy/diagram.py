""":func:`work_precision`: every solver over a tolerance sweep against a reference (exact or a tight
Dopri8), timed, its evaluations counted; SciPy's ``solve_ivp`` on the same compiled field."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.flatten_util import ravel_pytree
from scipy.integrate import solve_ivp

from ...core import catalog as _catalog, checks as _checks, runs as _runs, exact, init
from ...core.fields import AbstractField, EndToEndFlow, LayerFlow
from ...core.integrate import SOLVERS, solve
from ...core.problems import Problem




DEFAULT_SOLVERS = _catalog.ACCURACY_SOLVERS


SCIPY_SOLVERS = _catalog.SCIPY_SOLVERS


class _Counter:
    """A mutable call count (hashed by identity, so it can be a static part of a module)."""

    def __init__(self):
        self.count = 0

    def tick(self):
        self.count += 1


class CountedField(AbstractField):
    """A field module that counts its calls (``jax.debug.callback``), for solvers without a closed-form nfev.

    One call is one evaluation of the field; for implicit solvers the Jacobian is taken by forward-mode
    autodiff of one traced call and so counts once. ``counter.count`` holds the count.
    """

    field: AbstractField
    counter: _Counter = eqx.field(static=True)

    def __init__(self, field):
        self.field, self.counter = field, _Counter()

    @property
    def kind(self) -> str:
        return self.field.kind

    @property
    def discrete_kind(self) -> str:
        return self.field.discrete_kind

    @property
    def explicit_only(self) -> str | None:
        return self.field.explicit_only

    @property
    def modelled_step(self):
        return self.field.modelled_step

    def __call__(self, t, y, args=None):
        jax.debug.callback(self.counter.tick)
        return self.field(t, y, args)

    def depth_of(self, y) -> int:
        return self.field.depth_of(y)

    def observe(self, ys):
        return self.field.observe(ys)


def _aligned_sigma0(problem: Problem, w_e0: np.ndarray, depth: int) -> np.ndarray | None:
    """``sigma0`` if ``W_e0 = U diag(sigma0) V^T`` on the target's singular vectors and a closed form applies."""
    if problem.whitened_target is None:
        return None
    if float(problem.weight_decay) > 0 and depth >= 3:
        return None
    U, s, V = init.target_svd(problem)
    sigma0 = np.diag(U.T @ w_e0 @ V)
    if np.any(sigma0 < 0) or np.abs(w_e0 - (U * sigma0) @ V.T).max() > 1e-12 * max(1.0, np.abs(w_e0).max()):
        return None
    return sigma0


def _flow_setup(problem: Problem, start, flow: str, depth):
    """``(field module, y0, depth, W_e0)`` of the chosen flow."""
    if flow == "layers":
        layers0 = _runs.check_layers(problem, start)
        return LayerFlow(problem), layers0, len(layers0), np.asarray(init.end_to_end(layers0))
    if flow == "end_to_end":
        w0, depth = _runs.check_end_to_end_start(problem, start, depth)
        return EndToEndFlow(problem, depth).for_start(w0), w0, depth, np.asarray(w0)
    raise ValueError(f"flow must be 'layers' or 'end_to_end', got {flow!r}")


def _timed(call, repeats: int) -> tuple[float, list[float], object]:
    """``(first call time, the warm times, output)``: the first call includes compilation."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(call())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return first, times, out


def _errors(w: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Final-time mean absolute error and RMS error over the saved times (NaN if the run stopped early)."""
    if w.shape != ref.shape or not np.all(np.isfinite(w)):
        return math.nan, math.nan
    return float(np.mean(np.abs(w[-1] - ref[-1]))), float(np.sqrt(np.mean((w - ref) ** 2)))


def _numerical_reference(field, y0, t1, ts) -> tuple[np.ndarray, float, str]:
    """Dopri8 at rtol 1e-13 and, as a check, Dopri8 at rtol 1e-12: the first, and their largest gap."""
    out = []
    for rtol in (1e-13, 1e-12):
        traj = solve(field, y0, t1, ts=ts, solver="dopri8", rtol=rtol, atol=rtol * 1e-3, max_steps=1_000_000)
        if not traj.ok:
            raise RuntimeError(f"the reference solve failed: {traj.message}")
        out.append(np.asarray(traj.end_to_end))
    return out[0], float(np.abs(out[0] - out[1]).max()), "dopri8 at rtol 1e-13, atol 1e-16 (checked against rtol 1e-12)"


def work_precision(
    problem: Problem,
    start,
    t1: float,
    *,
    flow: str = "layers",
    depth: int | None = None,
    solvers: Sequence[str] = DEFAULT_SOLVERS,
    scipy_solvers: Sequence[str] = SCIPY_SOLVERS,
    tolerances: Sequence[int] = (4, 5, 6, 7, 8, 9, 10),
    fixed_steps: Sequence[float] | None = None,
    reference: str = "auto",
    repeats: int = 3,
    n_times: int = 100,
    max_steps: int = 200_000,
    progress=None,
) -> xr.Dataset:
    """Work-precision data of ``solvers`` (linflow's, by name) and ``scipy_solvers`` (``solve_ivp`` methods).

    Args:
        problem: the problem.
        start: layers; or ``W_e`` or layers for ``flow='end_to_end'``.
        t1: horizon.
        flow: ``'layers'`` or ``'end_to_end'``.
        depth: the depth, for an end-to-end start given as a matrix.
        solvers: linflow solvers by name.
        scipy_solvers: ``solve_ivp`` methods.
        tolerances: exponents ``k``: ``rtol = 10^-k``, ``atol = 10^-(k+3)``.
        fixed_steps: steps of the fixed-step solvers, one per tolerance level (default
            ``t1 / (50 * 2^i)``).
        reference: ``'exact'`` (closed form; needs whitened data, p = 2 and an aligned balanced start),
            ``'numerical'`` (Dopri8 at rtol 1e-13, checked), or ``'auto'`` (exact when possible).
        repeats: timed repeats after the warm-up (the minimum is reported).
        n_times: evenly spaced times of the RMS error (100, as SciML).
        max_steps: step budget of each solve.
        progress: optional callable ``progress(label)`` called after each solver.

    Returns:
        ``xarray.Dataset`` with dims ``(solver, tolerance)`` (select a level with ``ds.sel({"tolerance": k})``:
        ``tolerance`` is also a keyword of ``.sel``): ``final_error``, ``rms_error``, ``nfev``,
        ``steps``, ``rejected``, ``wall_time``, ``status``, ``rtol``, ``atol``, ``dt``; ``compile_time``
        per solver; the reference and its error estimate in the attributes (``reference_ok`` says
        whether it is at least 100 times below the smallest error in the diagram).

    Examples:
        >>> import linflow
        >>> prob, layers, t1 = linflow.accuracy.case("exact")
        >>> wp = linflow.work_precision(prob, layers, t1, tolerances=(6, 8))  # doctest: +SKIP
        >>> print(linflow.accuracy.table(wp))  # doctest: +SKIP
    """
    problem = _runs.check_problem(problem)
    t1, repeats = _checks.positive("t1", t1), _checks.integer("repeats", repeats, minimum=1)
    n_times = _checks.integer("n_times", n_times, minimum=2)
    _check_solver_names(solvers, scipy_solvers)
    tolerances, fixed_steps = _levels(tolerances, fixed_steps, t1)
    field, y0, depth, w_e0 = _flow_setup(problem, start, flow, depth)
    ts = np.linspace(0.0, t1, n_times)
    tick = progress or (lambda label: None)
    ref, ref_err, ref_label = _reference(problem, field, y0, depth, w_e0, ts, reference)
    tick("reference")
    names = list(solvers) + [f"scipy_{s}" for s in scipy_solvers]
    rec = _Records(len(names), len(tolerances))
    for i, name in enumerate(solvers):
        _linflow_row(rec, i, field, y0, ts, name, tolerances, fixed_steps, max_steps, repeats, ref)
        tick(name)
    rhs = _numpy_field(field, y0)
    for i, method in enumerate(scipy_solvers, start=len(solvers)):
        _scipy_row(rec, i, rhs, ts, method, tolerances, repeats, ref)
        tick(f"scipy {method}")
    dims = (problem.d, *(w.shape[0] for w in y0)) if flow == "layers" else (problem.d, problem.k)
    attrs = {"flow": flow, "depth": depth, "dims": ",".join(map(str, dims)), "p": problem.p,
             "weight_decay": float(problem.weight_decay), "t1": t1, "n_times": n_times, "repeats": repeats}
    return rec.dataset(names, tolerances, ref_err, ref_label, attrs)


def _check_solver_names(solvers, scipy_solvers) -> None:
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown:
        raise ValueError(f"solvers must be among {', '.join(sorted(SOLVERS))}; unknown: {unknown}")
    bad_scipy = [s for s in scipy_solvers if s not in ("RK45", "RK23", "DOP853", "LSODA", "Radau", "BDF")]
    if bad_scipy:
        raise ValueError(f"scipy_solvers must be solve_ivp methods (RK45, RK23, DOP853, LSODA, Radau, BDF); got {bad_scipy}")


def _levels(tolerances, fixed_steps, t1) -> tuple[list[int], list[float]]:
    """Tolerance exponents and the fixed-step solvers' steps (one per level; default ``t1 / (50 * 2^i)``)."""
    tolerances = [_checks.integer(f"tolerances[{i}]", k, minimum=1) for i, k in enumerate(tolerances)]
    if fixed_steps is None:
        fixed_steps = [t1 / (50 * 2**i) for i in range(len(tolerances))]
    fixed_steps = [_checks.positive(f"fixed_steps[{i}]", h) for i, h in enumerate(fixed_steps)]
    if len(fixed_steps) != len(tolerances):
        raise ValueError(f"fixed_steps must have one step per tolerance level ({len(tolerances)}), got {len(fixed_steps)}")
    return tolerances, fixed_steps


def _reference(problem, field, y0, depth, w_e0, ts, reference) -> tuple[np.ndarray, float, str]:
    """``(W_e at ts, its error estimate, label)``: the closed form where it applies, else :func:`_numerical_reference`."""
    if reference not in ("auto", "exact", "numerical"):
        raise ValueError(f"reference must be 'auto', 'exact' or 'numerical', got {reference!r}")
    sigma0 = _aligned_sigma0(problem, w_e0, depth)
    if reference == "exact" and sigma0 is None:
        raise ValueError("reference='exact' needs whitened data, p = 2, a start aligned with the target (init.aligned) "
                         "and no weight decay for depth >= 3")
    if sigma0 is not None and reference != "numerical":
        return exact.end_to_end(problem, depth, sigma0, ts), 0.0, "exact (closed form)"
    return _numerical_reference(field, y0, float(ts[-1]), ts)


class _Records:
    """The ``(solver, tolerance)`` tables of a work-precision diagram, filled row by row."""

    FIELDS = ("final_error", "rms_error", "nfev", "steps", "rejected", "wall_time", "wall_time_max", "rtol", "atol", "dt")

    def __init__(self, n_solvers: int, n_levels: int):
        self.values = {k: np.full((n_solvers, n_levels), np.nan) for k in self.FIELDS}
        self.status = np.full((n_solvers, n_levels), "", dtype=object)
        self.compile_time = np.full(n_solvers, np.nan)

    def put(self, i: int, j: int, **values) -> None:
        for k, v in values.items():
            if k == "status":
                self.status[i, j] = v
            else:
                self.values[k][i, j] = v

    def dataset(self, names, tolerances, ref_err, ref_label, attrs) -> xr.Dataset:
        rec = self.values
        smallest = np.nanmin(np.where(rec["final_error"] > 0, rec["rms_error"], np.nan)) if np.isfinite(
            rec["rms_error"]).any() else math.nan
        data = {k: (("solver", "tolerance"), v) for k, v in rec.items()}
        data["status"] = (("solver", "tolerance"), self.status.astype(str))
        data["compile_time"] = (("solver",), self.compile_time)
        data["below_reference"] = (("solver", "tolerance"), rec["rms_error"] < 100 * ref_err)
        attrs = dict(attrs, **{
            "reference": ref_label,
            "reference_error_estimate": ref_err,
            "reference_ok": int(ref_err == 0.0 or (np.isfinite(smallest) and 100 * ref_err <= smallest)),
            "error_measure": "final_error: mean |W_e(t1) - ref|; rms_error: RMS over n_times evenly spaced times",
            "tolerance_rule": "rtol = 10^-k, atol = 10^-(k+3); fixed-step solvers use dt instead",
            "wall_time_rule": "minimum over repeats after a warm-up call (wall_time_max: their maximum); compilation "
                              "excluded (compile_time)",
        })
        return xr.Dataset(data, coords={"solver": names, "tolerance": np.asarray(tolerances)}, attrs=attrs)


def _linflow_row(rec, i, field, y0, ts, name, tolerances, fixed_steps, max_steps, repeats, ref) -> None:
    """One linflow solver over every tolerance level (or step), timed; implicit solvers' nfev counted."""
    spec = SOLVERS[name]
    counted = CountedField(field) if spec.implicit else None
    t1 = float(ts[-1])
    for j, k in enumerate(tolerances):
        rtol, atol = 10.0**-k, 10.0 ** -(k + 3)
        opts = dict(ts=ts, solver=name, max_steps=max_steps)
        opts.update(dict(rtol=rtol, atol=atol) if spec.adaptive else dict(dt0=fixed_steps[j]))
        first, times, traj = _timed(lambda: solve(field, y0, t1, **opts), repeats)
        best = min(times)
        if j == 0:
            rec.compile_time[i] = max(first - best, 0.0)
        nfev = int(traj.stats["nfev"])
        if counted is not None:
            counted.counter.count = 0
            jax.block_until_ready(solve(counted, y0, t1, **opts))
            jax.effects_barrier()
            nfev = counted.counter.count
        final, rms = _errors(traj.masked(traj.end_to_end), ref)
        rec.put(i, j, final_error=final, rms_error=rms, nfev=nfev, steps=int(traj.stats["num_steps"]),
                rejected=int(traj.stats["num_rejected_steps"]), wall_time=best, wall_time_max=max(times),
                status=traj.status,
                rtol=rtol if spec.adaptive else np.nan, atol=atol if spec.adaptive else np.nan,
                dt=np.nan if spec.adaptive else fixed_steps[j])


def _numpy_field(field, y0):
    """``(f(t, y), its Jacobian, y -> W_e, flat y0)`` on flat NumPy vectors, compiled, for ``solve_ivp``."""
    flat0, unravel = ravel_pytree(y0)
    f_flat = jax.jit(lambda y: ravel_pytree(field(0.0, unravel(y), None))[0])
    jac_flat = jax.jit(jax.jacfwd(lambda y: ravel_pytree(field(0.0, unravel(y), None))[0]))
    w_e_of = jax.jit(jax.vmap(lambda y: field.observe(jax.tree_util.tree_map(lambda a: a[None], unravel(y)))[0][0]))
    f_np = lambda t, y: np.asarray(f_flat(y))  # noqa: E731
    jac_np = lambda t, y: np.asarray(jac_flat(y))  # noqa: E731
    y0_np = np.asarray(flat0)
    f_np(0.0, y0_np), jac_np(0.0, y0_np)  # compile outside the timings
    return f_np, jac_np, w_e_of, y0_np


def _scipy_row(rec, i, rhs, ts, method, tolerances, repeats, ref) -> None:
    """One ``solve_ivp`` method over every tolerance level, timed (its exact Jacobian for the implicit ones)."""
    f_np, jac_np, w_e_of, y0_np = rhs
    rec.compile_time[i] = 0.0
    for j, k in enumerate(tolerances):
        rtol, atol = 10.0**-k, 10.0 ** -(k + 3)
        kwargs = {"jac": jac_np} if method in ("LSODA", "Radau", "BDF") else {}
        times, sol = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sol = solve_ivp(f_np, (0.0, ts[-1]), y0_np, method=method, t_eval=ts, rtol=rtol, atol=atol, **kwargs)
            times.append(time.perf_counter() - t0)
        best = min(times)
        ok = sol.success and sol.y.shape[1] == len(ts)
        w = np.asarray(w_e_of(jnp.asarray(sol.y.T))) if ok else np.full_like(ref, np.nan)
        final, rms = _errors(w, ref)
        rec.put(i, j, final_error=final, rms_error=rms, nfev=sol.nfev, wall_time=best, wall_time_max=max(times),
                rtol=rtol, atol=atol,
                status="ok" if ok else f"failed: {sol.message}")
