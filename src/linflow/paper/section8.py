r"""ACH18 Section 8 (Figure 5-right): overparameterizing the dense layers of the MNIST convnet, measured.

Three networks of :mod:`linflow.paper.convnet` are trained from the same convolutional and dense weights on the same
batches, for several seeds: the tutorial's (``original``), and its twin with each dense matrix followed by a square
one, the square ones initialized at the identity (``identity extras``: the same function at initialization) or as
the tutorial initializes a dense matrix (``dense extras``: truncated normal, std 0.1). The optimizer is the
tutorial's (momentum 0.9, learning rate 0.01 decayed 0.95 per epoch, no regularizer). Reported: the training loss
against iterations (mean cross-entropy on a fixed subset of the training images, on a log scale), two measures of
speed and the verdict of :data:`VERDICT_RULE`:

* iterations to loss targets (:data:`TARGETS`, from 1 down to 0.005), read by :data:`ITERATIONS_RULE`; the
  speed-up of a twin is the original's iterations over the twin's;
* the loss at fixed budgets (:data:`BUDGETS`): the mean of the readings in ``[0.8 B, B]``, the original's over the
  twin's (above 1: the twin is lower).

The full run is 2,000 steps (12.8 epochs of the 10,000-image split the repository holds), 3 seeds, readings every
50 steps on 1,000 images (about 30 minutes on 2 CPU cores); what was cut to fit is said in :data:`CUT`.
"""

from __future__ import annotations


import numpy as np
import xarray as xr

from . import convnet
from ..core import datasets
from .common import iterations_to

__all__ = ["section8", "with_iterations", "with_budgets", "grade", "twin_outcome", "NETWORKS", "TARGETS", "BUDGETS",
           "MARKEDLY", "VERDICT_RULE", "ITERATIONS_RULE", "BUDGET_RULE", "CUT"]

TARGETS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
BUDGETS = (250, 500, 1000, 2000)
MARKEDLY = 1.25
#: name -> extras of :func:`linflow.paper.convnet.tutorial_net` (None: the original network)
NETWORKS = {"original": None, "identity extras": "identity", "dense extras": "dense"}
ITERATIONS_RULE = ("iterations to a target: the first loss reading from which the training loss stays <= the target "
                   "to the end of the run (the rule of every experiment here; inf if never)")
BUDGET_RULE = "loss at a budget B: the mean of the loss readings at iterations in [0.8 B, B]"
VERDICT_RULE = (
    f"per twin (identity extras, dense extras) and seed: 'faster' when the twin reaches every target reached by either "
    f"network in at most 1/{MARKEDLY:g} of the original's iterations (a target only the twin reaches counts as faster, "
    f"one only the original reaches as slower; none is skipped) and its loss at every budget is at most 1/{MARKEDLY:g} "
    "of the original's; 'slower' when at every target and every budget the twin is no better than the original; "
    "'mixed' otherwise. agrees: some twin is faster in every seed; differs: every twin is slower in every seed; "
    "inconclusive: anything else (the budget does not show the claim either way: early and late measures disagree, or "
    "the seeds do); a target reached by neither network is not counted; not applicable: no MNIST files")
PAPER = ("replacing each dense layer of TensorFlow's MNIST convnet by two matrices in succession (about 15% more "
         "parameters, no change in expressiveness) accelerated optimization markedly (Figure 5-right)")
CUT = ("to fit 30 minutes on 2 CPU cores the full run keeps only the tutorial's optimizer without regularizer (no "
       "dropout + L2, no plain SGD) and reads the loss every 50 steps on 1,000 images")


def _settings(quick: bool) -> dict:
    if quick:
        return dict(seeds=(0,), steps=12, eval_every=2, eval_size=128, images=640, budgets=(4, 8, 12))
    return dict(seeds=(0, 1, 2), steps=2000, eval_every=50, eval_size=1000, images=None, budgets=BUDGETS)


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
    from tqdm.auto import tqdm

    s = _settings(quick)
    images, labels = (mnist.images, mnist.labels) if s["images"] is None else (mnist.images[:s["images"]],
                                                                               mnist.labels[:s["images"]])
    curves, seconds = {}, {n: [] for n in NETWORKS}
    bar = tqdm(total=len(NETWORKS) * len(s["seeds"]) * s["steps"], desc="section8", unit="step", delay=1.0,
               disable=None)
    try:
        for n, extras in NETWORKS.items():
            for seed in s["seeds"]:
                net = convnet.tutorial_net(extras is not None, seed, extras=extras or "identity")
                out = convnet.train(net, images, labels, steps=s["steps"], lr=0.01, momentum=0.9, seed=seed,
                                    eval_every=s["eval_every"], eval_size=s["eval_size"], progress=lambda: bar.update(1))
                curves[n, seed] = out["train_loss"]
                seconds[n].append(out["seconds_per_step"])
    finally:
        bar.close()
    loss = np.array([[curves[n, seed] for seed in s["seeds"]] for n in NETWORKS])
    ds = xr.Dataset(
        {"train_loss": (("network", "seed", "iteration"), loss)},
        coords={"network": list(NETWORKS), "seed": list(s["seeds"]), "iteration": out["iterations"],
                "target": list(TARGETS), "budget": list(s["budgets"])},
        attrs={"data": mnist.description, "quick": int(quick), "loss": "mean cross-entropy on the first "
               f"{s['eval_size']} (shuffled) training images, no penalty, no dropout", "optimizer":
               "momentum 0.9, learning rate 0.01 * 0.95^epoch, batch 64, no regularizer",
               "iterations_rule": ITERATIONS_RULE, "budget_rule": BUDGET_RULE})
    ds = with_budgets(with_iterations(ds))
    return ds, _summary(ds, seconds, mnist.description, s), {"section8": _figure(ds)}


