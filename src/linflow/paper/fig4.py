"""ACH18 Fig. 4: depth-3 GD against AdaGrad, AdaDelta, Adam and momentum on the linear model (l4), each tuned on
a grid; Adam with and without depth."""

from __future__ import annotations

import math

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from ..core import init
from ..core import runs as _runs
from ..core.descent import optax_descents
from ..core.text import words
from .common import STABLE_RULE, graded, problem_for, stable_to_end
from .common import caption as _caption
from .common import minimum_loss as _minimum_loss

FIG4_RULE = ("two claims: depth-3 GD ends closer to the minimum than AdaGrad and AdaDelta on the linear model, and Adam "
             "on the depth-3 network ends at least as close as Adam on the linear model; each method at the learning "
             f"rate of its grid with the lowest final loss among runs {STABLE_RULE}. agrees: both hold; partly: one; "
             "differs: neither; not applicable on synthetic data")


def grade(gaps: dict, synthetic: bool) -> dict:
    """:data:`FIG4_RULE` from the final gaps to the minimum per method (``inf``: no stable learning rate, which
    never wins): ``claims`` (each True or False) and the verdict."""
    beats_adagrad = gaps["GD depth 3"] < min(gaps["AdaGrad (linear)"], gaps["AdaDelta (linear)"])
    adam_helped = math.isfinite(gaps["Adam depth 3"]) and gaps["Adam depth 3"] <= gaps["Adam (linear)"]
    claims = {"depth-3 GD beats AdaGrad and AdaDelta": bool(beats_adagrad), "Adam improves with depth": bool(adam_helped)}
    return {"claims": claims, **graded(list(claims.values()), FIG4_RULE, synthetic)}


def fig4(data=None, quick: bool = False):
    """Depth-3 GD against AdaGrad, AdaDelta, Adam and momentum on a linear model (l4); Adam with depth."""
    prob, desc = problem_for(data, 4.0, quick)
    steps = 300 if quick else 3000
    save_every = max(1, steps // 300)
    grid = list(np.logspace(-4, 0.5, 6 if quick else 10))
    lin = (jnp.zeros((1, prob.d)),)
    deep = init.balanced((prob.d, 16, 16, 1), 0.5 ** (1 / 3) * 0.6, seed=0)
    setups = {"GD depth 3": ("sgd", deep), "AdaGrad (linear)": ("adagrad", lin), "AdaDelta (linear)": ("adadelta", lin),
              "Adam (linear)": ("adam", lin), "momentum (linear)": ("momentum", lin), "Adam depth 3": ("adam", deep),
              "GD (linear)": ("sgd", lin)}
    lmin = _minimum_loss(prob)
    l0 = float(prob.loss(jnp.zeros((1, prob.d))))
    summary, curves = {"steps": steps, "lr_grid": grid, "loss_min": lmin, "loss_at_zero": l0}, {}
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for label, (opt, layers) in setups.items():
        runs = [r.reached() for r in optax_descents(prob, layers, opt, grid, steps, save_every=save_every)]
        finals = [r.loss[-1] if stable_to_end(r.loss, r.ok, l0) else math.inf for r in runs]
        b = int(np.argmin(finals))
        curves[label] = runs[b]
        summary[label] = {"optimizer": opt, "learning_rate": grid[b], "final_loss": finals[b],
                          "final_gap_to_min": finals[b] - lmin}
        ax.plot(runs[b].iterations, np.maximum(runs[b].loss - lmin, 1e-300), label=f"{label} (lr {grid[b]:.2g})")
    ax.set(yscale="log", xlabel="iteration", ylabel="l4 loss - min")
    _caption(fig, "fig4: depth-3 GD against adaptive optimizers on the linear model (l4)", desc)
    ax.legend(fontsize=7)
    gaps = {k: v["final_gap_to_min"] for k, v in summary.items() if isinstance(v, dict)}
    better = [k for k in gaps if k != "GD depth 3" and gaps[k] < gaps["GD depth 3"]]
    summary["paper"] = ("depth-3 GD outperforms AdaGrad and AdaDelta on the linear model (l4); Adam improves with "
                        "overparameterization")
    summary["measured"] = (f"gap to the minimum after {steps} iterations: "
                           + ", ".join(f"{k} {words(v, '.3g', 'none (no stable learning rate)')}" for k, v in gaps.items())
                           + (f"; better than depth-3 GD: {', '.join(better)}" if better else ""))
    summary.update(grade(gaps, synthetic=data is None))
    summary["data"] = desc
    n = max(len(c.loss) for c in curves.values())
    ds = xr.Dataset({"loss": (("method", "sample"), np.array([_runs.padded(c.loss, n) for c in curves.values()]))},
                    coords={"method": list(curves), "iteration": ("sample", np.arange(n) * save_every)})
    return ds, summary, {"fig4": fig}
