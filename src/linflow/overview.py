"""The four trajectories of one run side by side: layer flow, end-to-end flow, GD, end-to-end descent.

:func:`overview` is what ``linflow run`` computes: the continuous runs once, the discrete runs for
each learning rate, all saved on one time grid, and the distances between them, as an
``xarray.Dataset``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from . import _checks, _runs
from .descent import EulerRule, descend_on_grid, steps_per_save
from .fields import EndToEndFlow, LayerFlow
from .init import end_to_end
from .integrate import end_to_end_flow, gradient_flow
from .problems import Problem

__all__ = ["overview", "summary_table", "flow_scale"]


def _frob(a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # a run about to diverge may be at 1e200: its distance is inf
        return np.sqrt(np.sum(np.asarray(a) ** 2, axis=(-2, -1)))


def overview(
    problem: Problem,
    layers0,
    etas: Sequence[float],
    t1: float,
    *,
    points: int = 101,
    solver: str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    progress=None,
) -> xr.Dataset:
    """Run the layer flow, the end-to-end flow, and GD and Eq. 10 for every ``eta`` on ``linspace(0, t1, points)``.

    Every ``eta`` must divide the grid spacing ``t1 / (points - 1)`` (iterate ``k`` sits at ``t = k eta``).
    Returns a Dataset with dims ``t`` and ``eta``: losses, ``W_e``, imbalances, the distance
    ``||W_e^GD(t) - W_e^flow(t)||_F`` of GD from the layer flow, of Eq. 10 from the end-to-end flow,
    and ``||W_e^layers - W_e^end-to-end||_F`` between the two flows (Theorem 1). Discrete runs that
    stopped early have NaN rows after the stop, and their ``*_status`` / ``*_message`` say where.
    ``progress`` is an optional callable ``progress(label)`` called after each run.
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    t1 = _checks.positive("t1", t1)
    points = _checks.integer("points", points, minimum=2)
    etas = [_checks.positive(f"etas[{i}]", e) for i, e in enumerate(etas)]
    if not etas:
        raise ValueError("etas must hold at least one learning rate")
    for e in etas:
        steps_per_save(e, t1, points)  # each eta must land on the grid: checked before anything runs
    tick = progress or (lambda label: None)
    depth = len(layers0)
    options = dict(solver=solver, rtol=rtol, atol=atol, max_steps=max_steps)
    ts = np.linspace(0.0, t1, points)
    lf = gradient_flow(problem, layers0, t1, ts=ts, **options)
    tick("layer flow")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ef = end_to_end_flow(problem, layers0, None, t1, ts=ts, **options)
    tick("end-to-end flow")
    w_flow, w_e2e = lf.masked(lf.end_to_end), ef.masked(ef.end_to_end)
    data = {
        "flow_loss": (("t",), lf.masked(lf.loss)),
        "flow_end_to_end": (("t", "n_out", "n_in"), w_flow),
        "flow_imbalance": (("t",), lf.masked(lf.imbalance)),
        "e2e_flow_loss": (("t",), ef.masked(ef.loss)),
        "e2e_flow_end_to_end": (("t", "n_out", "n_in"), w_e2e),
        "theorem1_gap": (("t",), _frob(w_flow - w_e2e)),
    }
    gd_runs = descend_on_grid(EulerRule(LayerFlow(problem)), layers0, etas, t1, points)
    tick("gradient descent, every eta")
    ed_runs = descend_on_grid(EulerRule(EndToEndFlow(problem, depth)), end_to_end(layers0), etas, t1, points)
    tick("end-to-end descent (Eq. 10), every eta")
    data.update(_descent_vars(gd_runs, ed_runs, w_flow, w_e2e))
    attrs = _attrs(problem, layers0, dict(solver=solver, rtol=rtol, atol=atol), lf, ef, caught)
    return xr.Dataset(data, coords={"t": ts, "eta": np.asarray(etas)}, attrs=attrs)