def with_iterations(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``iterations_to_target`` (network, seed, target) read from ``train_loss`` by
    :data:`ITERATIONS_RULE` and ``speedup`` (twin, seed, target): the original's iterations over the twin's (``inf``
    where only the twin reaches the target, 0 where only the original does, NaN where neither does)."""
    loss, its = ds.train_loss.values, ds.iteration.values
    reach = np.array([[[iterations_to(curve, its, t) for t in ds.target.values] for curve in per_net] for per_net in loss])
    with np.errstate(invalid="ignore", divide="ignore"):  # inf / inf: reached by neither, the one NaN
        speedup = reach[:1] / reach[1:]
    return ds.assign(iterations_to_target=(("network", "seed", "target"), reach),
                     speedup=(("twin", "seed", "target"), speedup)).assign_coords(twin=list(ds.network.values[1:]))


def with_budgets(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``loss_at_budget`` (network, seed, budget) by :data:`BUDGET_RULE` and ``loss_ratio`` (twin, seed,
    budget): the original's loss there over the twin's (above 1: the twin is lower)."""
    its = ds.iteration.values
    at = np.stack([ds.train_loss.values[..., (its >= 0.8 * b) & (its <= b)].mean(axis=-1) for b in ds.budget.values],
                  axis=-1)
    return ds.assign(loss_at_budget=(("network", "seed", "budget"), at),
                     loss_ratio=(("twin", "seed", "budget"), at[:1] / at[1:]))


def twin_outcome(speedups: np.ndarray, loss_ratios: np.ndarray) -> str:
    """'faster', 'slower' or 'mixed' for one twin and seed by :data:`VERDICT_RULE`, from its speed-ups per target
    (NaN: reached by neither, not counted) and its loss ratios per budget."""
    sp = np.asarray(speedups, float)
    sp = sp[~np.isnan(sp)]
    lr = np.asarray(loss_ratios, float)
    if np.all(sp >= MARKEDLY) and np.all(lr >= MARKEDLY):
        return "faster"
    if np.all(sp <= 1) and np.all(lr <= 1):
        return "slower"
    return "mixed"


def grade(speedup: np.ndarray, loss_ratio: np.ndarray) -> tuple[str, bool | None, dict]:
    """The verdict of :data:`VERDICT_RULE` from ``speedup`` (twin, seed, target) and ``loss_ratio`` (twin, seed,
    budget): ``(verdict, agrees, outcomes)`` with ``outcomes[twin index]`` the per-seed outcomes."""
    speedup, loss_ratio = np.asarray(speedup, float), np.asarray(loss_ratio, float)
    outcomes = {t: [twin_outcome(speedup[t, s], loss_ratio[t, s]) for s in range(speedup.shape[1])]
                for t in range(speedup.shape[0])}
    if any(all(o == "faster" for o in seeds) for seeds in outcomes.values()):
        return "agrees", True, outcomes
    if all(o == "slower" for seeds in outcomes.values() for o in seeds):
        return "differs", False, outcomes
    return "inconclusive", False, outcomes


def per_target(sp: np.ndarray, seeds) -> dict | str:
    """The speed-ups of one target over the seeds: median, min and max when both networks reached it in every seed;
    otherwise what happened in each seed, in words (a seed where one network missed the target is never skipped)."""
    if np.all(np.isfinite(sp) & (sp > 0)):
        return {"speedup_median": float(np.median(sp)), "speedup_min": float(np.min(sp)), "speedup_max": float(np.max(sp))}
    what = lambda x: ("reached by neither" if np.isnan(x) else "only the original reached it" if x == 0  # noqa: E731
                      else "only the twin reached it" if np.isinf(x) else f"{x:.2f}x")
    return "; ".join(f"seed {int(s)}: {what(x)}" for s, x in zip(seeds, sp))


def _fmt(v) -> str:
    return (f"{v['speedup_median']:.2f}x ({v['speedup_min']:.2f}-{v['speedup_max']:.2f})" if isinstance(v, dict)
            else v)


def _summary(ds: xr.Dataset, seconds: dict, description: str, s: dict) -> dict:
    params = {n: convnet.param_count(convnet.tutorial_net(e is not None, 0, extras=e or "identity"))
              for n, e in NETWORKS.items()}
    time_per_step = {n: float(np.median(v)) for n, v in seconds.items()}
    verdict, agrees, outcomes = grade(ds.speedup.values, ds.loss_ratio.values)
    twins = {}
    for t, twin in enumerate(ds.twin.values):
        twins[str(twin)] = {
            "speedup_to_target": {f"{q:g}": per_target(ds.speedup.values[t, :, j], ds.seed.values)
                                  for j, q in enumerate(ds.target.values)},
            "loss_ratio_at_budget": {str(int(b)): {"median": float(np.median(ds.loss_ratio.values[t, :, j])),
                                                   "min": float(ds.loss_ratio.values[t, :, j].min()),
                                                   "max": float(ds.loss_ratio.values[t, :, j].max())}
                                     for j, b in enumerate(ds.budget.values)},
            "outcome_per_seed": outcomes.get(t, []),
        }
    measured = "; ".join(
        f"{twin}: speed-up to " + ", ".join(f"{q}: {_fmt(v)}" for q, v in d["speedup_to_target"].items())
        + "; original's loss over the twin's at budgets " + ", ".join(f"{b}: {v['median']:.2f}x" for b, v in
                                                                     d["loss_ratio_at_budget"].items())
        + f" (per seed: {', '.join(d['outcome_per_seed'])})" for twin, d in twins.items())
    return {
        "paper": PAPER, "measured": f"median over seeds (min-max): {measured}", "agrees": agrees, "verdict": verdict,
        "verdict_rule": VERDICT_RULE, "data": description, "parameters": params,
        "parameter_overhead": params["identity extras"] / params["original"] - 1.0,
        "seconds_per_step": time_per_step,
        "time_overhead": {n: time_per_step[n] / time_per_step["original"] - 1.0 for n in list(NETWORKS)[1:]},
        "twins": twins, "iterations_rule": ITERATIONS_RULE, "budget_rule": BUDGET_RULE, "targets": list(TARGETS),
        "budgets": [int(b) for b in ds.budget.values], "seeds": list(s["seeds"]), "steps": s["steps"],
        "readings": {"every": s["eval_every"], "images": s["eval_size"]}, "optimizer": ds.attrs["optimizer"],
        "cut_to_fit": CUT,
        "final_loss": {n: {"median": float(np.median(ds.train_loss.sel(network=n).values[:, -1]))} for n in NETWORKS},
    }


def _figure(ds: xr.Dataset):
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    its = ds.iteration.values
    for n, color in zip(ds.network.values, ("C0", "C3", "C2")):
        curve = ds.train_loss.sel(network=n).values
        ax.semilogy(its, np.median(curve, axis=0), color=color, label=f"{n} (median of {curve.shape[0]} seeds)")
        ax.fill_between(its, curve.min(axis=0), curve.max(axis=0), color=color, alpha=0.2, lw=0)
    for t in ds.target.values:
        ax.axhline(t, color="0.7", lw=0.6, ls=":")
    for b in ds.budget.values:
        ax.axvline(b, color="0.8", lw=0.6)
    ax.set(xlabel="iteration", ylabel="training loss (cross-entropy, log scale)",
           title="loss (band: min-max over seeds; dotted: targets; grey: budgets)")
    ax.legend(fontsize=8)
    x = np.arange(len(ds.budget))
    for k, (twin, color) in enumerate(zip(ds.twin.values, ("C3", "C2"))):
        r = ds.loss_ratio.sel(twin=twin).values
        for s in range(r.shape[0]):
            bx.plot(x + 0.1 * (k - 0.5), r[s], "o", color=color, alpha=0.6, label=twin if s == 0 else None)
        bx.plot(x + 0.1 * (k - 0.5), np.median(r, axis=0), "_", color=color, ms=16, mew=2)
    bx.axhline(1, color="0.3", lw=0.8)
    bx.axhline(MARKEDLY, color="tab:red", lw=0.8, ls=":", label=f"{MARKEDLY:g}x ('markedly')")
    bx.set(xticks=x, xticklabels=[str(int(b)) for b in ds.budget.values], xlabel="budget (iterations)", yscale="log",
           ylabel="original's loss / twin's loss", title="loss at fixed budgets (dots: seeds; bar: median)")
    bx.legend(fontsize=8)
    fig.suptitle("ACH18 Section 8: MNIST convnet against its twins with square extras after each dense matrix "
                 "(momentum, no regularizer)", fontsize=10)
    return fig
