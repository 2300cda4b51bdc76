"""Figures (matplotlib). Each function takes a Dataset produced by a linflow study and returns a Figure."""

from __future__ import annotations

import matplotlib.cm
import matplotlib.colors
import matplotlib.lines
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import xarray as xr

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


# ----------------------------------------------------------------------------- shared pieces
STOPPED_MARKER = dict(marker="X", ms=8, mec="k", mew=0.8, ls="none", zorder=5)


def _finite_positive(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _eta_colors(fig, axes, etas, label: str = "learning rate eta") -> list:
    """One colour per learning rate from a log-scaled colormap, explained by a colorbar (not a legend)."""
    etas = np.asarray(etas, dtype=float)
    lo, hi = float(etas.min()), float(etas.max())
    norm = matplotlib.colors.LogNorm(vmin=lo / 1.05, vmax=hi * 1.05) if lo > 0 else matplotlib.colors.Normalize(lo, hi)
    cmap = plt.get_cmap("viridis")
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(sm, ax=axes, label=label, pad=0.02, fraction=0.04)
    if len(etas) <= 8:
        bar.set_ticks(etas)
        bar.set_ticklabels([f"{e:.3g}" for e in etas])
        bar.ax.minorticks_off()
    return [cmap(norm(e)) for e in etas]


def _style_legend(ax, entries, **kwargs) -> None:
    """A legend of line styles only (``entries``: label -> Line2D keyword arguments)."""
    handles = [matplotlib.lines.Line2D([], [], **{"color": "0.3", **kw}) for kw in entries.values()]
    ax.legend(handles, list(entries), **{"fontsize": 8, **kwargs})


def _clip_to_completed(ax, series, pad: float = 3.0) -> None:
    """Log-axis y-limits from the runs that completed, so a diverged or stopped run never stretches the axes."""
    values = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in series]) if series else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if len(values):
        ax.set_ylim(values.min() / pad, values.max() * pad)


def _mark_stop(ax, x, y, color) -> bool:
    """An X at the last finite point of a run that did not complete (drawn at the top edge if above it)."""
    y = np.asarray(y, dtype=float)
    good = np.flatnonzero(np.isfinite(y) & (y > 0)) if ax.get_yscale() == "log" else np.flatnonzero(np.isfinite(y))
    if not len(good):
        return False
    i = good[-1]
    top = ax.get_ylim()[1]
    ax.plot([np.asarray(x)[i]], [min(y[i], top)], color=color, clip_on=False, **STOPPED_MARKER)
    return True


def _mark_stopped(ax, x, rows, ok, colors) -> bool:
    """:func:`_mark_stop` for every row whose run did not complete; whether any X was drawn."""
    return any([_mark_stop(ax, x, _finite_positive(rows[i]), colors[i]) for i in np.flatnonzero(~ok)])


def _stopped_entry(stopped: bool, label: str = "diverged / oscillating (last point)") -> dict:
    """The legend entry of the X of a stopped run, when one was drawn."""
    return {label: {k: v for k, v in STOPPED_MARKER.items() if k != "zorder"}} if stopped else {}


def _per_eta(fig, ax, ds, var: str, outcome: str, *, also=(), completed=()):
    """One curve of ``ds[var]`` per eta coloured by eta; runs whose ``outcome`` is not ok are clipped and marked.

    The y-limits come from the completed runs of ``var`` and of the variables ``also`` (drawn by the
    caller) and from the reference values ``completed``.
    """
    t = ds.t.values
    colors = _eta_colors(fig, ax, ds.eta.values)
    ok = np.asarray(ds[outcome].values).astype(str) == "ok"
    for i, c in enumerate(colors):
        ax.plot(t, _finite_positive(ds[var].values[i]), color=c, lw=1.2)
    _clip_to_completed(ax, [ds[v].values[i] for v in (var, *also) for i in np.flatnonzero(ok)] + list(completed))
    return colors, _mark_stopped(ax, t, ds[var].values, ok, colors)


