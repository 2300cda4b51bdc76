"""Figures (matplotlib). Each function takes a Dataset produced by a linflow study and returns a Figure."""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

__all__ = ["overview_figure"]


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
