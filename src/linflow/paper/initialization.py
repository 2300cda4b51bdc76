"""ACH18's initializations: depth-3 GD from a near-zero start against the identity (linear residual) start,
l2 and l4, graded against the paper's claim: a near-zero start stalls a deep network (zero is a saddle: every
layer's gradient vanishes with the others), an identity (near-identity) start does not (ACH18 Section 8 and its
discussion of Eq. 7's balancedness). The rule: :data:`RULE` (:func:`grade`)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from ..core import init
from ..core import runs as _runs
from ..core.descent import gradient_descents
from ..core.text import words
from .common import STABLE_RULE, graded, problem_for, stable_to_end
from .common import caption as _caption
from .common import minimum_loss as _minimum_loss

HALF = 0.5
FASTER = 2.0
RULE = (f"per loss (l2, l4), each start at its own learning rate (the lowest final loss among runs "
        f"{STABLE_RULE}): the iterations until the loss falls below L(0) - {HALF:g} (L(0) - L_min) (half the gap from "
        f"the zero network to the minimum); identity relieves the stall at that loss when it gets there in at most "
        f"1/{FASTER:g} of the near-zero start's iterations, or the near-zero start never gets there in the budget "
        f"while identity does. Agrees when it does at both losses, partly at one, differs at neither; not applicable "
        f"on synthetic data")
PAPER = ("near-zero initialization stalls a deep linear network, and identity (near-identity) initialization, which "
         "satisfies the balancedness condition of Eq. 7 approximately, relieves it (ACH18, Section 8)")


def iterations_to_half(iterations, loss, l0: float, lmin: float) -> float:
    """The first saved iteration with ``loss <= l0 - HALF (l0 - lmin)`` (``inf`` if none)."""
    hit = np.flatnonzero(np.asarray(loss) <= l0 - HALF * (l0 - lmin))
    return float(np.asarray(iterations)[hit[0]]) if hit.size else math.inf


def grade(times: dict, synthetic: bool) -> dict:
    """The verdict from ``{p: (near_zero iterations, identity iterations)}`` (``inf``: never within the budget) by
    :data:`RULE`."""
    relieves = [math.isfinite(ident) and (not math.isfinite(near) or FASTER * ident <= near)
                for near, ident in times.values()]
    return graded(relieves, RULE, synthetic)


def late_phase(summary: dict) -> str:
    """Which start ends lower per loss (the rule grades the early phase only; this says what comes after)."""
    out = []
    for p in (2, 4):
        near, ident = summary[f"l{p}_near_zero"]["final_gap_to_min"], summary[f"l{p}_identity"]["final_gap_to_min"]
        if not (math.isfinite(near) and math.isfinite(ident)):
            out.append(f"l{p}: not compared (a start has no stable learning rate)")
        else:
            lower = "near-zero" if near < ident else "identity"
            out.append(f"l{p}: {lower} ends lower after {summary['steps']} iterations (gap {min(near, ident):.3g} "
                       f"against {max(near, ident):.3g})")
    return "; ".join(out) + " (not graded: the paper's claim concerns the stall)"


def init_experiment(data=None, quick: bool = False):
    """Depth-3 GD from a near-zero start against the identity (linear residual) start, l2 and l4."""
    steps = 200 if quick else 3000
    save_every = max(1, steps // (50 if quick else 300))  # quick: 51 saves (each keeps the 128-wide layers of 4 runs)
    etas = list(np.logspace(-4, -0.5, 4 if quick else 10))
    summary, descs, curves, times = {"steps": steps, "eta_grid": etas}, [], {}, {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    for i, p in enumerate((2.0, 4.0)):
        prob, desc = problem_for(data, p, quick)
        descs.append(desc)
        lmin = _minimum_loss(prob)
        l0 = float(prob.loss(jnp.zeros((1, prob.d))))
        dims = (prob.d, prob.d, prob.d, 1)
        for name, layers in (("near_zero", init.near_zero(dims, 1e-2, seed=0)), ("identity", init.identity(dims))):
            runs = [r.reached() for r in gradient_descents(prob, layers, etas, steps, save_every=save_every)]
            finals = [r.loss[-1] if stable_to_end(r.loss, r.ok, l0) else math.inf for r in runs]
            b = int(np.argmin(finals))
            curves[(p, name)] = runs[b]
            half = iterations_to_half(runs[b].iterations, runs[b].loss, l0, lmin) if math.isfinite(finals[b]) \
                else math.inf
            times.setdefault(p, [None, None])[0 if name == "near_zero" else 1] = half
            summary[f"l{int(p)}_{name}"] = {"eta": etas[b], "final_loss": finals[b], "final_gap_to_min": finals[b] - lmin,
                                            "iterations_to_half_gap": words(half, ".0f", f"not reached in {steps}"),
                                            "imbalance_at_start": float(init.imbalance(layers))}
            axes[i].plot(runs[b].iterations, np.maximum(runs[b].loss - lmin, 1e-300), label=f"{name} (eta {etas[b]:.2g})")
        axes[i].axhline(HALF * (l0 - lmin), color="0.4", ls=":", lw=1, label="half the gap from L(0) (the rule)")
        axes[i].set(yscale="log", xlabel="iteration", ylabel="loss - min", title=f"l{int(p)}, depth 3")
        axes[i].legend(fontsize=8)
    summary["paper"] = PAPER
    summary["measured"] = "; ".join(
        f"{k}: iterations to half the gap {v['iterations_to_half_gap']}, final gap "
        f"{words(v['final_gap_to_min'], '.3g', 'none (no stable learning rate)')}"
        for k, v in summary.items() if isinstance(v, dict))
    summary.update(grade({p: tuple(t) for p, t in times.items()}, synthetic=data is None))
    summary["late_phase"] = late_phase(summary)
    summary["data"] = descs
    _caption(fig, "init: near-zero against identity initialization, depth 3", descs)
    n = max(len(c.loss) for c in curves.values())
    ds = xr.Dataset({"loss": (("p", "init", "sample"), np.array([[_runs.padded(curves[(p, k)].loss, n)
                                                                   for k in ("near_zero", "identity")]
                                                                  for p in (2.0, 4.0)]))},
                    coords={"p": [2.0, 4.0], "init": ["near_zero", "identity"],
                            "iteration": ("sample", np.arange(n) * save_every)})
    return ds, summary, {"init": fig}
