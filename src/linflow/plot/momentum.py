"""The figure of a momentum method against its continuous models (:mod:`linflow.studies.momentum`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from ..studies.edges import edge_summary
from ..studies.momentum import method_words

__all__ = ["momentum_breakdown", "stability_edges"]


def momentum_breakdown(ds: xr.Dataset) -> plt.Figure:
    """Each model's relative deviation from the method (heavy ball, Nesterov, Adam or RMSProp) against eta (log-log):
    solid for the pairs theory puts at order 2, dashed at lower orders; the level as a dotted line; an eta whose run
    diverged as a cross on the top edge, one where a model's solve stopped before ``t1`` as a triangle on the bottom
    edge."""
    etas = ds.eta.values
    fig, ax = plt.subplots(figsize=(8.5, 5), layout="constrained")
    for p, name in enumerate(ds.pair.values):
        dev = ds.deviation_rel.values[p]
        style = "o-" if int(ds.theory_order.values[p]) == 2 else "s--"
        ax.plot(etas, np.where(np.isfinite(dev) & (dev > 0), dev, np.nan), style, ms=4, label=str(name))
    ax.axhline(float(ds.attrs["level"]), color="k", lw=0.8, ls=":", label=f"level {ds.attrs['level']:g}")
    diverged = (ds.status_rest.values != "ok") | (ds.status_manifold.values != "ok")
    if diverged.any():
        ax.plot(etas[diverged], np.full(diverged.sum(), 1.0), "kx", ms=9, transform=ax.get_xaxis_transform(),
                clip_on=False, label="the method diverged")
    if not np.any(np.isfinite(ds.deviation_rel.values) & (ds.deviation_rel.values > 0)):
        ax.set_ylim(1e-4, 1.0)  # log axes need limits when nothing is drawn on them
        ax.set_xlim(etas.min() / 1.5, etas.max() * 1.5)
        ax.text(0.5, 0.75, "no deviation measured: every run diverged or every model's solve stopped\n(the summary says "
                "where)", ha="center", va="center", transform=ax.transAxes, bbox={"fc": "white", "ec": "0.7"})
    if "status_model" in ds:
        stopped = np.any((ds.status_model.values != "ok") & (ds.status_model.values != ""), axis=0)
        if stopped.any():
            ax.plot(etas[stopped], np.zeros(stopped.sum()), "v", color="0.3", ms=8, transform=ax.get_xaxis_transform(),
                    clip_on=False, label="a model's solve stopped before t1")
    ax.set(xscale="log", yscale="log", xlabel="learning rate eta",
           ylabel=f"max |W_e(model) - W_e(method)| for t >= {ds.attrs['after']:.3g}, relative",
           title=f"{method_words(ds)} against its models (t1 = {ds.attrs['t1']:g})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def stability_edges(datasets) -> plt.Figure:
    """Runs of :func:`linflow.studies.edges.stability_edge`: each one's reading ``lambda_1(P^-1 H)`` over its edge
    against the step (log scale in the reading), the edge as the line at 1 with the rule's band, the verdict in the
    legend; a diverged run ends where it diverged."""
    datasets = list(datasets)
    fig, ax = plt.subplots(figsize=(8.5, 4.5), layout="constrained")
    tol = max(float(ds.attrs["tolerance"]) for ds in datasets)
    ax.axhspan(1 - tol, 1 + tol, color="0.9", label=f"the edge, within {tol:g}")
    ax.axhline(1.0, color="k", lw=0.8)
    for i, ds in enumerate(datasets):
        row = edge_summary(ds)
        ax.plot(ds.step.values, ds.ratio.values, "-", color=f"C{i}", lw=1.2, label=f"{row['method']}: {row['verdict']}")
    ax.set(yscale="log", xlabel="step k", ylabel="lambda_1(P^-1 H) / its edge, at the midpoint of iterates k, k + 1",
           title="each method against its stability edge")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig
