r"""Does depth accelerate gradient descent? ACH18 Fig. 3 at the paper's configurations, explained by the flows.

ACH18 report that with the l4 loss a depth-2 network whose hidden layer is one scalar wide reaches a
given loss "orders of magnitude" sooner than the linear model, and that with l2 depth does not help.
For each configuration (:data:`CONFIGS`), loss p in (2, 4) and depth N (:data:`DEPTHS`):

* GD from a balanced start with ``||W_e(0)|| = 0.1`` (depth 1 starts at W = 0), over a learning-rate
  grid; for each target (a fraction q in :data:`TARGETS` of the way from L(0) to the minimum) the
  learning rate with the fewest iterations to stay below the target, among the runs finite at every
  save that, once below L(0), stay below it to the end of the budget. Seeds 0, 1, 2 (seed 0 on the whole grid,
  the others on the 4 grid points around seed 0's choices; quick mode: every seed on the whole
  grid, one compiled shape); no fallback target: a target depth 1 misses within the budget gives a
  lower bound on the speed-up, or none.
* The prediction from the flows: along the layers' gradient flow from the same start (seed 0), the
  flow time ``T_q`` to the target and the largest sharpness ``S_max`` on ``[0, T_q]``; GD cannot take
  steps above ``2 / S_max`` (docs/math.md section 5), so it needs about ``T_q S_max / 2`` iterations.
  The quotient of depth 1's prediction by depth N's predicts the speed-up. A second prediction takes
  the largest sharpness over the whole flow time GD covers in its budget (``eta * budget``): a run
  must stay stable to the end, after the target too, and the sharpness of a deep network keeps
  growing as ``W_e`` grows.

Iterations are read on a geometric grid: every step to 200, every 9 to 2,000, every 90 to 20,000, ...
"""

from __future__ import annotations

import math
import time

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from .. import common
from . import sensitivity as _sensitivity
from .runs import ETA_GRID, START_NORM, cell, predicted_iterations

__all__ = ["fig3", "figure", "sensitivity_figure", "sensitivity_summary", "CONFIGS", "TARGETS", "DEPTHS",
           "VERDICT_RULE", "predicted_iterations"]

CONFIGS = {
    "width1": {"preprocessing": "standardize", "width": 1, "start": "balanced",
               "source": "ACH18's description of the l4 experiment: hidden layers one scalar wide"},
    "whitened32": {"preprocessing": "whitened", "width": 32, "start": "balanced",
                   "source": "Arora, Cohen, Golowich, Hu (ICLR 2019): the Ethanol problem whitened, width 32"},
    "standardized16": {"preprocessing": "standardize", "width": 16, "start": "gaussian",
                       "source": "linflow's earlier fig3 setting, from a random Gaussian start (not balanced): with a "
                                 "balanced start every width follows the width-1 dynamics exactly (Theorem 1)"},
}
TARGETS = (0.5, 0.9, 0.99)
DEPTHS = (1, 2, 3, 4)
SEEDS = (0, 1, 2)
BUDGET = {("standardize", 2.0): 20_000, ("standardize", 4.0): 50_000, ("whitened", 2.0): 2_000, ("whitened", 4.0): 2_000}
FACTOR = 10.0
VERDICT_RULE = (
    f"'orders of magnitude' means a speed-up of at least {FACTOR:g}x at the 90% target (median over seeds). agrees: "
    "in the paper's configuration (width1) depth 2 reaches the l4 90% target at least 10x sooner than depth 1 and "
    "no deeper network beats depth 1 by more than 1.25x with l2; partly: some configuration and depth accelerates "
    "the l4 run by at least 1.5x at the 90% target; differs: none does; not applicable on synthetic data. Learning "
    f"rates count only from runs {common.STABLE_RULE}"
)


