"""Figures (matplotlib). Each function takes a Dataset produced by a linflow study and returns a Figure."""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

__all__ = [
    "overview_figure",
    "deviation_vs_time",
    "deviation_vs_eta",
    "balancedness_drift",
    "stability",
    "bound_vs_error",
    "COMPARE_FIGURES",
    "work_precision_nfev",
    "work_precision_time",
    "step_size_figure",
]


def overview_figure(ds: xr.Dataset) -> plt.Figure:
    """Four panels of an :func:`linflow.overview.overview` Dataset.

    (a) loss against flow time for the two flows and the two discrete runs per eta; (b) distance of
    each discrete run from its flow; (c) balancedness ``max_j ||D_j||_F`` of GD against the flow's;
    (d) maximum distance against eta on log-log axes with a slope-1 guide (GD is first order).
    """
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    t = ds.t.values
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, ds.sizes["eta"]))
    ax = axes[0, 0]
    ax.plot(t, ds.flow_loss, color="k", lw=2, label="layer flow")
    ax.plot(t, ds.e2e_flow_loss, color="tab:red", lw=1.5, ls="--", label="end-to-end flow")
    for c, eta in zip(colors, ds.eta.values):
        row = ds.sel(eta=eta)
        ax.plot(t, row.gd_loss, color=c, lw=1, marker="o", ms=2, ls="none", label=f"GD eta={eta:g}")
        ax.plot(t, row.e2e_descent_loss, color=c, lw=1, ls=":")
    ax.set(yscale="log", xlabel="flow time t = k eta", ylabel="loss L1(W_e)", title="(a) loss (dotted: Eq. 10)")
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    for c, eta in zip(colors, ds.eta.values):
        row = ds.sel(eta=eta)
        ax.plot(t[1:], row.gd_deviation[1:], color=c, label=f"GD eta={eta:g}")
        ax.plot(t[1:], row.e2e_descent_deviation[1:], color=c, ls=":")
    ax.plot(t[1:], np.maximum(ds.theorem1_gap[1:], 1e-300), color="tab:red", ls="--", label="layer vs e2e flow")
    ax.set(yscale="log", xlabel="flow time t", ylabel="||W_e - W_e^flow||_F", title="(b) distance from the flow")
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    ax.plot(t, np.maximum(ds.flow_imbalance, 1e-300), color="k", lw=2, label="layer flow")
    for c, eta in zip(colors, ds.eta.values):
        ax.plot(t, np.maximum(ds.sel(eta=eta).gd_imbalance, 1e-300), color=c, label=f"GD eta={eta:g}")
    ax.set(yscale="log", xlabel="flow time t", ylabel="max_j ||D_j||_F", title="(c) balancedness")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    etas = ds.eta.values
    dev = ds.gd_deviation.max("t").values
    dev_e2e = ds.e2e_descent_deviation.max("t").values
    ax.loglog(etas, dev, "o-", color="k", label="GD vs layer flow")
    ax.loglog(etas, dev_e2e, "s--", color="tab:red", label="Eq. 10 vs end-to-end flow")
    ok = np.isfinite(dev)
    if ok.any():
        e0, d0 = etas[ok][0], dev[ok][0]
        ax.loglog(etas, d0 * etas / e0, color="0.6", lw=1, label="slope 1")
    ax.set(xlabel="eta", ylabel="max_t ||W_e - W_e^flow||_F", title="(d) deviation against eta")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7)
    fig.suptitle(
        f"depth {ds.attrs['depth']} (dims {ds.attrs['dims']}), p = {ds.attrs['p']:g}, "
        f"lambda = {ds.attrs['weight_decay']:g}, solver {ds.attrs['solver']}"
    )
    return fig


def _eta_colors(ds: xr.Dataset):
    return plt.cm.viridis(np.linspace(0.05, 0.9, ds.sizes["eta"]))


