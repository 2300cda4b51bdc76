"""What the figures share: markers of stopped runs, the colours of the etas, legends, finite values."""

from __future__ import annotations

import matplotlib.cm
import matplotlib.colors
import matplotlib.lines
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np




# ----------------------------------------------------------------------------- shared pieces
STOPPED_MARKER = dict(marker="X", ms=8, mec="k", mew=0.8, ls="none", zorder=5)


def finite_positive(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def eta_colors(fig, axes, etas, label: str = "learning rate eta") -> list:
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


def style_legend(ax, entries, **kwargs) -> None:
    """A legend of line styles only (``entries``: label -> Line2D keyword arguments)."""
    handles = [matplotlib.lines.Line2D([], [], **{"color": "0.3", **kw}) for kw in entries.values()]
    ax.legend(handles, list(entries), **{"fontsize": 8, **kwargs})


def clip_to_completed(ax, series, pad: float = 3.0) -> None:
    """Log-axis y-limits from the runs that completed, so a diverged or stopped run never stretches the axes."""
    values = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in series]) if series else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if len(values):
        ax.set_ylim(values.min() / pad, values.max() * pad)


def mark_stop(ax, x, y, color) -> bool:
    """An X at the last finite point of a run that did not complete (drawn at the top edge if above it)."""
    y = np.asarray(y, dtype=float)
    good = np.flatnonzero(np.isfinite(y) & (y > 0)) if ax.get_yscale() == "log" else np.flatnonzero(np.isfinite(y))
    if not len(good):
        return False
    i = good[-1]
    top = ax.get_ylim()[1]
    ax.plot([np.asarray(x)[i]], [min(y[i], top)], color=color, clip_on=False, **STOPPED_MARKER)
    return True


def mark_stopped(ax, x, rows, ok, colors) -> bool:
    """:func:`mark_stop` for every row whose run did not complete; whether any X was drawn."""
    return any([mark_stop(ax, x, finite_positive(rows[i]), colors[i]) for i in np.flatnonzero(~ok)])


def stopped_entry(stopped: bool, label: str = "diverged / oscillating (last point)") -> dict:
    """The legend entry of the X of a stopped run, when one was drawn."""
    return {label: {k: v for k, v in STOPPED_MARKER.items() if k != "zorder"}} if stopped else {}


def per_eta_lines(fig, ax, ds, var: str, outcome: str, *, also=(), completed=()):
    """One curve of ``ds[var]`` per eta coloured by eta; runs whose ``outcome`` is not ok are clipped and marked.

    The y-limits come from the completed runs of ``var`` and of the variables ``also`` (drawn by the
    caller) and from the reference values ``completed``.
    """
    t = ds.t.values
    colors = eta_colors(fig, ax, ds.eta.values)
    ok = np.asarray(ds[outcome].values).astype(str) == "ok"
    for i, c in enumerate(colors):
        ax.plot(t, finite_positive(ds[var].values[i]), color=c, lw=1.2)
    clip_to_completed(ax, [ds[v].values[i] for v in (var, *also) for i in np.flatnonzero(ok)] + list(completed))
    return colors, mark_stopped(ax, t, ds[var].values, ok, colors)