# ----------------------------------------------------------------------------- linflow run
def overview_figure(ds: xr.Dataset) -> plt.Figure:
    """Four panels of an :func:`linflow.overview.overview` Dataset, learning rates coloured by a colorbar.

    (a) loss against flow time for the two flows and the two discrete runs per eta; (b) relative
    distance ``||W_e - W_e^flow||_F / max_t ||W_e^flow||_F`` of each discrete run from its flow (the
    quantity of the printed table); (c) balancedness ``max_j ||D_j||_F`` of GD against the flow's;
    (d) maximum relative distance against eta on log-log axes with a slope-1 guide. Diverged runs end
    in an X and never set the axis limits.
    """
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), layout="constrained")
    from .studies.overview import flow_scale

    colors = _eta_colors(fig, axes, ds.eta.values)
    ok = np.asarray(ds.gd_status.values).astype(str) == "ok"
    ok_e2e = np.asarray(ds.eq10_status.values).astype(str) == "ok"
    scale = flow_scale(ds)
    rel = (ds.gd_deviation.values / scale, ds.eq10_deviation.values / scale)
    _overview_loss(axes[0, 0], ds, colors, ok, ok_e2e)
    _overview_distance(axes[0, 1], ds, rel, scale, colors, ok, ok_e2e)
    _overview_balancedness(axes[1, 0], ds, colors, ok)
    _overview_against_eta(axes[1, 1], ds.eta.values, rel, colors, ok, ok_e2e)
    fig.suptitle(
        f"depth {ds.attrs['depth']} (dims {ds.attrs['dims']}), p = {ds.attrs['p']:g}, "
        f"lambda = {ds.attrs['weight_decay']:g}, solver {ds.attrs['solver']}"
    )
    return fig


def _overview_loss(ax, ds, colors, ok, ok_e2e) -> None:
    """(a) loss against flow time: the two flows, GD (dots) and Eq. 10 (dotted) per eta."""
    t = ds.t.values
    ax.set_yscale("log")
    ax.plot(t, ds.flow_loss, color="k", lw=2.5, zorder=3)
    ax.plot(t, ds.e2e_flow_loss, color="tab:red", lw=1.5, ls="--", zorder=4)
    for i, c in enumerate(colors):
        ax.plot(t, _finite_positive(ds.gd_loss.values[i]), color=c, marker="o", ms=2.5, ls="none")
        ax.plot(t, _finite_positive(ds.eq10_loss.values[i]), color=c, lw=1, ls=":")
    _clip_to_completed(ax, [ds.flow_loss.values, ds.e2e_flow_loss.values]
                       + [ds.gd_loss.values[i] for i in np.flatnonzero(ok)])
    stopped = _mark_stopped(ax, t, ds.gd_loss.values, ok, colors)
    stopped |= _mark_stopped(ax, t, ds.eq10_loss.values, ok_e2e, colors)
    ax.set(xlabel="flow time t = k eta", ylabel="loss L1(W_e)", title="(a) loss")
    _style_legend(ax, {"layer flow": dict(color="k", lw=2.5), "end-to-end flow (Thm 1)": dict(color="tab:red", ls="--"),
                       "GD on the layers": dict(marker="o", ms=3, ls="none"), "Eq. 10 (end-to-end update)": dict(ls=":"),
                       **_stopped_entry(stopped, "diverged (last finite point)")})


def _overview_distance(ax, ds, rel, scale, colors, ok, ok_e2e) -> None:
    """(b) relative distance of each discrete run from its flow, and of the two flows (Theorem 1)."""
    t = ds.t.values
    rel_gd, rel_e2e = rel
    ax.set_yscale("log")
    for i, c in enumerate(colors):
        ax.plot(t[1:], _finite_positive(rel_gd[i, 1:]), color=c, lw=1.2)
        ax.plot(t[1:], _finite_positive(rel_e2e[i, 1:]), color=c, lw=1, ls=":")
    gap = _finite_positive(ds.theorem1_gap.values[1:] / scale)
    ax.plot(t[1:], gap, color="tab:red", ls="--", lw=1.2)
    _clip_to_completed(ax, [rel_gd[i, 1:] for i in np.flatnonzero(ok)] + [rel_e2e[i, 1:] for i in np.flatnonzero(ok_e2e)]
                       + [gap])
    _mark_stopped(ax, t[1:], rel_gd[:, 1:], ok, colors)
    _mark_stopped(ax, t[1:], rel_e2e[:, 1:], ok_e2e, colors)
    ax.set(xlabel="flow time t", ylabel="||W_e - W_e^flow||_F / max_t ||W_e^flow||_F",
           title="(b) relative distance from the flow")
    _style_legend(ax, {"GD vs layer flow": dict(), "Eq. 10 vs end-to-end flow": dict(ls=":"),
                       "layer flow vs end-to-end flow": dict(color="tab:red", ls="--")})


def _overview_balancedness(ax, ds, colors, ok) -> None:
    """(c) GD's imbalance ``max_j ||D_j||_F`` per eta against the flow's (conserved)."""
    t = ds.t.values
    ax.set_yscale("log")
    ax.plot(t, np.maximum(ds.flow_imbalance.values, 1e-300), color="k", lw=2.5)
    for i, c in enumerate(colors):
        ax.plot(t, _finite_positive(ds.gd_imbalance.values[i]), color=c, lw=1.2)
    _clip_to_completed(ax, [ds.gd_imbalance.values[i] for i in np.flatnonzero(ok)]
                       + [_finite_positive(ds.flow_imbalance.values)])
    _mark_stopped(ax, t, ds.gd_imbalance.values, ok, colors)
    ax.set(xlabel="flow time t", ylabel="max_j ||D_j||_F", title="(c) balancedness (conserved by the flow)")
    _style_legend(ax, {"layer flow": dict(color="k", lw=2.5), "GD": dict()})


def _overview_against_eta(ax, etas, rel, colors, ok, ok_e2e) -> None:
    """(d) maximum relative distance against eta on log-log axes, a slope-1 guide, diverged runs as X."""
    dev, dev_e2e = np.nanmax(rel[0], axis=1), np.nanmax(rel[1], axis=1)
    ax.loglog(etas[ok], dev[ok], "-", color="k", lw=1, zorder=1)
    ax.loglog(etas[ok_e2e], dev_e2e[ok_e2e], "--", color="tab:red", lw=1, zorder=1)
    ax.scatter(etas[ok], dev[ok], c=np.asarray(colors)[ok], marker="o", s=40, edgecolors="k", zorder=3)
    ax.scatter(etas[ok_e2e], dev_e2e[ok_e2e], c=np.asarray(colors)[ok_e2e], marker="s", s=30, edgecolors="tab:red",
               zorder=3)
    if ok.any():
        e0, d0 = etas[ok][np.argmin(etas[ok])], dev[ok][np.argmin(etas[ok])]
        ax.loglog(etas, d0 * etas / e0, color="0.6", lw=1)
    _clip_to_completed(ax, [dev[ok], dev_e2e[ok_e2e]])
    top = ax.get_ylim()[1]
    for mask, edge in ((~ok, "k"), (~ok_e2e, "tab:red")):
        if mask.any():  # diverged runs: an X on the top edge at their eta, never a point that stretches the axis
            ax.scatter(etas[mask], np.full(mask.sum(), top), marker="X", s=70, c=np.asarray(colors)[mask],
                       edgecolors=edge, zorder=4, clip_on=False)
    ax.set(xlabel="eta", ylabel="max_t relative distance", title="(d) distance against eta (GD is first order)")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if len(etas) <= 8:  # label the learning rates themselves
        ax.set_xticks(etas, [f"{e:.3g}" for e in etas])
    entries = {"GD vs layer flow": dict(marker="o", color="k"), "Eq. 10 vs end-to-end flow":
               dict(marker="s", ls="--", color="tab:red"), "slope 1": dict(color="0.6")}
    if (~ok).any() or (~ok_e2e).any():
        entries["diverged (at its eta)"] = dict(marker="X", ls="none", color="k")
    _style_legend(ax, entries)


