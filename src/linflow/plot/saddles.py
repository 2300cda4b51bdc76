"""The figures of learning from a small start (:mod:`linflow.studies.saddles`): the plateaus, the escape times against
the start scale, and gradient descent's shifted escapes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["saddle_curves", "escape_scaling", "gd_escape_shift"]


def saddle_curves(ds: xr.Dataset, depth: int, alpha: float) -> plt.Figure:
    """The loss (with the plateau levels), the singular values of ``W_e`` (with ``s_i`` and ``s_i / 2``) and the
    effective rank against flow time (log axis) from one aligned start, the closed-form escapes marked."""
    c = ds.sel(depth=depth, alpha=alpha)
    t, escapes = c.curve_t.values, c.escape_time_exact.values
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    axes[0].loglog(t, c.curve_loss, "k-", label="loss (layer flow)")
    for level in ds.plateau_loss_theory.values:
        axes[0].axhline(level, color="0.6", ls=":", lw=1)
    axes[0].set(ylabel="loss", title="plateaus at sum_{i>j} s_i^2 / 2 (dotted)")
    for i, s in enumerate(ds.singular_value.values):
        line, = axes[1].loglog(t, c.curve_sigma.values[:, i], label=f"sigma_{i + 1} (s = {s:g})")
        axes[1].axhline(s / 2, color=line.get_color(), ls=":", lw=1)
    axes[1].set(ylabel="singular values of W_e", title="one mode at a time (dotted: s_i / 2, the escape level)")
    axes[2].semilogx(t, c.curve_effective_rank, "k-")
    axes[2].set(ylabel="effective rank of W_e", title="rank grows by one at each escape")
    for ax in axes:
        for e in escapes:
            ax.axvline(e, color="tab:red", lw=0.8, alpha=0.5)
        ax.set_xlabel("flow time t (red: closed-form escapes)")
        ax.grid(True, which="major", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"depth {depth} from a small aligned start, alpha = {alpha:g}")
    return fig


def escape_scaling(ds: xr.Dataset) -> plt.Figure:
    """Escape times against ``1 / alpha`` (log-log) per depth: the layer flow's and the end-to-end flow's (markers)
    on the closed form (lines); the random start's (crosses) beside them."""
    fig, axes = plt.subplots(1, len(ds.depth), figsize=(5 * len(ds.depth), 4.2), layout="constrained", squeeze=False)
    x = 1 / ds.alpha.values
    for ax, N in zip(axes[0], ds.depth.values):
        for i, s in enumerate(ds.singular_value.values):
            line, = ax.loglog(x, ds.escape_time_exact.sel(depth=N).values[:, i], "-", label=f"mode {i + 1} (s = {s:g})")
            for flow, marker in zip(ds.flow.values, ("o", "s")):
                ax.loglog(x, ds.escape_time.sel(start="aligned", flow=flow, depth=N).values[:, i], marker, ms=5,
                          mfc="none", color=line.get_color())
            if "random" in ds.start.values:
                ax.loglog(x, ds.escape_time.sel(start="random", flow=ds.flow.values[0], depth=N).values[:, i], "x",
                          color=line.get_color())
        law = "ln(1/alpha) / (2 s)" if N == 2 else f"alpha^-(1-2/N) = alpha^-{1 - 2 / N:.3g}"
        ax.set(xlabel="1 / alpha", ylabel="escape time", title=f"depth {N}: t ~ {law}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].legend(fontsize=8, title="lines: closed form; o layers, s end-to-end, x random start", title_fontsize=7)
    return fig


def gd_escape_shift(g: xr.Dataset) -> plt.Figure:
    """GD's escape shift against eta (log-log, with a slope-1 guide) and its cost against the solvers'."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    ok = g.status.values == "ok"
    for i, s in enumerate(g.singular_value.values):
        axes[0].loglog(g.eta.values[ok], np.abs(g.escape_shift.values[ok, i]), "o-",
                       label=f"mode {i + 1} (s = {s:g}), fitted order {float(g.shift_order[i]):.2f}")
    e = g.eta.values[ok]
    if len(e):
        ref = np.abs(g.escape_shift.values[ok, 0])
        axes[0].loglog(e, ref[0] * e / e[0], "k:", label="slope 1")
    axes[0].set(xlabel="eta", ylabel="|t_GD - t_flow| at each escape", title="GD escapes O(eta) from the flow")
    for j, solver in enumerate(g.solver.values):
        axes[1].loglog(g.eta.values[ok], g.cost_ratio.sel(solver=solver).values[ok], "o-",
                       label=f"{solver} ({int(g.solver_steps[j])} steps)")
    axes[1].set(xlabel="eta", ylabel="GD steps / solver steps", title="cost to the last escape")
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"depth {g.attrs['depth']}, alpha = {g.attrs['alpha']:g}")
    return fig