def _finite_positive(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


def _per_eta_figure(ds: xr.Dataset, draw, *, ylabel: str, title: str, extra=None) -> plt.Figure:
    """One log-scale panel against flow time with one colour per eta; ``draw(ax, row, eta, color)``."""
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for c, eta in zip(_eta_colors(ds), ds.eta.values):
        draw(ax, ds.sel(eta=eta), eta, c)
    if extra is not None:
        extra(ax)
    ax.set(yscale="log", xlabel="flow time t = k eta", ylabel=ylabel, title=title)
    ax.legend(fontsize=6, ncol=2)
    return fig


def deviation_vs_time(ds: xr.Dataset) -> plt.Figure:
    """Relative distance ``||W_e^GD(t) - W_e^flow(t)||_F / max_t ||W_e^flow||_F`` against time, one curve per eta."""

    def draw(ax, row, eta, c):
        ax.plot(ds.t, _finite_positive(row.gd_deviation_rel), color=c, label=f"eta={eta:.3g} ({row.gd_outcome.values})")

    return _per_eta_figure(ds, draw, ylabel="relative deviation of W_e from the flow",
                           title="Gradient descent against the gradient flow",
                           extra=lambda ax: ax.axhline(float(ds.attrs["tol"]), color="0.5", ls="--", lw=1,
                                                       label=f"tol = {ds.attrs['tol']:g}"))


def deviation_vs_eta(ds: xr.Dataset) -> plt.Figure:
    """Max deviation over the horizon against eta (log-log): GD from the flow and from the modified flows, with fits."""
    from .comparison import summary

    s = summary(ds)
    fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
    etas = ds.eta.values
    series = [("max_layer_deviation", "flow", "gradient flow", "o", 1)]
    series += [(f"max_mod{o}_deviation", f"modified{o}", f"modified flow, order {o}", m, o + 1)
               for o, m in ((1, "s"), (2, "^")) if f"max_mod{o}_deviation" in ds]
    for var, key, label, marker, theory in series:
        err = _finite_positive(ds[var].values)
        fit = s[f"order_{key}"]
        line = ax.loglog(etas, err, marker=marker, ls="none", label=f"{label}: slope {fit['order']:.2f} (theory {theory})")
        if np.isfinite(fit["order"]):
            sel = (etas >= fit["eta_low"]) & (etas <= fit["eta_high"]) & np.isfinite(err)
            coef = np.polyfit(np.log(etas[sel]), np.log(err[sel]), 1)
            xs = np.array([fit["eta_low"], fit["eta_high"]])
            ax.loglog(xs, np.exp(np.polyval(coef, np.log(xs))), color=line[0].get_color(), lw=1)
    ax.axvline(s["stability_eta_predicted"], color="tab:red", ls="--", lw=1, label="2 / max S (predicted)")
    ax.set(xlabel="eta", ylabel="max_t ||theta_GD - theta(t)|| (layers)", title="Error against the learning rate")
    ax.legend(fontsize=7)
    return fig


def balancedness_drift(ds: xr.Dataset) -> plt.Figure:
    """GD's ``max_j ||D_j||_F`` (lines) against its exact eta^2 accumulation (markers), per eta."""
    every = max(1, ds.sizes["t"] // 20)

    def draw(ax, row, eta, c):
        ax.plot(ds.t, _finite_positive(row.gd_imbalance), color=c, label=f"eta={eta:.3g}")
        ax.plot(ds.t[::every], _finite_positive(row.gd_imbalance_predicted)[::every], color=c, marker="o", ms=3,
                ls="none")

    return _per_eta_figure(ds, draw, ylabel="max_j ||D_j||_F",
                           title="Balancedness under GD: measured (lines), predicted by the eta^2 term (dots)")


def stability(ds: xr.Dataset) -> plt.Figure:
    """``eta S(t) / 2`` along the flow for each eta, with the stability line at 1."""

    def draw(ax, row, eta, c):
        ax.plot(ds.t, row.eta_sharpness_half, color=c, label=f"eta={eta:.3g} ({row.gd_outcome.values})")

    return _per_eta_figure(ds, draw, ylabel="eta * sharpness / 2",
                           title="Stability along the flow (GD leaves it where the curve crosses 1)",
                           extra=lambda ax: ax.axhline(1.0, color="tab:red", lw=1.5, label="eta S / 2 = 1"))


def bound_vs_error(ds: xr.Dataset) -> plt.Figure:
    """The first-order bound (dashed) against the measured distance of GD from the flow (solid), per eta."""

    def draw(ax, row, eta, c):
        ax.plot(ds.t, _finite_positive(row.gd_layer_deviation), color=c, label=f"eta={eta:.3g}")
        ax.plot(ds.t, _finite_positive(row.bound), color=c, ls="--")

    return _per_eta_figure(ds, draw, ylabel="||theta_GD - theta(t)|| (layers)",
                           title="Measured error (solid) and the first-order bound (dashed)")


COMPARE_FIGURES = {
    "deviation_vs_time": deviation_vs_time,
    "deviation_vs_eta": deviation_vs_eta,
    "balancedness_drift": balancedness_drift,
    "stability": stability,
    "bound_vs_error": bound_vs_error,
}


def _work_precision(ds: xr.Dataset, work: str, xlabel: str, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.5, 5), constrained_layout=True)
    markers = "osD^v<>phX*+"
    for i, name in enumerate(ds.solver.values):
        row = ds.sel(solver=name)
        x, y = np.asarray(row[work], float), np.asarray(row.rms_error, float)
        ok = np.isfinite(x) & np.isfinite(y) & (y > 0) & (x > 0)
        style = "--" if str(name).startswith("scipy_") else "-"
        ax.loglog(x[ok], y[ok], style, marker=markers[i % len(markers)], ms=4, label=str(name))
    ax.set(xlabel=xlabel, ylabel="RMS error of W_e over 100 times", title=title)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="major", alpha=0.3)
    return fig


def work_precision_nfev(ds: xr.Dataset) -> plt.Figure:
    """Error against vector-field evaluations (log-log), one curve per solver (dashed: SciPy peers)."""
    return _work_precision(ds, "nfev", "function evaluations", f"Work-precision ({ds.attrs['reference']})")


def work_precision_time(ds: xr.Dataset) -> plt.Figure:
    """Error against wall time (minimum over repeats, compilation excluded), one curve per solver."""
    return _work_precision(ds, "wall_time", "wall time (s)", "Work-precision: error against wall time")


def step_size_figure(ds: xr.Dataset) -> plt.Figure:
    """Accepted step sizes along the flow against ``3.5 / S(t)`` (the explicit solver's stability limit)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    t = ds.t.values
    ax.semilogy(t, ds.dt, ".", ms=3, label=f"{ds.attrs['solver']} step (rtol {ds.attrs['rtol']:g})")
    ok = np.isfinite(ds.stability_dt.values)
    ax.semilogy(t[ok], ds.stability_dt.values[ok], color="tab:red", lw=1.5, label="3.5 / sharpness")
    ax.set(xlabel="flow time t", ylabel="step size", title="Step size along the layer flow")
    ax.legend(fontsize=8)
    return fig