def _descent_vars(gd_runs, ed_runs, w_flow, w_e2e) -> dict:
    """GD and Eq. 10 per eta (NaN after a stop), their distances from the flows, statuses and messages."""
    rows = {k: [] for k in ("gd_loss", "gd_imbalance", "gd_deviation", "e2e_descent_loss", "e2e_descent_deviation",
                            "gd_end_to_end")}
    status = {"gd_status": [], "gd_message": [], "e2e_descent_status": [], "e2e_descent_message": []}
    for gd, ed in zip(gd_runs, ed_runs):
        rows["gd_loss"].append(gd.masked(gd.loss))
        rows["gd_imbalance"].append(gd.masked(gd.imbalance))
        rows["gd_end_to_end"].append(gd.masked(gd.end_to_end))
        rows["gd_deviation"].append(_frob(gd.masked(gd.end_to_end) - w_flow))
        rows["e2e_descent_loss"].append(ed.masked(ed.loss))
        rows["e2e_descent_deviation"].append(_frob(ed.masked(ed.end_to_end) - w_e2e))
        for name, run in (("gd", gd), ("e2e_descent", ed)):
            status[f"{name}_status"].append(run.status)
            status[f"{name}_message"].append(run.message)
    data = {name: (("eta", "t", "n_out", "n_in") if name.endswith("end_to_end") else ("eta", "t"), np.stack(v))
            for name, v in rows.items()}
    data.update({name: (("eta",), np.array(v, dtype=str)) for name, v in status.items()})
    return data


def _attrs(problem, layers0, settings: dict, lf, ef, caught) -> dict:
    """The settings, the flows' statuses and step counts, the initial imbalance and any warning."""
    return {
        "depth": len(layers0),
        "dims": ",".join(str(n) for n in (problem.d, *(w.shape[0] for w in layers0))),
        "p": problem.p,
        "weight_decay": float(problem.weight_decay),
        **settings,
        "flow_status": lf.status,
        "flow_message": lf.message,
        "e2e_flow_status": ef.status,
        "e2e_flow_message": ef.message,
        "flow_num_steps": int(lf.stats["num_steps"]),
        "flow_nfev": int(lf.stats["nfev"]),
        "e2e_flow_num_steps": int(ef.stats["num_steps"]),
        "e2e_flow_nfev": int(ef.stats["nfev"]),
        "initial_imbalance": float(lf.imbalance[0]),
        "warnings": " | ".join(str(w.message) for w in caught),
        "time_convention": "flow time t; GD iterate k sits at t = k * eta",
    }


def _last_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if len(finite) else float("nan")


def flow_scale(ds: xr.Dataset) -> float:
    """``max_t ||W_e^flow(t)||_F`` of an :func:`overview` Dataset: the scale of its relative deviations."""
    return float(np.nanmax(_frob(ds["flow_end_to_end"].values)))


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
        "theorem1_relative_gap": float(np.nanmax(ds.theorem1_gap.values)) / scale,
        "runs": [
            {
                "eta": float(eta),
                "gd_status": str(ds.gd_status.values[i]),
                "gd_message": str(ds.gd_message.values[i]),
                "max_relative_deviation_gd": float(np.nanmax(ds.gd_deviation.values[i])) / scale,
                "max_relative_deviation_eq10": float(np.nanmax(ds.e2e_descent_deviation.values[i])) / scale,
                "max_gd_imbalance": float(np.nanmax(ds.gd_imbalance.values[i])),
                "eq10_status": str(ds.e2e_descent_status.values[i]),
                "eq10_message": str(ds.e2e_descent_message.values[i]),
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
        f"Theorem 1: max_t ||W_e(layers) - W_e(end-to-end)||_F / max_t ||W_e||_F = "
        f"{float(np.nanmax(ds.theorem1_gap)) / scale:.3e}",
        "",
        f"{'eta':>10} {'GD loss':>12} {'Eq.10 loss':>12} {'max dev GD':>12} {'max dev Eq.10':>14} "
        f"{'imbalance drift':>16}  status",
    ]
    imb0 = ds.attrs["initial_imbalance"]
    for i, eta in enumerate(ds.eta.values):
        row = ds.isel(eta=i)
        status = str(row.gd_status.values)
        if str(row.e2e_descent_status.values) != "ok":
            status += f" / Eq.10 {row.e2e_descent_status.values}"
        lines.append(
            f"{eta:>10.4g} {_last_finite(row.gd_loss.values):>12.6g} {_last_finite(row.e2e_descent_loss.values):>12.6g} "
            f"{np.nanmax(row.gd_deviation.values) / scale:>12.3e} {np.nanmax(row.e2e_descent_deviation.values) / scale:>14.3e} "
            f"{np.nanmax(row.gd_imbalance.values) - imb0:>16.3e}  {status}"
        )
    lines.append("(deviations are max over t of ||W_e(t) - W_e^flow(t)||_F relative to max_t ||W_e^flow||_F)")
    return "\n".join(lines)
