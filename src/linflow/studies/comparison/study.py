""":func:`side_by_side` (the four runs and their distances: the main job) and :func:`compare`, which extends it with the
curvature, the modified flows, GD's diagnostics, the central flow and the regimes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import xarray as xr

from ...core import checks as _checks, runs as _runs
from ...core.catalog import COMPARE_TOLERANCES, FLOW_TOLERANCES
from ...core.measures import steps_per_save
from ...core.fields import MODIFIED_FIELDS
from ...core.problems import Problem
from ...core.settings import SolverSettings, settings_from

from .dataset import run_data, settings_attrs
from .regimes import classify_regimes
from .report import flatten_summary, summary
from .runs import curvature_along_flow, discrete_runs, modified_flow_runs, past_threshold, plain_runs, run_flows


def compare(
    problem: Problem,
    layers0,
    etas: Sequence[float],
    t1: float,
    *,
    points: int = 101,
    tol: float = 1e-2,
    orders: Sequence[int] = (1, 2),
    solver: str = "tsit5",
    rtol: float = COMPARE_TOLERANCES[0],
    atol: float = COMPARE_TOLERANCES[1],
    max_steps: int = 100_000,
    modified_max_steps: int = 20_000,
    lanczos_iters: int = 64,
    central: bool = True,
    curvature: bool = True,
    progress=None,
    settings: SolverSettings | None = None,
) -> xr.Dataset:
    """Gradient descent, Eq. 10, the flows and the modified flows for every eta, on one time grid.

    Args:
        problem: the problem.
        layers0: the initial layers (balanced for Theorem 1 to apply).
        etas: learning rates; each must divide ``t1 / (points - 1)``. They are sorted ascending.
        t1: the horizon (flow time).
        points: number of grid points.
        tol: the relative deviation that defines the breakdown eta (default 1%).
        orders: modified-flow orders to run (subset of ``(1, 2)``).
        solver: ODE solver of the flows.
        rtol: relative tolerance (tight default: the modified-flow errors are O(eta^3)).
        atol: absolute tolerance.
        max_steps: step budget of the flows.
        modified_max_steps: step budget of each modified flow.
        lanczos_iters: Lanczos steps for the Hessian extremes.
        central: run the central flow for the etas above the predicted threshold (networks of at most
            :data:`CENTRAL_MAX_PARAMS` parameters; otherwise recorded as skipped, with the reason).
        curvature: the sharpness and the first-order bound along the flow (Lanczos at every save), which the
            modified flows, the regimes and the central flow need. ``curvature=False, orders=(), central=False``
            is :func:`side_by_side`, the plain four runs (what ``linflow run`` computes).
        progress: optional callable ``progress(label)`` called after each stage.
        settings: the flows' solver options in one :class:`~linflow.SolverSettings` (instead of ``solver``,
            ``rtol``, ``atol`` and ``max_steps``).

    Returns:
        An ``xarray.Dataset`` with dims ``(eta, t)`` (see ``summary`` for the derived numbers, which
        are also stored in its attributes). Relative deviations divide by the maximum over the horizon
        of the flow's norm (layers: ``sqrt(sum_j ||W_j||^2)``; end-to-end: ``||W_e||_F``).

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> layers = linflow.init.balanced((2, 2, 2), 0.3)
        >>> ds = linflow.compare(prob, layers, [0.05, 0.025], t1=2.0, points=21)  # doctest: +SKIP
        >>> linflow.comparison.summary(ds)["order_flow"]["order"]  # about 1  # doctest: +SKIP
    """
    problem, layers0, t1, points, tol, etas, per_save = _validated(problem, layers0, etas, t1, points, tol)
    orders = _checked_orders(orders, curvature, central)
    settings = settings_from(settings, compare, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps)
    modified_settings = dataclasses.replace(settings, max_steps=_checks.integer("modified_max_steps",
                                                                                modified_max_steps, minimum=1))

    def entries(lf, ef, tick, flow_opts):
        if not curvature:
            return _plain_entries(problem, layers0, etas, per_save, t1, points, lf, ef, tick)
        return _with_curvature(problem, layers0, etas, per_save, lf, ef, tick, t1=t1, points=points, orders=orders,
                               central=central, flow_opts=flow_opts, modified_settings=modified_settings,
                               lanczos_iters=lanczos_iters)

    return _assembled(problem, layers0, etas, t1, points, tol, settings, progress, entries)


def side_by_side(
    problem: Problem,
    layers0,
    etas: Sequence[float],
    t1: float,
    *,
    points: int = 101,
    tol: float = 1e-2,
    solver: str = "tsit5",
    rtol: float = FLOW_TOLERANCES[0],
    atol: float = FLOW_TOLERANCES[1],
    max_steps: int = 100_000,
    progress=None,
    settings: SolverSettings | None = None,
    sort_etas: bool = True,
) -> xr.Dataset:
    """The four runs on one grid and their distances: the layer flow, the end-to-end flow, and GD and Eq. 10 for
    every eta (each dividing ``t1 / (points - 1)``; sorted ascending, or as given with ``sort_etas=False``), with the
    summary (measured over the ascending etas) in the attributes.

    The plain part that :func:`compare` extends (with the curvature, the modified flows, GD's diagnostics, the
    central flow and the regimes); ``linflow run`` (:func:`linflow.studies.overview.overview`) is this.
    ``progress(label)`` is called after each of its 4 stages; the solver options come as keywords or in ``settings``
    (a :class:`~linflow.SolverSettings`)."""
    given = list(etas)
    problem, layers0, t1, points, tol, etas, per_save = _validated(problem, layers0, given, t1, points, tol)
    settings = settings_from(settings, side_by_side, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps)
    ds = _assembled(problem, layers0, etas, t1, points, tol, settings, progress,
                    lambda lf, ef, tick, flow_opts: _plain_entries(problem, layers0, etas, per_save, t1, points,
                                                                   lf, ef, tick))
    return ds if sort_etas else ds.isel(eta=np.searchsorted(etas, np.asarray(given, dtype=float)))


def _validated(problem, layers0, etas, t1, points, tol):
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    t1, points, tol = _checks.positive("t1", t1), _checks.integer("points", points, minimum=2), _checks.positive("tol", tol)
    etas = _checked_etas(etas)
    per_save = np.array([steps_per_save(e, t1, points) for e in etas], dtype=np.int64)
    return problem, layers0, t1, points, tol, etas, per_save


def _plain_entries(problem, layers0, etas, per_save, t1, points, lf, ef, tick) -> dict:
    """GD (plain) and Eq. 10 per eta, and their deviations from the flows."""
    return run_data(lf, ef, plain_runs(problem, layers0, etas, per_save, t1, points, tick), {}, per_save, etas)


def _assembled(problem, layers0, etas, t1, points, tol, settings: SolverSettings, progress, entries) -> xr.Dataset:
    """The flows once, then ``entries(lf, ef, tick, flow_opts)`` (the runs per eta and what is measured on them), as
    a Dataset with the settings and the summary in its attributes."""
    tick = progress or (lambda label: None)
    ts = np.linspace(0.0, t1, points)
    flow_opts = dict(ts=ts, settings=settings)
    lf, ef, caught = run_flows(problem, layers0, t1, flow_opts)
    tick("flows")
    data = entries(lf, ef, tick, flow_opts)
    ds = xr.Dataset(data, coords={"eta": etas, "t": ts})
    ds.attrs.update(settings_attrs(problem, layers0, t1, points, tol, settings, lf, ef, caught))
    ds.attrs.update(flatten_summary(summary(ds)))
    tick("summary")
    return ds


def _with_curvature(problem, layers0, etas, per_save, lf, ef, tick, *, t1, points, orders, central, flow_opts,
                    modified_settings, lanczos_iters) -> dict:
    """The Dataset entries of the full comparison: the curvature along the flow, GD with its diagnostics and Eq. 10,
    the modified flows below the predicted threshold, GD's sharpness and the central flow above it, the regimes."""
    curv = curvature_along_flow(problem, lf, flow_opts["ts"], lanczos_iters)
    tick("curvature along the flow")
    runs = discrete_runs(problem, layers0, etas, per_save, t1, points, tick)
    stable = etas < 2.0 / float(np.max(curv["sharpness"]))  # modified flows below the predicted threshold
    modified = {}
    for order in orders:
        modified[order] = modified_flow_runs(problem, layers0, etas, stable, order, t1,
                                          dict(flow_opts, settings=modified_settings))
        tick(f"modified flow, order {order}")
    data = run_data(lf, ef, runs, modified, per_save, etas)
    data.update({name: (("t",), values) for name, values in curv.items() if name != "bound_unit"})
    data["eta_sharpness_half"] = (("eta", "t"), etas[:, None] * curv["sharpness"][None] / 2.0)
    data["bound"] = (("eta", "t"), etas[:, None] * curv["bound_unit"][None])
    data.update(past_threshold(problem, layers0, etas, ~stable, t1, flow_opts, runs, lf, central, lanczos_iters))
    tick("central flows" if central else "regimes")
    data["regime"] = (("eta",), classify_regimes(etas, stable, data))
    return data


def _checked_orders(orders, curvature: bool, central: bool) -> tuple:
    """The modified-flow orders (a subset of (1, 2)); none, and no central flow, without the curvature."""
    orders = tuple(orders)
    if any(o not in MODIFIED_FIELDS for o in orders):
        raise ValueError(f"orders must be a subset of (1, 2), got {orders}")
    if not curvature and (orders or central):
        raise ValueError(f"curvature=False leaves out the sharpness that the modified flows (orders = {orders}) and "
                         f"the central flow (central = {central}) need: pass orders=() and central=False")
    return orders


def _checked_etas(etas) -> np.ndarray:
    """Distinct positive learning rates, sorted ascending."""
    etas = np.sort(np.array([_checks.positive(f"etas[{i}]", e) for i, e in enumerate(etas)], dtype=float))
    if len(etas) == 0:
        raise ValueError("etas must hold at least one learning rate")
    if len(np.unique(etas)) != len(etas):
        raise ValueError(f"etas must be distinct, got {etas}")
    return etas
