"""The four trajectories of one run side by side: layer flow, end-to-end flow, GD, end-to-end descent.

:func:`overview` is what ``linflow run`` computes: the plain side-by-side that :func:`linflow.compare` extends
(:func:`linflow.studies.comparison.side_by_side`; no curvature, no modified flows, no central flow, so it never
runs the full comparison): the continuous runs once, the discrete runs for
each learning rate, all saved on one time grid, and the distances between them, as an
``xarray.Dataset``; :func:`summary` and :func:`summary_table` are its numbers and its printed table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..core.catalog import FLOW_TOLERANCES
from ..core.text import cell
from .comparison import frobenius, side_by_side
from ..core.problems import Problem
from ..core.settings import SolverSettings

__all__ = ["overview", "summary", "summary_table", "flow_scale"]


def overview(
    problem: Problem,
    layers0,
    etas: Sequence[float],
    t1: float,
    *,
    points: int = 101,
    solver: str = "tsit5",
    rtol: float = FLOW_TOLERANCES[0],
    atol: float = FLOW_TOLERANCES[1],
    max_steps: int = 100_000,
    progress=None,
    settings: SolverSettings | None = None,
) -> xr.Dataset:
    """Run the layer flow, the end-to-end flow, and GD and Eq. 10 for every ``eta`` on ``linspace(0, t1, points)``.

    :func:`linflow.studies.comparison.side_by_side` (the plain part that :func:`linflow.compare` extends) with the
    etas kept in the order given (``sort_etas=False``). Every ``eta`` must divide the grid spacing
    ``t1 / (points - 1)`` (iterate ``k`` sits at ``t = k eta``). Returns a Dataset with dims ``t`` and ``eta``:
    losses, ``W_e``, imbalances, the distance ``gd_deviation = ||W_e^GD(t) - W_e^flow(t)||_F`` of GD from the
    layer flow, ``eq10_deviation`` of Eq. 10 from the end-to-end flow, and
    ``theorem1_gap = ||W_e^layers - W_e^end-to-end||_F`` between the two flows (Theorem 1). Discrete runs that
    stopped early have NaN rows after the stop, and their ``gd_status`` / ``gd_message`` (``eq10_status`` /
    ``eq10_message``) say where. ``progress`` is an optional callable ``progress(label)`` called after each stage
    (4 of them). The solver options come as keywords or in ``settings`` (a :class:`~linflow.SolverSettings`).
    """
    return side_by_side(problem, layers0, etas, t1, points=points, solver=solver, rtol=rtol, atol=atol,
                        max_steps=max_steps, progress=progress, settings=settings, sort_etas=False)


def _last_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if len(finite) else float("nan")


def flow_scale(ds: xr.Dataset) -> float:
    """``max_t ||W_e^flow(t)||_F`` of an :func:`overview` Dataset: the scale of its relative deviations."""
    return float(np.nanmax(frobenius(ds["flow_end_to_end"].values)))


def _max_if_ok(values: np.ndarray, status) -> float:
    """The maximum over the horizon of a run that reached its end; nan (null, said by the status beside it) for a
    run that stopped: its maximum over the horizon is not known (a diverged run's is unbounded)."""
    return float(np.max(values)) if str(status) == "ok" else float("nan")


def theorem1_status(ds: xr.Dataset) -> str:
    """``ok``, or why the Theorem 1 gap is not measured (a flow stopped before t1)."""
    failed = [f"the {name} stopped ({ds.attrs[key]})" for name, key in (("layer flow", "flow_status"),
                                                                         ("end-to-end flow", "e2e_flow_status"))
              if ds.attrs[key] != "ok"]
    return "ok" if not failed else "not measured: " + " and ".join(failed)


def theorem1_gap(ds: xr.Dataset) -> float:
    """``max_t ||W_e(layers) - W_e(end-to-end)||_F / max_t ||W_e||_F`` over the whole horizon; nan when a flow
    stopped early (the gap over a part of the horizon is no measure of Theorem 1: :func:`theorem1_status`)."""
    if theorem1_status(ds) != "ok":
        return float("nan")
    return float(np.max(ds.theorem1_gap.values)) / flow_scale(ds)


def summary(ds: xr.Dataset) -> dict:
    """The numbers of an :func:`overview` Dataset (``linflow run``'s ``summary.json``): settings, the two flows'
    final losses and solver counts, the relative Theorem 1 gap, and per eta the status, message and maximum
    relative deviation of GD and Eq. 10 from their flows and GD's largest imbalance."""
    scale = flow_scale(ds)
    attrs = ds.attrs
    return {
        **{k: attrs[k] for k in ("problem", "init") if k in attrs},
        "depth": attrs["depth"],
        "dims": attrs["dims"],
        "t1": float(ds.t.values[-1]),
        "solver": attrs["solver"],
        "rtol": attrs["rtol"],
        "atol": attrs["atol"],
        "flow": {"final_loss": float(ds.flow_loss.values[-1]), "num_steps": attrs["flow_num_steps"],
                 "nfev": attrs["flow_nfev"], "status": attrs["flow_status"]},
        "end_to_end_flow": {"final_loss": float(ds.e2e_flow_loss.values[-1]), "status": attrs["e2e_flow_status"],
                            "num_steps": attrs["e2e_flow_num_steps"], "nfev": attrs["e2e_flow_nfev"]},
        "theorem1_relative_gap": theorem1_gap(ds),
        "theorem1_status": theorem1_status(ds),
        "runs": [
            {
                "eta": float(eta),
                "gd_status": str(ds.gd_status.values[i]),
                "gd_message": str(ds.gd_message.values[i]),
                "max_relative_deviation_gd": _max_if_ok(ds.gd_deviation.values[i], ds.gd_status.values[i]) / scale,
                "max_relative_deviation_eq10": _max_if_ok(ds.eq10_deviation.values[i], ds.eq10_status.values[i]) / scale,
                "max_gd_imbalance": _max_if_ok(ds.gd_imbalance.values[i], ds.gd_status.values[i]),
                "eq10_status": str(ds.eq10_status.values[i]),
                "eq10_message": str(ds.eq10_message.values[i]),
            }
            for i, eta in enumerate(ds.eta.values)
        ],
    }


def summary_table(ds: xr.Dataset) -> str:
    """A plain-text table of an :func:`overview` Dataset: final losses, deviations, drift, solver stats."""
    scale = flow_scale(ds)
    lines = [
        f"layer flow:      final loss {_last_finite(ds.flow_loss.values):.6g}   steps {ds.attrs['flow_num_steps']}   "
        f"nfev {ds.attrs['flow_nfev']}   status {ds.attrs['flow_status']}",
        f"end-to-end flow: final loss {_last_finite(ds.e2e_flow_loss.values):.6g}   steps {ds.attrs['e2e_flow_num_steps']}   "
        f"nfev {ds.attrs['e2e_flow_nfev']}   status {ds.attrs['e2e_flow_status']}",
        "Theorem 1: max_t ||W_e(layers) - W_e(end-to-end)||_F / max_t ||W_e||_F = "
        + (f"{theorem1_gap(ds):.3e}" if theorem1_status(ds) == "ok" else theorem1_status(ds)),
        "",
        f"{'eta':>10} {'GD loss':>12} {'Eq.10 loss':>12} {'max dev GD':>12} {'max dev Eq.10':>14} "
        f"{'imbalance drift':>16}  status",
    ]
    imb0 = ds.attrs["initial_imbalance"]
    for i, eta in enumerate(ds.eta.values):
        row = ds.isel(eta=i)
        status = str(row.gd_status.values)
        if str(row.eq10_status.values) != "ok":
            status += f" / Eq.10 {row.eq10_status.values}"
        gd, eq = str(row.gd_status.values), str(row.eq10_status.values)
        lines.append(
            f"{eta:>10.4g} {cell(_last_finite(row.gd_loss.values) if gd == 'ok' else np.nan, '12.6g', gd)} "
            f"{cell(_last_finite(row.eq10_loss.values) if eq == 'ok' else np.nan, '12.6g', eq)} "
            f"{cell(_max_if_ok(row.gd_deviation.values, gd) / scale, '12.3e', gd)} "
            f"{cell(_max_if_ok(row.eq10_deviation.values, eq) / scale, '14.3e', eq)} "
            f"{cell(_max_if_ok(row.gd_imbalance.values, gd) - imb0, '16.3e', gd)}  {status}"
        )
    lines.append("(deviations are max over t of ||W_e(t) - W_e^flow(t)||_F relative to max_t ||W_e^flow||_F)")
    return "\n".join(lines)
