r"""ACH18 Section 8 (Figure 5-right): overparameterizing the dense layers of the MNIST convnet, measured.

Both networks of :mod:`linflow.convnet` (the tutorial's and its twin with each dense matrix followed by a
square one, identity-initialized) are trained from the same weights on the same batches, for several
seeds, in three configurations: the tutorial's optimizer (momentum 0.9, learning rate 0.01 decayed 0.95
per epoch) without and with its regularizers (dropout 0.5, L2 5e-4; the paper does not say which it
kept), and plain SGD at a learning rate tuned per network on a short run. Reported: the training loss
against iterations (mean cross-entropy on a fixed subset of the training images), the iterations to
fixed loss targets, the speed-up of the twin per seed, the parameter counts and the wall time per step.

Verdict rule (stated in the summary): *agrees* when, with the tutorial's optimizer and no regularizer,
the twin reaches every target reached by both in fewer iterations for every seed and the median speed-up
is at least 1.25 ("markedly"); *partly* when the median speed-up is above 1 but that does not hold;
*differs* otherwise; *not applicable* without the MNIST files or when no target is reached by both.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import convnet
from ..core import datasets
from .common import iterations_to

__all__ = ["section8", "with_iterations", "CONFIGS", "TARGETS", "VERDICT_RULE", "ITERATIONS_RULE"]

TARGETS = (0.5, 0.3, 0.2, 0.15, 0.1)
#: name -> (momentum, dropout, l2, tuned learning rate)
CONFIGS = {
    "momentum": (0.9, False, 0.0, False),
    "momentum, dropout + L2": (0.9, True, 5e-4, False),
    "sgd (tuned lr)": (None, False, 0.0, True),
}
VERDICT_RULE = ("agrees: with momentum and no regularizer the overparameterized net reaches every target reached by "
                "either network in fewer iterations for every seed (a target only the original reaches counts as "
                "slower, one only the overparameterized net reaches as faster; none is skipped), median speed-up "
                ">= 1.25; partly: median speed-up > 1; differs: otherwise; not applicable: no MNIST files, or no "
                "target reached by either network")
ITERATIONS_RULE = ("iterations to a target: the first loss reading from which the training loss stays <= the target "
                   "to the end of the run (the rule of every experiment here; inf if never)")
PAPER = ("replacing each dense layer of TensorFlow's MNIST convnet by two matrices in succession (about 15% more "
         "parameters, no change in expressiveness) accelerated optimization markedly (Figure 5-right)")


def _settings(quick: bool) -> dict:
    if quick:
        return dict(seeds=(0,), steps=12, eval_every=4, eval_size=128, images=640, lr_grid=(0.01, 0.1), tune_steps=4)
    return dict(seeds=(0, 1, 2), steps=240, eval_every=20, eval_size=2000, images=None, lr_grid=(0.01, 0.03, 0.1),
                tune_steps=40)


def _tuned_lr(images, labels, over: bool, s: dict) -> float:
    """The learning rate of ``s["lr_grid"]`` with the lowest training loss after ``tune_steps`` plain SGD steps
    (seed 0; a diverging rate loses)."""
    best, best_loss = s["lr_grid"][0], np.inf
    for lr in s["lr_grid"]:
        try:
            out = convnet.train(convnet.tutorial_net(over, 0), images, labels, steps=s["tune_steps"], lr=lr,
                                momentum=None, eval_every=s["tune_steps"], eval_size=s["eval_size"])
        except FloatingPointError:
            continue
        if out["train_loss"][-1] < best_loss:
            best, best_loss = lr, out["train_loss"][-1]
    return best


def section8(data=None, quick: bool = False):
    """Run the experiment on the MNIST files in ``data`` (a folder); ``(dataset, summary, figures)``."""
    try:
        if data is None:
            raise FileNotFoundError("no data folder given")
        mnist = datasets.mnist(data)
    except FileNotFoundError as exc:
        summary = {"paper": PAPER, "measured": f"not run: needs the MNIST IDX files (--data DIR): {exc}",
                   "agrees": None, "verdict": "not applicable: no MNIST files", "verdict_rule": VERDICT_RULE,
                   "data": "none (the experiment needs MNIST; it has no synthetic stand-in)"}
        return xr.Dataset(), summary, {}
    s = _settings(quick)
    images, labels = (mnist.images, mnist.labels) if s["images"] is None else (mnist.images[:s["images"]],
                                                                               mnist.labels[:s["images"]])
    nets = {"original": False, "overparameterized": True}
    lrs = {(c, n): (_tuned_lr(images, labels, over, s) if cfg[3] else 0.01)
           for c, cfg in CONFIGS.items() for n, over in nets.items()}
    curves, seconds = {}, {n: [] for n in nets}
    for c, (momentum, dropout, l2, _) in CONFIGS.items():
        for n, over in nets.items():
            for seed in s["seeds"]:
                out = convnet.train(convnet.tutorial_net(over, seed), images, labels, steps=s["steps"], lr=lrs[c, n],
                                    momentum=momentum, dropout=dropout, l2=l2, seed=seed, eval_every=s["eval_every"],
                                    eval_size=s["eval_size"])
                curves[c, n, seed] = out["train_loss"]
                seconds[n].append(out["seconds_per_step"])
    its = out["iterations"]
    loss = np.array([[[curves[c, n, seed] for seed in s["seeds"]] for n in nets] for c in CONFIGS])
    ds = xr.Dataset(
        {"train_loss": (("config", "network", "seed", "iteration"), loss),
         "learning_rate": (("config", "network"), np.array([[lrs[c, n] for n in nets] for c in CONFIGS]))},
        coords={"config": list(CONFIGS), "network": list(nets), "seed": list(s["seeds"]), "iteration": its,
                "target": list(TARGETS)},
        attrs={"data": mnist.description, "quick": int(quick), "loss": "mean cross-entropy on the first "
               f"{s['eval_size']} (shuffled) training images, no penalty, no dropout",
               "iterations_rule": ITERATIONS_RULE})
    ds = with_iterations(ds)
    return ds, _summary(ds, seconds, mnist.description, s), {"section8": _figure(ds)}


def with_iterations(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``iterations_to_target`` (config, network, seed, target) read from ``train_loss`` by
    :data:`ITERATIONS_RULE` and ``speedup`` (original over overparameterized: ``inf`` where only the overparameterized
    net reaches the target, 0 where only the original does, NaN where neither does)."""
    loss, its = ds.train_loss.values, ds.iteration.values
    reach = np.array([[[[iterations_to(curve, its, t) for t in TARGETS] for curve in per_net] for per_net in per_config]
                      for per_config in loss])
    with np.errstate(invalid="ignore", divide="ignore"):  # inf / inf: reached by neither, the one NaN
        speedup = reach[:, 0] / reach[:, 1]  # inf: only the overparameterized net reached it; 0: only the original
    return ds.assign(iterations_to_target=(("config", "network", "seed", "target"), reach),
                     speedup=(("config", "seed", "target"), speedup))