def fig3(data=None, quick: bool = False):
    """Depth 1..4 at each configuration, l2 and l4: iterations to 50/90/99% of the way to the minimum."""
    configs = {k: v for k, v in CONFIGS.items() if k != "standardized16"} if quick else CONFIGS
    depths = (1, 2) if quick else DEPTHS
    seeds = (0, 1) if quick else SEEDS
    cells, descs, meta = {}, [], {}
    for p in (2.0, 4.0):
        for pre in dict.fromkeys(c["preprocessing"] for c in configs.values()):
            prob, desc = common.problem_for(data, p, quick, pre)
            descs.append(desc)
            lmin, l0 = common.minimum_loss(prob), float(prob.loss(jnp.zeros((prob.k, prob.d))))
            targets = [l0 - q * (l0 - lmin) for q in TARGETS]
            steps = 2000 if quick else BUDGET[(pre, p)]
            meta[(pre, p)] = {"loss_at_zero": l0, "loss_min": lmin, "targets": targets, "budget": steps}
            base = None
            for name, cfg in configs.items():
                if cfg["preprocessing"] != pre:
                    continue
                for N in depths:
                    if N == 1 and base is not None:  # depth 1 does not depend on the width: one run per data
                        cells[(name, p, N)] = base
                        continue
                    cells[(name, p, N)] = cell(prob, pre, cfg["start"], cfg["width"], N, (0,) if N == 1 else seeds,
                                                steps, l0, targets, quick=quick)
                    base = cells[(name, p, N)] if N == 1 else base
    ds = _dataset(cells, configs, depths, seeds, meta)
    summary = summary_of(ds, meta, data is None)
    summary["data"] = list(dict.fromkeys(descs))
    began = time.perf_counter()
    rows, ratios = _sensitivity.sensitivity(data, quick)
    unique = {id(c): c for c in cells.values()}.values()  # depth 1 is shared between configurations
    summary["seconds"] = {"learning_rate_grids": sum(c["seconds"]["learning_rate_grid"] for c in unique),
                          "flows_and_sharpness": sum(c["seconds"]["flow"] for c in unique),
                          "sensitivity": time.perf_counter() - began}
    summary["sensitivity"] = sensitivity_summary(rows, ratios)
    summary["verdict_robustness"] = summary["sensitivity"]["verdict_robustness"]
    ds = ds.merge(_sensitivity_dataset(rows))
    return ds, summary, {"fig3": figure(ds, summary["data"]), "fig3_sensitivity": sensitivity_figure(rows)}


def sensitivity_summary(rows: list[dict], ratios: dict) -> dict:
    """The sensitivity table in words (l4, seed 0, speed-up of depth N over depth 1 per variant), each row's
    robustness, and what holds across variants for the verdict's two thresholds (10x and 1.5x at the 90% target)."""
    table = [{"config": r["config"], "preprocessing": r["preprocessing"], "depth": r["depth"], "budget": r["budget"],
              "sharpness_ratio_linear_model": r["sharpness_ratio_linear_model"],
              **{v: _sensitivity.words(x, v) for v, x in r["speedups"].items()}, "robustness": r["robustness"],
              "readings": {v: {"depth1": _reading_words(r["depth1"][v], v), "depthN": _reading_words(r["depthN"][v], v)}
                           for v in r["speedups"]}}
             for r in rows]
    at90 = [v for v in _sensitivity.VARIANTS if v.startswith("90%")]
    orders = [f"{r['config']} depth {r['depth']} under '{v}'" for r in rows for v in at90
              if v in r["speedups"] and r["speedups"][v] >= FACTOR]
    some = [f"{r['config']} depth {r['depth']} under '{v}'" for r in rows for v in at90
            if v in r["speedups"] and r["speedups"][v] >= 1.5]
    robust = ("orders of magnitude (>= 10x at the 90% target): "
              + ("holds under " + "; ".join(orders) if orders else "holds under no variant, in no configuration")
              + ". At least 1.5x at the 90% target: " + ("under " + "; ".join(some) if some else "under no variant"))
    return {"variants": list(_sensitivity.VARIANTS), "loss": "l4", "seed": 0, "eta_grids": {
                k: list(v) for k, v in _sensitivity.QUARTER_GRID.items()},
            "definitions": {"speed-up": "depth 1's iterations to the target over depth N's, or depth 1's gap to the "
                                        "minimum at the budget over depth N's (above 1: depth N is better; gaps "
                                        f"below {_sensitivity.GAP_FLOOR:g} (L(0) - L_min) count as that floor)",
                            "readings": "each depth's iterations to the target, or its gap L - L_min at the budget",
                            "sharpness_ratio_linear_model": "S(0) / S(W*) of the linear model's loss: a bound on "
                                                            "the gain of any preconditioning near the minimum",
                            "robustness": _sensitivity.DIRECTION_RULE},
            "sharpness": ratios, "table": table, "verdict_robustness": robust}


