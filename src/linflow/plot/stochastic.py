"""The figures of SGD against its continuous models (:mod:`linflow.studies.stochastic`): weak errors against the
learning rate, the ensembles' means along the run, the linear scaling rule with its noise-to-signal ratio."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["weak_error_orders", "ensemble_means", "linear_scaling_figure"]

_LABELS = {"gf": "gradient flow", "sme1": "SME, order 1", "sme2": "SME, order 2", "svag": "SVAG", "sgd": "SGD"}
_TITLES = {"loss": "E L(W_e)", "norm": "E |W_e|_F"}


def _label(model: str, ds: xr.Dataset) -> str:
    return f"SVAG, l = {ds.attrs['ell']}" if model == "svag" else _LABELS[model]


def weak_error_orders(ds: xr.Dataset) -> plt.Figure:
    """|model mean - SGD mean| at the horizon against eta (log-log), 95% intervals as bars; filled markers where the
    error exceeds 2 standard errors (what the order fit uses), hollow where it does not; slopes 1 and 2 for scale."""
    last = ds.time.values[-1]
    etas = ds.eta.values
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    for ax, obs in zip(axes, ds.observable.values):
        lows = []
        for model in [str(m) for m in ds.model.values if m != "sgd"]:
            err = ds.weak_error.sel(model=model, observable=obs, time=last).values
            se = ds.weak_se.sel(model=model, observable=obs, time=last).values
            mag = np.abs(err)
            if not np.any(np.isfinite(mag) & (mag > 0)):
                ax.plot([], [], "x", color="0.5", label=f"{_label(model, ds)}: no finite error (diverged paths)")
                continue
            line, = ax.plot(etas, np.where(np.isfinite(mag), mag, np.nan), "-", lw=1, alpha=0.6)
            color = line.get_color()
            resolved = mag > 2 * se
            lower = np.maximum(mag - 1.96 * se, mag * 0.1)  # a bar reaching zero is cut at a tenth (log axis)
            ax.errorbar(etas, mag, yerr=[mag - lower, 1.96 * se], fmt="none", ecolor=color, alpha=0.6, capsize=3)
            ax.plot(etas[resolved], mag[resolved], "o", color=color, label=_label(model, ds))
            ax.plot(etas[~resolved], mag[~resolved], "o", mfc="white", color=color)
            lows.extend(mag[np.isfinite(mag) & (mag > 0)])
        if lows:
            ref = max(lows)
            for order, ls in ((1, "--"), (2, ":")):
                ax.plot(etas, ref * (etas / etas.max()) ** order, color="0.4", ls=ls, lw=1,
                        label=f"slope {order}")
        else:
            ax.text(0.5, 0.5, "no finite weak error:\nevery ensemble had a path that diverged\n(see not_ok)",
                    ha="center", va="center", transform=ax.transAxes)
        ax.set(xscale="log", yscale="log" if lows else "linear", xlabel="learning rate eta",
               ylabel=f"|weak error| of {_TITLES[str(obs)]} at t = {last:g}",
               title=f"{_TITLES[str(obs)]}: each model's mean minus SGD's", xlim=(etas.min() / 1.3, etas.max() * 1.3))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"weak errors against SGD, {int(ds.attrs['paths']):,} paths per model, B = {ds.attrs['batch']} "
                 f"({ds.attrs['sampling']}); bars: 95% intervals (cut at a tenth on the log axis); hollow: within 2 SE")
    return fig


def ensemble_means(ds: xr.Dataset, eta: float | None = None) -> plt.Figure:
    """Every model's ensemble mean of each observable along the run at one eta (default the largest), with 95% bands,
    and SGD's mean minus the gradient flow's: the drift the noise and the step add."""
    eta = float(ds.eta.values.max() if eta is None else eta)
    c = ds.sel(eta=eta)
    t = ds.time.values
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    for ax, obs in zip(axes, ds.observable.values):
        gf = c["mean"].sel(model="gf", observable=obs).values if "gf" in ds.model.values else 0.0
        for model in ds.model.values:
            mean = c["mean"].sel(model=model, observable=obs).values - gf
            half = 1.96 * c["se"].sel(model=model, observable=obs).values
            line, = ax.plot(t, mean, "o-", ms=3, label=_label(str(model), ds))
            ax.fill_between(t, mean - half, mean + half, color=line.get_color(), alpha=0.2)
        ax.set(xlabel="flow time t = k eta", ylabel=f"{_TITLES[str(obs)]} minus the gradient flow's",
               title=f"{_TITLES[str(obs)]} at eta = {eta:g} (bands: 95%)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def linear_scaling_figure(ds: xr.Dataset) -> plt.Figure:
    """Left: E L along the run for SGD with (k eta, k B) and for the gradient flow, minus the first-order SME's (the
    rule's prediction, the same for every k), with 95% bands. Right: the base run's noise-to-signal ratio along the run
    (median and range over its paths) with the tested k marked: the rule is predicted to break where k reaches the
    ratio."""
    t = ds.time.values
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    sme = ds["mean"].sel(run="sme1", observable="loss").values
    sme_se = ds["se"].sel(run="sme1", observable="loss").values
    axes[0].fill_between(t, -1.96 * sme_se, 1.96 * sme_se, color="0.6", alpha=0.3, label="SME, order 1 (95%)")
    for run in ds.run.values:
        if run == "sme1":
            continue
        mean = ds["mean"].sel(run=run, observable="loss").values - sme
        half = 1.96 * ds["se"].sel(run=run, observable="loss").values
        k = int(ds.k.sel(run=run))
        label = f"SGD, k = {k} (eta {k * ds.attrs['eta']:g}, B {k * ds.attrs['batch']})" if k else "gradient flow"
        line, = axes[0].plot(t, mean, "o-" if k else "k:", ms=3, label=label)
        if k:
            axes[0].fill_between(t, mean - half, mean + half, color=line.get_color(), alpha=0.15)
    axes[0].axhline(0.0, color="k", lw=0.8)
    axes[0].set(xlabel="flow time t", ylabel="E L(W_e) minus the SME's",
                title="linear scaling rule: (eta, B) -> (k eta, k B) (bands: 95%)")
    axes[0].legend(fontsize=7)
    axes[0].grid(True, alpha=0.3)
    nsr = ds.nsr.values
    finite = np.all(np.isfinite(nsr), axis=0)
    axes[1].plot(t[finite], np.median(nsr[:, finite], axis=0), "o-", color="tab:purple", label="median over paths")
    axes[1].fill_between(t[finite], nsr[:, finite].min(axis=0), nsr[:, finite].max(axis=0), color="tab:purple",
                         alpha=0.2, label="range over paths")
    for k in ds.k.values[ds.k.values > 1]:
        axes[1].axhline(k, color="0.5", lw=0.8, ls="--")
    if not np.any(finite):
        axes[1].text(0.5, 0.5, "a base path diverged at every save time", ha="center", va="center",
                     transform=axes[1].transAxes)
    axes[1].set(yscale="log" if np.any(finite) else "linear", xlabel="flow time t",
                ylabel="G_B = f tr Sigma / (B |grad L|^2)",
                title="base run's noise-to-signal ratio (dashed: the tested k)")
    axes[1].legend(fontsize=8)
    axes[1].grid(True, which="both", alpha=0.3)
    return fig