def _per_target(sp: np.ndarray, seeds) -> dict | str:
    """The speed-ups of one target over the seeds: median, min and max when both networks reached it in every seed;
    otherwise what happened in each seed, in words (a seed where one network missed the target is never skipped)."""
    if np.all(np.isfinite(sp) & (sp > 0)):
        return {"speedup_median": float(np.median(sp)), "speedup_min": float(np.min(sp)), "speedup_max": float(np.max(sp))}
    what = lambda x: ("reached by neither" if np.isnan(x) else "only the original reached it" if x == 0  # noqa: E731
                      else "only the overparameterized net reached it" if np.isinf(x) else f"{x:.2f}x")
    return "; ".join(f"seed {int(s)}: {what(x)}" for s, x in zip(seeds, sp))


def graded_speedups(speedups: np.ndarray) -> tuple[str, bool | None]:
    """:data:`VERDICT_RULE` on the momentum configuration's speed-ups (seed, target): every (seed, target) reached
    by either network counts (0: only the original reached it; inf: only the overparameterized net)."""
    known = ~np.isnan(speedups)
    if not known.any():
        return "not applicable: no target reached by either network", None
    med = float(np.median(speedups[known]))
    if bool(np.all(speedups[known] > 1)) and med >= 1.25:
        return "agrees", True
    return ("partly", False) if med > 1 else ("differs", False)


def _summary(ds: xr.Dataset, seconds: dict, description: str, s: dict) -> dict:
    params = {n: convnet.param_count(convnet.tutorial_net(n == "overparameterized", 0)) for n in ds.network.values}
    time_per_step = {n: float(np.nanmedian(v)) for n, v in seconds.items()}
    per_config = {str(c): {f"target {t:g}": _per_target(ds.speedup.sel(config=c).values[:, j], ds.seed.values)
                           for j, t in enumerate(ds.target.values)} for c in ds.config.values}
    verdict, agrees = graded_speedups(ds.speedup.sel(config="momentum").values)
    measured = "; ".join(
        f"{c}: " + ", ".join(f"{k}: {v['speedup_median']:.2f}x ({v['speedup_min']:.2f}-{v['speedup_max']:.2f})"
                            if isinstance(v, dict) else f"{k}: {v}" for k, v in d.items())
        for c, d in per_config.items())
    return {
        "paper": PAPER, "measured": f"speed-up of the overparameterized net (median over seeds, min-max) per target: "
                                    f"{measured}", "agrees": agrees, "verdict": verdict, "verdict_rule": VERDICT_RULE,
        "data": description, "parameters": params,
        "parameter_overhead": params["overparameterized"] / params["original"] - 1.0,
        "seconds_per_step": time_per_step,
        "time_overhead": time_per_step["overparameterized"] / time_per_step["original"] - 1.0,
        "speedups": per_config, "iterations_rule": ITERATIONS_RULE, "targets": list(TARGETS),
        "seeds": list(s["seeds"]), "steps": s["steps"],
        "learning_rates": {f"{c} / {n}": float(ds.learning_rate.sel(config=c, network=n))
                           for c in ds.config.values for n in ds.network.values},
    }


def _figure(ds: xr.Dataset):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ds.config), figsize=(5 * len(ds.config), 4), constrained_layout=True, sharey=True)
    for ax, c in zip(np.atleast_1d(axes), ds.config.values):
        for n, color in zip(ds.network.values, ("C0", "C3")):
            curve = ds.train_loss.sel(config=c, network=n).values
            its = ds.iteration.values
            ax.semilogy(its, np.median(curve, axis=0), color=color, label=f"{n} (median of {curve.shape[0]} seeds)")
            ax.fill_between(its, curve.min(axis=0), curve.max(axis=0), color=color, alpha=0.2, lw=0)
        for t in ds.target.values:
            ax.axhline(t, color="0.7", lw=0.6, ls=":")
        lr = ", ".join(f"{float(ds.learning_rate.sel(config=c, network=n)):g}" for n in ds.network.values)
        ax.set(title=f"{c} (lr {lr})", xlabel="iteration")
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("training loss (cross-entropy)")
    fig.suptitle("ACH18 Section 8: MNIST convnet, original vs overparameterized dense layers (band: min-max over seeds)",
                 fontsize=10)
    return fig