# ----------------------------------------------------------------------------- linflow compare
def _per_eta_figure(ds: xr.Dataset, ylabel: str, title: str) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    ax.set(yscale="log", xlabel="flow time t = k eta", ylabel=ylabel, title=title)
    return fig, ax


def deviation_vs_time(ds: xr.Dataset) -> plt.Figure:
    """Relative distance ``||W_e^GD(t) - W_e^flow(t)||_F / max_t ||W_e^flow||_F`` against time, one curve per eta."""
    fig, ax = _per_eta_figure(ds, "relative deviation of W_e from the flow", "Gradient descent against the gradient flow")
    tol = float(ds.attrs["tol"])
    _, stopped = _per_eta(fig, ax, ds, "gd_deviation_rel", "gd_outcome", completed=[tol])
    ax.axhline(tol, color="0.4", ls="--", lw=1)
    _style_legend(ax, {f"breakdown tolerance {tol:g}": dict(color="0.4", ls="--"), **_stopped_entry(stopped)})
    return fig


def deviation_vs_eta(ds: xr.Dataset) -> plt.Figure:
    """Max deviation over the horizon against eta (log-log): GD from the flow and from the modified flows, with fits.

    Filled markers are the points of each fit; open markers are left out of it (unstable run, relative
    deviation above the asymptotic range, or an error within 1000 x the solver tolerance).
    """
    from .studies.comparison import fit_mask, summary

    s = summary(ds)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    etas = ds.eta.values
    series = [("max_layer_deviation", "flow", "gradient flow", "o", 1)]
    series += [(f"max_mod{o}_deviation", f"modified{o}", f"modified flow, order {o}", m, o + 1)
               for o, m in ((1, "s"), (2, "^")) if f"max_mod{o}_deviation" in ds]
    for var, key, label, marker, theory in series:
        err = _finite_positive(ds[var].values)
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
    colors, stopped = _per_eta(fig, ax, ds, "gd_imbalance", "gd_outcome")
    for i, c in enumerate(colors):
        ax.plot(ds.t.values[::every], _finite_positive(ds.gd_imbalance_predicted.values[i])[::every], color=c,
                marker="o", ms=3.5, ls="none")
    _style_legend(ax, {"measured": dict(), "predicted (accumulated eta^2 terms)": dict(marker="o", ls="none"),
                       **_stopped_entry(stopped)})
    return fig


def stability(ds: xr.Dataset) -> plt.Figure:
    """``eta S(t) / 2`` along the flow for each eta, with the stability line at 1."""
    fig, ax = _per_eta_figure(ds, "eta * sharpness(t) / 2", "Stability along the flow: GD leaves it above 1")
    _, stopped = _per_eta(fig, ax, ds, "eta_sharpness_half", "gd_outcome", completed=[1.0])
    ax.axhline(1.0, color="tab:red", lw=1.5)
    _style_legend(ax, {"eta S / 2 = 1 (stability limit)": dict(color="tab:red", lw=1.5), **_stopped_entry(stopped)})
    return fig


def bound_vs_error(ds: xr.Dataset) -> plt.Figure:
    """The Elkabetz-Cohen first-order bound (dashed) against GD's measured distance from the flow (solid)."""
    fig, ax = _per_eta_figure(ds, "||theta_GD(t) - theta(t)|| (layers)", "Measured error and the first-order bound")
    colors, stopped = _per_eta(fig, ax, ds, "gd_layer_deviation", "gd_outcome", also=("bound",))
    for i, c in enumerate(colors):
        ax.plot(ds.t.values, _finite_positive(ds.bound.values[i]), color=c, ls="--", lw=1)
    _style_legend(ax, {"measured ||theta_GD - theta||": dict(),
                       "bound of Elkabetz & Cohen (2021), first order": dict(ls="--"), **_stopped_entry(stopped)})
    return fig


COMPARE_FIGURES = {
    "deviation_vs_time": deviation_vs_time,
    "deviation_vs_eta": deviation_vs_eta,
    "balancedness_drift": balancedness_drift,
    "stability": stability,
    "bound_vs_error": bound_vs_error,
}


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

