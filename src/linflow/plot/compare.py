"""The figures of ``linflow compare`` (:data:`COMPARE_FIGURES`): deviations over time and against eta,
balancedness drift, stability, the first-order bound."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .common import finite_positive, per_eta_lines, stopped_entry, style_legend


# ----------------------------------------------------------------------------- linflow compare
def _per_eta_figure(ds: xr.Dataset, ylabel: str, title: str) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    ax.set(yscale="log", xlabel="flow time t = k eta", ylabel=ylabel, title=title)
    return fig, ax


def deviation_vs_time(ds: xr.Dataset) -> plt.Figure:
    """Relative distance ``||W_e^GD(t) - W_e^flow(t)||_F / max_t ||W_e^flow||_F`` against time, one curve per eta."""
    fig, ax = _per_eta_figure(ds, "relative deviation of W_e from the flow", "Gradient descent against the gradient flow")
    tol = float(ds.attrs["tol"])
    _, stopped = per_eta_lines(fig, ax, ds, "gd_deviation_rel", "gd_outcome", completed=[tol])
    ax.axhline(tol, color="0.4", ls="--", lw=1)
    style_legend(ax, {f"breakdown tolerance {tol:g}": dict(color="0.4", ls="--"), **stopped_entry(stopped)})
    return fig


def deviation_vs_eta(ds: xr.Dataset) -> plt.Figure:
    """Max deviation over the horizon against eta (log-log): GD from the flow and from the modified flows, with fits.

    Filled markers are the points of each fit; open markers are left out of it (unstable run, relative
    deviation above the asymptotic range, or an error within 1000 x the solver tolerance).
    """
    from ..studies.comparison import fit_mask, summary

    s = summary(ds)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    etas = ds.eta.values
    series = [("max_layer_deviation", "flow", "gradient flow", "o", 1)]
    series += [(f"max_mod{o}_deviation", f"modified{o}", f"modified flow, order {o}", m, o + 1)
               for o, m in ((1, "s"), (2, "^")) if f"max_mod{o}_deviation" in ds]
    for var, key, label, marker, theory in series:
        err = finite_positive(ds[var].values)
        fit = s[f"order_{key}"]
        used = fit_mask(ds, ds[var].values)
        slope = f"slope {fit['order']:.2f}" if np.isfinite(fit["order"]) else "no fit"
        line = ax.loglog(etas[used], err[used], marker=marker, ls="none", label=f"{label}: {slope} (theory {theory})")
        color = line[0].get_color()
        ax.loglog(etas[~used], err[~used], marker=marker, ls="none", mfc="none", color=color)
        if np.isfinite(fit["order"]):
            coef = np.polyfit(np.log(etas[used]), np.log(err[used]), 1)
            xs = np.array([fit["eta_low"], fit["eta_high"]])
            ax.loglog(xs, np.exp(np.polyval(coef, np.log(xs))), color=color, lw=1)
    ax.plot([], [], marker="o", mfc="none", ls="none", color="0.4", label="left out of the fit")
    threshold = s["stability_eta_predicted"]
    if threshold <= 4 * etas.max():  # drawn where it is near the data; else said in the legend (the axis keeps the data)
        ax.axvline(threshold, color="tab:red", ls="--", lw=1, label=f"2 / max S (predicted) = {threshold:.3g}")
    else:
        ax.plot([], [], color="tab:red", ls="--", lw=1,
                label=f"2 / max S (predicted) = {threshold:.3g}: {threshold / etas.max():.0f}x the largest eta, off the axis")
    ax.set(xlabel="eta", ylabel="max_t ||theta_GD - theta(t)|| (layers)", title="Error against the learning rate")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)  # below: it hides no point
    return fig


def balancedness_drift(ds: xr.Dataset) -> plt.Figure:
    """GD's ``max_j ||D_j||_F`` (lines) against its exact eta^2 accumulation (dots), coloured by eta."""
    fig, ax = _per_eta_figure(ds, "max_j ||D_j||_F", "Balancedness under GD: measured and predicted by the eta^2 term")
    every = max(1, ds.sizes["t"] // 20)
    colors, stopped = per_eta_lines(fig, ax, ds, "gd_imbalance", "gd_outcome")
    for i, c in enumerate(colors):
        ax.plot(ds.t.values[::every], finite_positive(ds.gd_imbalance_predicted.values[i])[::every], color=c,
                marker="o", ms=3.5, ls="none")
    style_legend(ax, {"measured": dict(), "predicted (accumulated eta^2 terms)": dict(marker="o", ls="none"),
                       **stopped_entry(stopped)})
    return fig


def stability(ds: xr.Dataset) -> plt.Figure:
    """``eta S(t) / 2`` along the flow for each eta, with the stability line at 1."""
    fig, ax = _per_eta_figure(ds, "eta * sharpness(t) / 2", "Stability along the flow: GD leaves it above 1")
    _, stopped = per_eta_lines(fig, ax, ds, "eta_sharpness_half", "gd_outcome", completed=[1.0])
    ax.axhline(1.0, color="tab:red", lw=1.5)
    style_legend(ax, {"eta S / 2 = 1 (stability limit)": dict(color="tab:red", lw=1.5), **stopped_entry(stopped)})
    return fig


def bound_vs_error(ds: xr.Dataset) -> plt.Figure:
    """The Elkabetz-Cohen first-order bound (dashed) against GD's measured distance from the flow (solid)."""
    fig, ax = _per_eta_figure(ds, "||theta_GD(t) - theta(t)|| (layers)", "Measured error and the first-order bound")
    colors, stopped = per_eta_lines(fig, ax, ds, "gd_layer_deviation", "gd_outcome", also=("bound",))
    for i, c in enumerate(colors):
        ax.plot(ds.t.values, finite_positive(ds.bound.values[i]), color=c, ls="--", lw=1)
    style_legend(ax, {"measured ||theta_GD - theta||": dict(),
                       "bound of Elkabetz & Cohen (2021), first order": dict(ls="--"), **stopped_entry(stopped)})
    return fig


COMPARE_FIGURES = {
    "deviation_vs_time": deviation_vs_time,
    "deviation_vs_eta": deviation_vs_eta,
    "balancedness_drift": balancedness_drift,
    "stability": stability,
    "bound_vs_error": bound_vs_error,
}