def _reading_words(x: float, variant: str):
    """One depth's reading for the JSON: a number, or what it means in words."""
    if math.isfinite(x):
        return float(x)
    gap = variant.startswith("gap at")
    return ("no stable run" if gap else "not reached") if math.isinf(x) else "beyond the budget"


def _sensitivity_dataset(rows: list[dict]) -> xr.Dataset:
    """The sensitivity speed-ups as an array (inf: only depth N reached; 0: only depth 1; nan: neither, or the
    variant is beyond the configuration's budget)."""
    names = list(dict.fromkeys(r["config"] for r in rows))
    depths = sorted({r["depth"] for r in rows})
    out = np.full((len(names), len(depths), len(_sensitivity.VARIANTS)), np.nan)
    for r in rows:
        for k, v in enumerate(_sensitivity.VARIANTS):
            out[names.index(r["config"]), depths.index(r["depth"]), k] = r["speedups"].get(v, np.nan)
    return xr.Dataset({"sensitivity_speedup": (("sensitivity_config", "sensitivity_depth", "variant"), out)},
                      coords={"sensitivity_config": names, "sensitivity_depth": depths,
                              "variant": list(_sensitivity.VARIANTS)})


def sensitivity_figure(rows: list[dict]):
    """The sensitivity table drawn: rows (configuration, depth), columns variants, colour log10 of the speed-up."""
    variants = list(_sensitivity.VARIANTS)
    fig, ax = plt.subplots(figsize=(2.0 + 1.35 * len(variants), 1.6 + 0.42 * len(rows)), constrained_layout=True)
    vals = np.array([[r["speedups"].get(v, np.nan) for v in variants] for r in rows], float).reshape(len(rows), -1)
    with np.errstate(divide="ignore"):
        color = np.clip(np.log10(np.where(vals == 0, 1e-3, vals)), -1.0, 1.0)
    im = ax.imshow(np.ma.masked_invalid(color), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_facecolor("0.85")
    for i, r in enumerate(rows):
        for j, v in enumerate(variants):
            text = _sensitivity.words(r["speedups"][v], v) if v in r["speedups"] else "beyond budget"
            ax.text(j, i, text.replace("only depth ", "only\ndepth ").replace("neither", "neither\n")
                    .replace("no stable", "no stable\n"), ha="center", va="center", fontsize=7,
                    color="white" if abs(color[i, j]) > 0.6 else "black")
    ax.set_xticks(range(len(variants)), [v.replace(", ", ",\n") for v in variants], fontsize=7.5)
    ax.set_yticks(range(len(rows)), [f"{r['config']}, depth {r['depth']}\n(S(0)/S(W*) = "
                                     f"{r['sharpness_ratio_linear_model']:.3g})" for r in rows], fontsize=7.5)
    fig.colorbar(im, ax=ax, label="log10 speed-up (clipped to +-1)", shrink=0.8)
    ax.set_title("fig3 sensitivity (l4, seed 0): speed-up of depth N over depth 1 under each rule; blue: depth N "
                 "better; grey: nothing to compare", fontsize=9)
    return fig


def _dataset(cells, configs, depths, seeds, meta) -> xr.Dataset:
    names, ps = list(configs), [2.0, 4.0]
    n = max(len(c["curve_iterations"]) for c in cells.values())
    curve = np.full((len(names), 2, len(depths), n), np.nan)
    curve_eta = np.full((len(names), 2, len(depths)), np.nan)
    curve_reached = np.zeros((len(names), 2, len(depths)), bool)
    curve_its = np.full((len(names), 2, n), np.nan)
    levels = np.full((len(names), 2, 2 + len(TARGETS)), np.nan)
    its = np.full((len(names), 2, len(depths), len(seeds), len(TARGETS)), np.nan)
    eta = np.full_like(its, np.nan)
    pred = np.full((len(names), 2, len(depths), len(TARGETS)), np.nan)
    flow_t, smax, pred_b, smax_b = pred.copy(), pred.copy(), pred.copy(), pred.copy()
    for (name, p, N), c in cells.items():
        i, j, n = names.index(name), ps.index(p), list(depths).index(N)
        k = len(c["iterations"])
        its[i, j, n, :k] = np.where(np.isfinite(c["iterations"]), c["iterations"], np.inf)
        its[i, j, n, k:] = its[i, j, n, k - 1]  # depth 1 is deterministic: the same run for every seed
        eta[i, j, n, :k] = c["eta"]
        eta[i, j, n, k:] = eta[i, j, n, k - 1]
        pred[i, j, n], flow_t[i, j, n], smax[i, j, n] = c["predicted"], c["flow_time"], c["max_sharpness"]
        pred_b[i, j, n], smax_b[i, j, n] = c["predicted_budget"], c["max_sharpness_budget"]
        curve[i, j, n, : len(c["curve"])] = c["curve"]
        curve_eta[i, j, n], curve_reached[i, j, n] = c["curve_eta"], c["curve_reached"]
        curve_its[i, j, : len(c["curve_iterations"])] = c["curve_iterations"]
        m = meta[(configs[name]["preprocessing"], p)]
        levels[i, j] = [m["loss_at_zero"], m["loss_min"], *m["targets"]]
    return xr.Dataset(
        {"iterations": (("config", "p", "depth", "seed", "target"), its),
         "eta": (("config", "p", "depth", "seed", "target"), eta),
         "predicted_iterations": (("config", "p", "depth", "target"), pred),
         "flow_time_to_target": (("config", "p", "depth", "target"), flow_t),
         "max_sharpness_on_path": (("config", "p", "depth", "target"), smax),
         "predicted_iterations_budget": (("config", "p", "depth", "target"), pred_b),
         "max_sharpness_over_budget": (("config", "p", "depth", "target"), smax_b),
         "curve_90": (("config", "p", "depth", "save"), curve),
         "curve_eta": (("config", "p", "depth"), curve_eta),
         "curve_reached_90": (("config", "p", "depth"), curve_reached),
         "curve_iteration": (("config", "p", "save"), curve_its),
         "loss_at_zero": (("config", "p"), levels[..., 0]), "loss_min": (("config", "p"), levels[..., 1]),
         "target_loss": (("config", "p", "target"), levels[..., 2:])},
        coords={"config": names, "p": ps, "depth": list(depths), "seed": list(seeds), "target": list(TARGETS)},
        attrs={"iterations": "fewest iterations to stay below the target (inf: no acceptable run reached it within the "
                             "budget)", "start_norm": START_NORM,
               "curve_90": "seed 0's loss at the learning rate chosen for the 90% target"})


def _speedups(ds: xr.Dataset):
    """Speed-up of each depth over depth 1 per seed (inf where only depth N reaches; nan where neither)."""
    base = ds.iterations.sel(depth=ds.depth.values[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (base / ds.iterations).transpose(*ds.iterations.dims)


def summary_of(ds: xr.Dataset, meta: dict, synthetic: bool) -> dict:
    sp = _speedups(ds)
    out = {"targets_fraction": list(TARGETS), "depths": ds.depth.values.tolist(), "seeds": ds.seed.values.tolist(),
           "start_norm": START_NORM, "eta_grids": {k: list(v) for k, v in ETA_GRID.items()},
           "problems": {f"{pre}_l{int(p)}": m for (pre, p), m in meta.items()}, "configurations": {}}
    rows = [_row(ds, sp, name, p, N, q) for name in ds.config.values for p in ds.p.values for N in ds.depth.values
            for q in ds.target.values]
    out["configurations"] = {str(name): CONFIGS[str(name)] for name in ds.config.values}
    out["table"] = rows
    l4_90 = [r for r in rows if r["p"] == 4.0 and r["target"] == 0.9 and r["depth"] > 1]
    l2_90 = [r for r in rows if r["p"] == 2.0 and r["target"] == 0.9 and r["depth"] > 1]
    best = max(l4_90, key=lambda r: _num(r["speedup_median"]), default=None)
    paper_cfg = [r for r in l4_90 if r["config"] == "width1" and r["depth"] == 2]
    l2_paper = [r for r in l2_90 if r["config"] == "width1"]
    orders = [r for r in l4_90 if _num(r["speedup_median"]) >= FACTOR]
    if synthetic:
        out.update(common.verdict(common.SYNTHETIC, VERDICT_RULE))
    elif (paper_cfg and _num(paper_cfg[0]["speedup_median"]) >= FACTOR
          and all(_num(r["speedup_median"]) <= 1.25 for r in l2_paper)):
        out.update(common.verdict("agrees", VERDICT_RULE))
    elif any(_num(r["speedup_median"]) >= 1.5 for r in l4_90):
        out.update(common.verdict("partly", VERDICT_RULE))
    else:
        out.update(common.verdict("differs", VERDICT_RULE))
    out["orders_of_magnitude"] = (f"holds in {len(orders)} (configuration, depth) cells: "
                                  + ", ".join(f"{r['config']} depth {r['depth']} ({_fmt(r['speedup_median'])})" for r in orders)
                                  if orders else "holds in no configuration (no speed-up of 10x at the 90% target)")
    out["paper"] = ("with l4, depth accelerates GD by orders of magnitude (depth 2, hidden width 1); with l2 it does "
                    "not (slightly slower)")
    out["measured"] = ("l4, 90% target, median speed-up over depth 1: "
                       + "; ".join(f"{r['config']} depth {r['depth']} {_fmt(r['speedup_median'])} (predicted "
                                   f"{_fmt(r['predicted_speedup'])})" for r in l4_90)
                       + (f"; best {best['config']} depth {best['depth']}" if best else ""))
    return out


def _row(ds: xr.Dataset, sp: xr.DataArray, name, p, N, q) -> dict:
    """One line of the table: chosen etas and iterations per seed, speed-up (median, range), the prediction."""
    cell = ds.sel(config=name, p=p, depth=N, target=q)
    first = ds.sel(config=name, p=p, depth=ds.depth.values[0], target=q)
    s = sp.sel(config=name, p=p, depth=N, target=q).values
    pred1, predN = float(first.predicted_iterations), float(cell.predicted_iterations)
    b1, bN = float(first.predicted_iterations_budget), float(cell.predicted_iterations_budget)
    return {"config": str(name), "p": float(p), "depth": int(N), "target": float(q),
            "eta": [float(e) for e in cell.eta.values], "iterations": [float(x) for x in cell.iterations.values],
            "speedup_median": _median(s), "speedup_min": _extreme(s, np.min), "speedup_max": _extreme(s, np.max),
            "speedup_is_lower_bound": bool(np.isinf(first.iterations.values[0]) and np.isfinite(cell.iterations.values).all()),
            "predicted_iterations": predN, "predicted_speedup": pred1 / predN if predN > 0 else math.nan,
            "flow_time_to_target": float(cell.flow_time_to_target),
            "max_sharpness_on_path": float(cell.max_sharpness_on_path),
            "predicted_iterations_budget": bN, "predicted_speedup_budget": b1 / bN if bN > 0 else math.nan,
            "max_sharpness_over_budget": float(cell.max_sharpness_over_budget)}


def _extreme(s, f) -> float:
    s = np.asarray(s, float)
    return float(f(s)) if not np.isnan(s).any() else math.nan


def _num(x) -> float:
    return -math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _median(s) -> float:
    s = np.asarray(s, float)
    return float(np.median(s)) if not np.isnan(s).any() else math.nan


def _fmt(x) -> str:
    return "not reached" if x is None or math.isnan(x) else ">budget" if math.isinf(x) else f"{x:.2f}x"


def figure(ds: xr.Dataset, descs=()):
    """Loss curves per configuration (seed 0, the eta chosen for 90%) and the speed-ups, measured and predicted."""
    names = list(ds.config.values)
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(5 * (len(names) + 1), 8.5), constrained_layout=True)
    cmap = plt.cm.viridis(np.linspace(0, 0.85, len(ds.depth)))
    for i, p in enumerate(ds.p.values):
        for j, name in enumerate(names):
            ax, cell = axes[i, j], ds.sel(config=name, p=p)
            its = np.maximum(cell.curve_iteration.values, 1)
            for N, c in zip(ds.depth.values, cmap):
                e, reached = float(cell.curve_eta.sel(depth=N)), bool(cell.curve_reached_90.sel(depth=N))
                label = (f"depth {int(N)} (eta {e:.2g})" if reached else
                         f"depth {int(N)}: 90% not reached; lowest stable run, eta {e:.2g}" if np.isfinite(e) else
                         f"depth {int(N)}: no stable run")
                ax.plot(its, cell.curve_90.sel(depth=N).values - float(cell.loss_min), color=c,
                        ls="-" if reached else "--", lw=1.8, label=label)
            for k, t in enumerate(cell.target_loss.values):
                ax.axhline(t - float(cell.loss_min), color="0.4", ls=":", lw=1, label="targets 50/90/99%" if k == 0 else None)
            floor = 1e-6 * float(cell.loss_at_zero - cell.loss_min)  # below: rounding noise of the minimum
            ax.set(xscale="log", yscale="log", xlim=(1, np.nanmax(its)), ylim=(floor, None), xlabel="iteration",
                   ylabel=f"l{int(p)} loss - min")
            ax.set_title(f"{name}, l{int(p)}: best eta for the 90% target (seed 0)", fontsize=10)
            ax.legend(fontsize=8.5, loc="lower left")
        ax = axes[i, -1]
        sp = _speedups(ds).sel(p=p, target=0.9)
        x = np.arange(len(ds.depth))
        for j, name in enumerate(names):
            s = sp.sel(config=name).values
            med = np.array([_median(r) for r in s])
            ax.plot(x + 0.08 * j, np.where(np.isfinite(med), med, np.nan), "o-", label=f"{name} measured")
            pred = (ds.predicted_iterations.sel(config=name, p=p, target=0.9, depth=ds.depth.values[0])
                    / ds.predicted_iterations.sel(config=name, p=p, target=0.9)).values
            color = ax.lines[-1].get_color()
            ax.plot(x + 0.08 * j, pred, "x--", color=color, label=f"{name} predicted, S_max to the target")
            pred_b = (ds.predicted_iterations_budget.sel(config=name, p=p, target=0.9, depth=ds.depth.values[0])
                      / ds.predicted_iterations_budget.sel(config=name, p=p, target=0.9)).values
            ax.plot(x + 0.08 * j, pred_b, "+:", color=color, ms=9, label=f"{name} predicted, S_max over the budget")
        ax.axhline(1, color="0.3", lw=0.8)
        ax.axhline(FACTOR, color="tab:red", lw=0.8, ls=":", label=f"{FACTOR:g}x ('orders of magnitude')")
        ax.set(yscale="log", xticks=x, xticklabels=[str(int(d)) for d in ds.depth.values], xlabel="depth",
               ylabel="speed-up over depth 1 (90% target)", title=f"l{int(p)}: speed-up, measured and predicted")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=1)
    common.caption(fig, "fig3: iterations to 50/90/99% of the way to the minimum; speed-up of depth over depth 1",
                        descs)
    return fig
