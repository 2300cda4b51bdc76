"""Kreisler, Nacson, Soudry & Carmon (ICML 2023): on scalar networks gradient descent decreases the sharpness of the
gradient flow's solution (GFS sharpness) monotonically, even while GD's own sharpness exceeds ``2 / eta``
(docs/math.md section 11).

Setting: scalar networks (every width 1) of depth 2, 3, 4 on ``L = (1/2)(w_N ... w_1 - 1)^2`` from unbalanced
starts off the minima; GD at ``eta = r * 2 / S_GFS(w0)`` for several ratios ``r`` (``r > 1``: GD cannot converge to the
flow's solution from the start); at every iterate ``S_GFS(w_k)`` (:func:`linflow.gfs_sharpness`: the layer flow to
``||grad|| <= 1e-8``, batched over the iterates). Beyond the theorem: depth 2 and 3 networks of width 2 on a whitened
``2 x 2`` target, where the theorem says nothing.
"""

from __future__ import annotations

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from ..core import init, problems
from ..core.curvature import sharpness
from ..core.descent import gradient_descent
from ..core.gfs import gfs_sharpness
from ..core.problems import Problem
from .common import caption, verdict

__all__ = ["kreisler23", "RULE", "MONOTONE_TOL", "CASES"]

MONOTONE_TOL = 1e-6
#: name -> (problem, start); scalar cases first
CASES = {
    "scalar depth 2": ((1.0,), (2.0, 0.2)),
    "scalar depth 3": ((1.0,), (1.8, 0.5, 0.6)),
    "scalar depth 4": ((1.0,), (1.7, 0.5, 0.6, 0.7)),
    "width 2 depth 2": ((1.0, 0.6), 2),
    "width 2 depth 3": ((1.0, 0.6), 3),
}
FULL = {"ratios": (0.5, 0.9, 1.2, 1.6, 2.0), "steps": 400}
QUICK = {"ratios": (0.9, 1.6), "steps": 150}
RULE = (f"S_GFS is monotone along a run when S_GFS(w_(k+1)) <= (1 + {MONOTONE_TOL:g}) S_GFS(w_k) at every step (the "
        f"tolerance covers the flow's stopping rule, ||grad|| <= 1e-8). Agrees when every scalar run (depths 2-4, "
        f"every eta) is monotone, none diverged, and in at least one of them GD's own sharpness exceeded 2 / eta "
        f"(the theorem's non-trivial regime); differs when a scalar run is not monotone; partly when a scalar run "
        f"diverged (its S_GFS is not defined past that step) and the others are monotone. The width-2 runs are "
        f"reported, not graded")
PAPER = ("for scalar networks, GD monotonically decreases the sharpness of the gradient flow solution (GFS sharpness), "
         "also when GD's sharpness is above 2 / eta (Kreisler et al., ICML 2023, Theorem 3.2 and Section 3)")


def case(name: str) -> tuple[Problem, tuple]:
    values, start = CASES[name]
    if isinstance(start, tuple):
        prob = Problem(np.array([[1.0]]), np.array([values[0]]))  # L = (1/2)(w_N ... w_1 - y)^2
        return prob, tuple(jnp.array([[w]]) for w in start)
    prob = problems.whitened(values, seed=0)
    return prob, init.near_zero((2,) * (start + 1), std=0.8, seed=1)


def kreisler23(data=None, quick: bool = False):
    """The GFS sharpness along GD per case, ratio and step: ``(dataset, summary, figures)``; ``data`` is not used."""
    cfg = QUICK if quick else FULL
    ratios, steps = cfg["ratios"], cfg["steps"]
    names = list(CASES)
    shape = (len(names), len(ratios))
    gfs, gd_sharp, loss = (np.full(shape + (steps + 1,), np.nan) for _ in range(3))
    eta = np.full(shape, np.nan)
    status = np.full(shape, "", dtype=object)
    for i, name in enumerate(names):
        prob, w0 = case(name)
        s0 = float(gfs_sharpness(prob, w0))
        for j, r in enumerate(ratios):
            eta[i, j] = 2 * r / s0
            run = gradient_descent(prob, w0, eta[i, j], steps)
            if run.status != "ok":
                status[i, j] = f"GD {run.status}: {run.message}"
                continue
            gfs[i, j] = np.asarray(gfs_sharpness(prob, run.layers))
            gd_sharp[i, j] = np.asarray(sharpness(prob, run.layers))
            loss[i, j] = np.asarray(run.loss)
            status[i, j] = "ok"
    increase = np.nanmax(np.diff(gfs, axis=-1) / gfs[..., :-1], axis=-1, initial=-np.inf)
    ds = xr.Dataset(
        {"gfs_sharpness": (("case", "ratio", "step"), gfs), "gd_sharpness": (("case", "ratio", "step"), gd_sharp),
         "loss": (("case", "ratio", "step"), loss), "eta": (("case", "ratio"), eta),
         "largest_relative_increase": (("case", "ratio"), np.where(status == "ok", increase, np.nan)),
         "monotone": (("case", "ratio"), (status == "ok") & (increase <= MONOTONE_TOL)),
         "gd_above_threshold": (("case", "ratio"), np.nanmax(gd_sharp, axis=-1, initial=0.0) * eta / 2 > 1),
         "status": (("case", "ratio"), status.astype(str))},
        coords={"case": names, "ratio": list(ratios), "step": np.arange(steps + 1)},
        attrs={"rule": RULE, "eta": "eta = ratio * 2 / S_GFS(w0)",
               "gfs": "S(phi(w)): the layer flow (tsit5, rtol 1e-10) to ||grad|| <= 1e-8, then Lanczos",
               "starts": "; ".join(f"{n}: {CASES[n][1]}" if isinstance(CASES[n][1], tuple) else
                                   f"{n}: near_zero(std 0.8, seed 1), target singular values {CASES[n][0]}"
                                   for n in names)})
    return ds, _grade(ds), {"kreisler23": figure(ds)}


