"""The figures of ``linflow accuracy``: work-precision against evaluations and wall time, step sizes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr




# ----------------------------------------------------------------------------- linflow accuracy
_SOLVER_MARKERS = "osD^v<>phP*Xd8H"


def _work_precision(ds: xr.Dataset, work: str, xlabel: str, title: str) -> plt.Figure:
    """Error against work, one colour and marker per solver; failed solves as crosses (in the solver's colour)
    at the top."""
    fig, ax = plt.subplots(figsize=(8.5, 5.5), layout="constrained")
    names = [str(n) for n in ds.solver.values]
    palette = [plt.get_cmap("tab10")(i) for i in range(10)] + ["k", "gold", "navy", "lime", "magenta"]
    colors = [palette[i % len(palette)] for i in range(len(names))]  # distinct hues; markers differ too
    errors = np.asarray(ds.rms_error.values, float)
    top = np.nanmax(errors[np.isfinite(errors)]) * 10 if np.isfinite(errors).any() else 1.0
    failed_any = False
    for i, name in enumerate(names):
        row = ds.sel(solver=name)
        x, y = np.asarray(row[work], float), np.asarray(row.rms_error, float)
        status = np.asarray(row.status.values).astype(str)
        ok = np.isfinite(x) & np.isfinite(y) & (y > 0) & (x > 0)
        style = "--" if name.startswith("scipy_") else "-"
        ax.loglog(x[ok], y[ok], style, marker=_SOLVER_MARKERS[i % len(_SOLVER_MARKERS)], ms=5, color=colors[i],
                  label=name)
        if work == "wall_time" and "wall_time_max" in row:  # the spread of the repeats: from their min to their max
            spread = np.asarray(row.wall_time_max, float)[ok] - x[ok]
            ax.errorbar(x[ok], y[ok], xerr=[np.zeros_like(spread), np.maximum(spread, 0)], fmt="none",
                        ecolor=colors[i], elinewidth=1, capsize=2, alpha=0.7)
        bad = ~ok | (status != "ok")
        if bad.any():
            failed_any = True
            xb = np.where(np.isfinite(x) & (x > 0), x, np.nan)
            xb = np.where(np.isfinite(xb), xb, np.nanmax(x[ok]) if ok.any() else 1.0)
            ax.loglog(xb[bad], np.full(bad.sum(), top), ls="none", marker="x", ms=9, mew=2, color=colors[i])
    floor = float(ds.attrs.get("reference_error_estimate", 0.0))
    if floor > 0:
        ax.axhline(floor, color="0.3", ls=":", lw=1.5, label=f"reference's own error ({floor:.1e})")
    if failed_any:
        ax.plot([], [], ls="none", marker="x", ms=9, mew=2, color="0.3", label="failed solve (no error)")
    ax.set(xlabel=xlabel, ylabel="RMS error of W_e over 100 times", title=title)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(True, which="major", alpha=0.3)
    return fig


def work_precision_nfev(ds: xr.Dataset) -> plt.Figure:
    """Error against vector-field evaluations (log-log), one curve per solver (dashed: SciPy peers)."""
    return _work_precision(ds, "nfev", "function evaluations", f"Work-precision ({ds.attrs['reference']})")


def work_precision_time(ds: xr.Dataset) -> plt.Figure:
    """Error against wall time (minimum over repeats, compilation excluded; bars to the slowest repeat), one curve
    per solver."""
    n = int(ds.attrs.get("repeats", 1))
    return _work_precision(ds, "wall_time", f"wall time (s): fastest of {n} repeats, bar to the slowest",
                           "Work-precision: error against wall time")


def step_size_figure(ds: xr.Dataset) -> plt.Figure:
    """Accepted step sizes along the flow against ``3.5 / S(t)`` (the explicit solver's stability limit)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    t = ds.t.values
    ax.semilogy(t, ds.dt, ".", ms=3, label=f"{ds.attrs['solver']} accepted step (rtol {ds.attrs['rtol']:g})")
    ok = np.isfinite(ds.stability_dt.values)
    ax.semilogy(t[ok], ds.stability_dt.values[ok], color="tab:red", lw=1.5, label="3.5 / sharpness (stability limit)")
    ax.set(xlabel="flow time t", ylabel="step size", title="Step size along the layer flow")
    ax.legend(fontsize=8)
    return fig
