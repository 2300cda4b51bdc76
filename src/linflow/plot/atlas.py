"""The map past the threshold (:mod:`linflow.studies.atlas`): GD's bifurcation diagram over eta, its largest
Lyapunov exponent, and its sharpness against 2 / eta."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["bifurcation_diagram"]


def _spans(eta: np.ndarray, mask: np.ndarray):
    """``(lo, hi)`` of each run of consecutive grid points where ``mask`` holds (half a spacing beyond each end)."""
    half = np.diff(eta).min() / 2 if eta.size > 1 else 0.0
    idx = np.flatnonzero(mask)
    for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1) if idx.size else []:
        yield eta[run[0]] - half, eta[run[-1]] + half


def bifurcation_diagram(ds: xr.Dataset) -> plt.Figure:
    """Top: ``u_1^T W_e v_1`` at GD's last iterates against eta (the logistic-map picture for a deep network). Middle:
    the largest Lyapunov exponent (positive: chaos). Bottom: GD's sharpness at its last iterates times ``eta / 2``
    (1: the edge of stability). Marked on each: ``eta_crit = 2 / S`` of the flow's limit (dashed), the etas where the
    central flow predicts GD (green band), divergence (red band)."""
    eta = ds.eta.values
    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True, layout="constrained",
                             gridspec_kw={"height_ratios": [3, 1.4, 1.4]})
    x = np.repeat(eta, ds.sizes["iterate"])
    axes[0].plot(x, ds.projection.values.ravel(), ",", color="k", alpha=0.6)
    axes[0].plot([], [], ".", color="k", label="GD's last iterates")
    axes[0].set(ylabel="u_1^T W_e v_1", title=f"GD's attractor over eta ({ds.sizes['iterate']} last iterates after "
                f"{int(ds.attrs['transient'])} + {int(ds.attrs['record']) - ds.sizes['iterate']} steps)")
    lyap = ds.lyapunov.values
    chaotic = ds.attractor.values == "chaotic"
    axes[1].plot(eta, lyap, "-", color="0.4", lw=0.8)
    axes[1].plot(eta[chaotic], lyap[chaotic], ".", color="tab:red", ms=3, label="chaotic")
    axes[1].axhline(0.0, color="k", lw=0.6)
    axes[1].set(ylabel="Lyapunov exponent\n(per step)")
    ratio = ds.sharpness.values * eta[:, None] / 2
    axes[2].plot(np.repeat(eta, ds.sizes["last"]), ratio.ravel(), ".", color="tab:blue", ms=2)
    axes[2].axhline(1.0, color="k", lw=0.6)
    axes[2].set(ylabel="S(GD) eta / 2", xlabel="learning rate eta")
    predicted = ds.central_reason.values == "predicts GD"
    for ax in axes:
        ax.axvline(ds.attrs["eta_crit"], color="tab:purple", ls="--", lw=1)
        for lo, hi in _spans(eta, ds.attractor.values == "diverged"):
            ax.axvspan(lo, hi, color="tab:red", alpha=0.12, lw=0)
        if predicted.any():
            ax.axvspan(eta[predicted].min(), eta[predicted].max(), color="tab:green", alpha=0.10, lw=0)
        ax.grid(True, alpha=0.3)
    dev = ds.central_deviation_rel.values
    for ok, color, label in ((predicted, "tab:green", "central flow run here: predicts"),
                             (np.isfinite(dev) & ~predicted, "tab:orange", "central flow run here: does not predict")):
        if ok.any():
            axes[0].plot(eta[ok], np.full(ok.sum(), np.nanmin(ds.projection.values)), "^", color=color, ms=7,
                         label=label, clip_on=False)
    axes[0].plot([], [], "--", color="tab:purple", label=f"2 / S of the flow's limit = {ds.attrs['eta_crit']:.4g}")
    if predicted.any():
        axes[0].fill_between([], [], color="tab:green", alpha=0.25, label="central flow predicts GD's mean (within 5%)")
    axes[0].fill_between([], [], color="tab:red", alpha=0.25, label="GD diverges")
    bad = ds.attractor.values == "diverged"
    tail = len(bad) - int(np.argmin(bad[::-1])) if not bad.all() else 0  # the trailing run of diverged etas
    if bad[-1] and 0 < tail < len(bad):  # the map ends where GD diverges for good: show a little of that, not all
        first = eta[tail]
        axes[0].set_xlim(eta[0], min(eta[-1], first + 0.15 * (first - eta[0])))
        axes[0].set_title(axes[0].get_title() + f"; diverged at every eta from {first:.4g} to {eta[-1]:.4g}")
    axes[0].legend(fontsize=8, loc="best")
    axes[1].legend(fontsize=8, loc="upper left")
    return fig