def _grade(ds: xr.Dataset) -> dict:
    scalar = [str(c) for c in ds.case.values if str(c).startswith("scalar")]
    sc = ds.sel(case=scalar)
    diverged = [f"{c} at ratio {float(r):g}: {sc.status.sel(case=c, ratio=r).item()}" for c in scalar
                for r in ds.ratio.values if sc.status.sel(case=c, ratio=r).item() != "ok"]
    broken = [f"{c} at ratio {float(r):g} (largest increase {float(sc.largest_relative_increase.sel(case=c, ratio=r)):.2e})"
              for c in scalar for r in ds.ratio.values
              if sc.status.sel(case=c, ratio=r).item() == "ok" and not bool(sc.monotone.sel(case=c, ratio=r))]
    nontrivial = bool((sc.gd_above_threshold & (sc.status == "ok")).any())
    value = "differs" if broken else "partly" if diverged else "agrees" if nontrivial else "partly"
    rows = {str(c): {f"{float(r):g}": _row(ds, c, r) for r in ds.ratio.values} for c in ds.case.values}
    wide = {c: v for c, v in rows.items() if not c.startswith("scalar")}
    measured = (f"scalar runs monotone: {sum(bool(sc.monotone.sel(case=c, ratio=r)) for c in scalar for r in ds.ratio.values)}"
                f" of {len(scalar) * ds.sizes['ratio']}; GD's sharpness above 2 / eta in "
                f"{int((sc.gd_above_threshold & (sc.status == 'ok')).sum())} of them; not monotone: "
                f"{'; '.join(broken) or 'none'}; diverged: {'; '.join(diverged) or 'none'}. Width 2 (not graded): "
                + "; ".join(f"{c}: monotone at " + (", ".join(r for r, v in row.items() if v.get("monotone")) or "no ratio")
                            + "".join(f" ({r}: {v['status']})" for r, v in row.items() if "status" in v)
                            for c, row in wide.items()))
    return {**verdict(value, RULE), "paper": PAPER, "measured": measured, "runs": rows,
            "data": "scalar and width-2 networks on synthetic targets (no data set)"}


def _row(ds, case, ratio) -> dict:
    row = ds.sel(case=case, ratio=ratio)
    if row.status.item() != "ok":
        return {"status": row.status.item()}
    return {"eta": float(row.eta), "monotone": bool(row.monotone),
            "largest_relative_increase": float(row.largest_relative_increase),
            "gfs_start": float(row.gfs_sharpness[0]), "gfs_end": float(row.gfs_sharpness[-1]),
            "two_over_eta": 2 / float(row.eta), "gd_sharpness_max_times_eta_over_2": float(row.gd_sharpness.max()) *
            float(row.eta) / 2, "final_loss": float(row.loss[-1])}


def figure(ds: xr.Dataset):
    """``S_GFS(w_k) eta / 2`` (solid) and GD's own sharpness times ``eta / 2`` (dots) against the step, one panel per
    case, one colour per ratio: GD's sharpness may exceed 1 (unstable) while the GFS sharpness falls."""
    n = ds.sizes["case"]
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.8), layout="constrained", sharey=True)
    for ax, case in zip(np.atleast_1d(axes), ds.case.values):
        for r in ds.ratio.values:
            row = ds.sel(case=case, ratio=r)
            half = float(row.eta) / 2
            line, = ax.plot(ds.step, row.gfs_sharpness * half, "-", label=f"r = {float(r):g}")
            ax.plot(ds.step, row.gd_sharpness * half, ".", ms=1.5, color=line.get_color(), alpha=0.5)
        ax.axhline(1.0, color="k", lw=0.7)
        ax.set(title=str(case), xlabel="GD step k", yscale="log")
        ax.grid(True, alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("S eta / 2 (line: S_GFS(w_k); dots: S(w_k))")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    caption(fig, "GFS sharpness along gradient descent (Kreisler et al. 2023)",
            "eta = r * 2 / S_GFS(w0); 1 is the stability threshold 2 / eta")
    return fig
