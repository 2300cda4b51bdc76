"""The figures of a sweep: the phase diagram (breakdown eta and threshold over depth) and the regime diagram."""

from __future__ import annotations


import numpy as np
import xarray as xr





def phase_diagram(ds: xr.Dataset):
    """Breakdown eta and predicted stability threshold against depth, one line per p (a ``compare`` sweep),
    or the regime of GD over (depth, eta / eta_crit) (a ``regime`` sweep: see :func:`regime_diagram`)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if "regime" in ds:
        return regime_diagram(ds)
    if "breakdown_eta" not in ds or "depth" not in ds.dims:
        raise ValueError("phase_diagram needs a 'compare' sweep with a 'depth' axis")
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ps = ds.p.values if "p" in ds.dims else [None]
    for p in ps:
        row = ds.sel(p=p) if p is not None else ds
        others = [d for d in row.dims if d != "depth"]
        if others:
            row = row.isel({d: 0 for d in others})
        label = f"p = {p:g}" if p is not None else ""
        line = ax.semilogy(row.depth, row.breakdown_eta, "o-", label=f"breakdown eta (1%), {label}")
        ax.semilogy(row.depth, row.stability_eta_predicted, "s--", color=line[0].get_color(),
                    label=f"2 / max sharpness, {label}")
    ax.set(xlabel="depth N", ylabel="learning rate", title="Where the small-learning-rate picture fails")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return fig


def regime_diagram(ds: xr.Dataset):
    """GD's regime (:data:`linflow.comparison.REGIMES`) over depth and ``eta / eta_crit``, one coloured cell per
    point of a ``regime`` sweep with axes ``depth`` and ``eta_ratio`` (failed points blank)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from ..comparison import REGIMES

    if not {"depth", "eta_ratio"} <= set(ds.dims):
        raise ValueError("regime_diagram needs a 'regime' sweep with axes 'depth' and 'eta_ratio'")
    row = ds.isel({d: 0 for d in ds.regime.dims if d not in ("depth", "eta_ratio")})
    codes = row.regime.transpose("eta_ratio", "depth").values
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8c8c8c"]
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ax.pcolormesh(np.arange(len(row.depth) + 1) - 0.5, np.arange(len(row.eta_ratio) + 1) - 0.5,
                  np.ma.masked_invalid(codes), cmap=ListedColormap(colors), vmin=-0.5, vmax=len(REGIMES) - 0.5)
    ax.set_xticks(range(len(row.depth)), [str(int(d)) for d in row.depth.values])
    ax.set_yticks(range(len(row.eta_ratio)), [f"{r:g}" for r in row.eta_ratio.values])
    ax.set(xlabel="depth N", ylabel="eta / eta_crit  (eta_crit = 2 / max sharpness along the flow)",
           title="Regime of gradient descent")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors]
    ax.legend(handles, REGIMES, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
