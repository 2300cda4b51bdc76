"""The figure of ``linflow run`` (:func:`overview_figure`): four panels of an overview Dataset."""

from __future__ import annotations

import matplotlib.cm
import matplotlib.colors
import matplotlib.lines
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import xarray as xr

from .common import clip_to_completed, eta_colors, finite_positive, mark_stopped, stopped_entry, style_legend


# ----------------------------------------------------------------------------- linflow run
def overview_figure(ds: xr.Dataset) -> plt.Figure:
    """Four panels of an :func:`linflow.studies.overview.overview` Dataset, learning rates coloured by a colorbar.

    (a) loss against flow time for the two flows and the two discrete runs per eta; (b) relative
    distance ``||W_e - W_e^flow||_F / max_t ||W_e^flow||_F`` of each discrete run from its flow (the
    quantity of the printed table); (c) balancedness ``max_j ||D_j||_F`` of GD against the flow's;
    (d) maximum relative distance against eta on log-log axes with a slope-1 guide. Diverged runs end
    in an X and never set the axis limits.
    """
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), layout="constrained")
    from ..studies.overview import flow_scale

    colors = eta_colors(fig, axes, ds.eta.values)
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
        ax.plot(t, finite_positive(ds.gd_loss.values[i]), color=c, marker="o", ms=2.5, ls="none")
        ax.plot(t, finite_positive(ds.eq10_loss.values[i]), color=c, lw=1, ls=":")
    clip_to_completed(ax, [ds.flow_loss.values, ds.e2e_flow_loss.values]
                       + [ds.gd_loss.values[i] for i in np.flatnonzero(ok)])
    stopped = mark_stopped(ax, t, ds.gd_loss.values, ok, colors)
    stopped |= mark_stopped(ax, t, ds.eq10_loss.values, ok_e2e, colors)
    ax.set(xlabel="flow time t = k eta", ylabel="loss L1(W_e)", title="(a) loss")
    style_legend(ax, {"layer flow": dict(color="k", lw=2.5), "end-to-end flow (Thm 1)": dict(color="tab:red", ls="--"),
                       "GD on the layers": dict(marker="o", ms=3, ls="none"), "Eq. 10 (end-to-end update)": dict(ls=":"),
                       **stopped_entry(stopped, "diverged (last finite point)")})


def _overview_distance(ax, ds, rel, scale, colors, ok, ok_e2e) -> None:
    """(b) relative distance of each discrete run from its flow, and of the two flows (Theorem 1)."""
    t = ds.t.values
    rel_gd, rel_e2e = rel
    ax.set_yscale("log")
    for i, c in enumerate(colors):
        ax.plot(t[1:], finite_positive(rel_gd[i, 1:]), color=c, lw=1.2)
        ax.plot(t[1:], finite_positive(rel_e2e[i, 1:]), color=c, lw=1, ls=":")
    gap = finite_positive(ds.theorem1_gap.values[1:] / scale)
    ax.plot(t[1:], gap, color="tab:red", ls="--", lw=1.2)
    clip_to_completed(ax, [rel_gd[i, 1:] for i in np.flatnonzero(ok)] + [rel_e2e[i, 1:] for i in np.flatnonzero(ok_e2e)]
                       + [gap])
    mark_stopped(ax, t[1:], rel_gd[:, 1:], ok, colors)
    mark_stopped(ax, t[1:], rel_e2e[:, 1:], ok_e2e, colors)
    ax.set(xlabel="flow time t", ylabel="||W_e - W_e^flow||_F / max_t ||W_e^flow||_F",
           title="(b) relative distance from the flow")
    style_legend(ax, {"GD vs layer flow": dict(), "Eq. 10 vs end-to-end flow": dict(ls=":"),
                       "layer flow vs end-to-end flow": dict(color="tab:red", ls="--")})


def _overview_balancedness(ax, ds, colors, ok) -> None:
    """(c) GD's imbalance ``max_j ||D_j||_F`` per eta against the flow's (conserved)."""
    t = ds.t.values
    ax.set_yscale("log")
    ax.plot(t, np.maximum(ds.flow_imbalance.values, 1e-300), color="k", lw=2.5)
    for i, c in enumerate(colors):
        ax.plot(t, finite_positive(ds.gd_imbalance.values[i]), color=c, lw=1.2)
    clip_to_completed(ax, [ds.gd_imbalance.values[i] for i in np.flatnonzero(ok)]
                       + [finite_positive(ds.flow_imbalance.values)])
    mark_stopped(ax, t, ds.gd_imbalance.values, ok, colors)
    ax.set(xlabel="flow time t", ylabel="max_j ||D_j||_F", title="(c) balancedness (conserved by the flow)")
    style_legend(ax, {"layer flow": dict(color="k", lw=2.5), "GD": dict()})


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
    clip_to_completed(ax, [dev[ok], dev_e2e[ok_e2e]])
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
    style_legend(ax, entries)
