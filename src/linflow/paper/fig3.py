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

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from . import common
from ..core import init
from ..core.curvature import sharpness
from ..core.descent import EulerRule, descend_chunks
from ..core.fields import LayerFlow
from ..core.integrate import gradient_flow

__all__ = ["fig3", "figure", "CONFIGS", "TARGETS", "DEPTHS", "VERDICT_RULE", "predicted_iterations"]

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
START_NORM = 0.1
BUDGET = {("standardize", 2.0): 20_000, ("standardize", 4.0): 50_000, ("whitened", 2.0): 2_000, ("whitened", 4.0): 2_000}
ETA_GRID = {"standardize": tuple(10.0 ** np.arange(-5.0, -0.9, 0.5)), "whitened": tuple(10.0 ** np.arange(-3.0, 0.6, 0.5))}
FACTOR = 10.0
SAVES_PER_PIECE = 200
WINDOW = 4
VERDICT_RULE = (
    f"'orders of magnitude' means a speed-up of at least {FACTOR:g}x at the 90% target (median over seeds). agrees: "
    "in the paper's configuration (width1) depth 2 reaches the l4 90% target at least 10x sooner than depth 1 and "
    "no deeper network beats depth 1 by more than 1.25x with l2; partly: some configuration and depth accelerates "
    "the l4 run by at least 1.5x at the 90% target; differs: none does; not applicable on synthetic data. Learning "
    f"rates count only from runs {common.STABLE_RULE}"
)


def predicted_iterations(flow_time: float, max_sharpness: float) -> float:
    """Iterations GD needs to cover ``flow_time`` with the largest stable step ``2 / max_sharpness``."""
    if not (np.isfinite(flow_time) and np.isfinite(max_sharpness)):
        return math.nan
    return float(max(1.0, math.ceil(flow_time * max_sharpness / 2)))


def _start(prob, depth: int, width: int, seed: int, start: str = "balanced"):
    """Depth 1: W = 0. Deeper: balanced layers with ``||W_e(0)|| = START_NORM``, or independent Gaussian entries
    (``init.near_zero``) with the standard deviation that gives ``E ||W_e(0)||_F^2 = START_NORM^2`` (not balanced)."""
    if depth == 1:
        return (jnp.zeros((prob.k, prob.d)),)
    dims = (prob.d,) + (width,) * (depth - 1) + (prob.k,)
    if start == "balanced":
        return init.balanced(dims, START_NORM ** (1 / depth), seed)
    std = (START_NORM**2 / float(np.prod(dims))) ** (1 / (2 * depth))
    return init.near_zero(dims, std, seed)


def _pieces(steps: int, n_saves: int = SAVES_PER_PIECE) -> list[int]:
    """Steps between saves in consecutive pieces of ``n_saves`` saves: 1, 9, 90, 900, ... (a geometric grid of
    iterations: every step to 200, every 9 to 2,000, ...), the last piece cut to end near ``steps``."""
    pieces, done, every = [], 0, 1
    while done < steps:
        e = min(every, max(1, (steps - done) // n_saves))
        pieces.append(e)
        done += n_saves * e
        every = 9 if every == 1 else every * 10
    return pieces


def _descend_grid(prob, layers0, etas, steps: int):
    """GD at every eta of ``etas`` for about ``steps`` steps: ``(iterations, loss (eta, save), ok (eta,))``."""
    etas = jnp.asarray(etas, dtype=jnp.float64)
    rule = EulerRule(LayerFlow(prob))
    state = tuple(jnp.broadcast_to(w, (len(etas),) + w.shape) for w in layers0)
    iters, losses, ok, done = [np.zeros(1)], None, np.ones(len(etas), bool), 0
    for every in _pieces(steps):
        runs = jax.vmap(lambda e, y, every=every: descend_chunks(rule, y, e, every, SAVES_PER_PIECE))(etas, state)
        loss = np.where(np.arange(runs.loss.shape[1])[None] < np.asarray(runs.stop)[:, None], np.asarray(runs.loss), np.nan)
        losses = loss if losses is None else np.concatenate([losses, loss[:, 1:]], axis=1)
        iters.append(done + every * np.arange(1, SAVES_PER_PIECE + 1))
        ok &= np.asarray(runs.result) == 0
        state = tuple(w[:, -1] for w in runs.layers)
        done += every * SAVES_PER_PIECE
    return np.concatenate(iters), losses, ok


def _acceptable(loss: np.ndarray, ok: np.ndarray, l0: float) -> np.ndarray:
    """:func:`linflow.paper.common.stable_to_end` for each run (row)."""
    return np.array([common.stable_to_end(row, f, l0) for row, f in zip(loss, ok)])


def _best(iters, loss, fine, targets) -> tuple[np.ndarray, np.ndarray]:
    """Per target: fewest iterations among the acceptable runs (inf if none) and the index of that eta (-1)."""
    its = np.array([[common.iterations_to(row, iters, t) if f else math.inf for row, f in zip(loss, fine)]
                    for t in targets])
    best = np.where(np.isfinite(its).any(axis=1), np.argmin(its, axis=1), -1)
    return its.min(axis=1), best


def _prediction(prob, layers0, targets, horizons, points: int = 160,
                lanczos_iters: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along the layers' gradient flow, saved at ``points`` geometric times: the flow time to each target, the
    largest sharpness before it (``lanczos_iters`` Lanczos steps), and the largest sharpness up to ``horizons[q]``
    (the flow time GD covers in its budget; nan: not run)."""
    nan = np.full(len(targets), np.nan)
    if not np.isfinite(horizons).any():
        return nan, nan, nan.copy()
    t1 = float(np.nanmax(horizons))
    ts = np.concatenate([[0.0], np.geomspace(t1 * 1e-5, t1, points)])
    flow = gradient_flow(prob, layers0, t1, ts=ts, max_steps=200_000)
    loss = flow.masked(flow.loss)
    sharp = np.where(np.isfinite(loss), _sharpness_along(prob, flow.layers, iters=lanczos_iters), np.nan)
    times, to_target, to_horizon = nan.copy(), nan.copy(), nan.copy()
    for q, (target, horizon) in enumerate(zip(targets, horizons)):
        hit = np.flatnonzero(np.isfinite(loss) & (loss <= target))
        if not len(hit) or not np.isfinite(horizon):
            continue
        i = int(hit[0])
        times[q] = ts[i] if i == 0 else np.interp(np.log(target), np.log([loss[i], loss[i - 1]]), [ts[i], ts[i - 1]])
        to_target[q] = np.max(sharp[: i + 1])  # np.max: a flow that stopped before the horizon predicts nothing
        to_horizon[q] = np.max(sharp[ts <= horizon * (1 + 1e-12)])
    return times, to_target, to_horizon


def _sharpness_along(prob, layers, chunk: int = 24, iters: int = 64) -> np.ndarray:
    """:func:`linflow.sharpness` at every save of a run, ``chunk`` saves at a time (the last chunk padded to the
    same size: one compiled shape, and memory that does not grow with the number of saves)."""
    n = layers[0].shape[0]
    out = []
    for i in range(0, n, chunk):
        idx = np.minimum(np.arange(i, i + chunk), n - 1)
        out.append(np.asarray(sharpness(prob, tuple(w[idx] for w in layers), iters=iters))[: min(chunk, n - i)])
    return np.concatenate(out)


def _seed0_curve(curves, fine, chosen: int, grid) -> tuple[np.ndarray, float, bool]:
    """Seed 0's loss curve to draw: the run chosen for the 90% target; where no run reached it, the stable run
    (the experiments' rule) that got lowest, said as not reached; all NaN when no run was stable."""
    if chosen >= 0:
        return curves[chosen], float(grid[chosen]), True
    final = np.where(fine, curves[:, -1], np.inf)
    if not np.isfinite(final).any():
        return np.full(curves.shape[1], np.nan), math.nan, False
    k = int(np.argmin(final))
    return curves[k], float(grid[k]), False


def _cell(prob, pre: str, start: str, width: int, depth: int, seeds, steps: int, l0: float, targets, quick: bool = False):
    """Best iterations per seed and target, chosen etas, seed-0 curves, the flow's prediction."""
    grid = np.asarray(ETA_GRID[pre])
    its = np.full((len(seeds), len(targets)), math.inf)
    eta_idx = np.full((len(seeds), len(targets)), -1)
    window = grid
    for s, seed in enumerate(seeds):
        layers0 = _start(prob, depth, width, seed, start)
        iters, loss, ok = _descend_grid(prob, layers0, window, steps)
        its[s], best = _best(iters, loss, _acceptable(loss, ok, l0), targets)
        eta_idx[s] = [np.searchsorted(grid, window[b]) if b >= 0 else -1 for b in best]
        if s == 0:
            curves, seed0_iters, fine0 = loss, iters, _acceptable(loss, ok, l0)
            chosen = [b for b in eta_idx[0] if b >= 0]
            if not quick:  # seeds 1, 2 on the window around seed 0's choices
                lo = min(max(0, (min(chosen) + max(chosen)) // 2 - 1), len(grid) - WINDOW) if chosen else 0
                window = grid[lo:lo + WINDOW]
    curve, curve_eta, reached = _seed0_curve(curves, fine0, eta_idx[0, 1], grid)
    horizons = np.where(eta_idx[0] >= 0, grid[np.maximum(eta_idx[0], 0)] * seed0_iters[-1], np.nan)
    # quick: one chunk of sharpness points instead of 7, and 32 Lanczos steps (on these flows the same sharpness as 64
    # to 1e-15 relative, measured on the quick gas-sensor problems)
    flow_t, smax, smax_budget = _prediction(prob, _start(prob, depth, width, 0, start), targets, horizons,
                                            points=23 if quick else 160, lanczos_iters=32 if quick else 64)
    return {"iterations": its, "eta": np.where(eta_idx >= 0, grid[np.maximum(eta_idx, 0)], np.nan), "curve": curve,
            "curve_eta": curve_eta, "curve_reached": reached,
            "curve_iterations": seed0_iters, "flow_time": flow_t, "max_sharpness": smax,
            "predicted": np.array([predicted_iterations(t, s) for t, s in zip(flow_t, smax)]),
            "max_sharpness_budget": smax_budget,
            "predicted_budget": np.array([predicted_iterations(t, s) for t, s in zip(flow_t, smax_budget)])}


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
                    cells[(name, p, N)] = _cell(prob, pre, cfg["start"], cfg["width"], N, (0,) if N == 1 else seeds,
                                                steps, l0, targets, quick=quick)
                    base = cells[(name, p, N)] if N == 1 else base
    ds = _dataset(cells, configs, depths, seeds, meta)
    summary = _summary(ds, meta, data is None)
    summary["data"] = list(dict.fromkeys(descs))
    return ds, summary, {"fig3": figure(ds, summary["data"])}


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


def _summary(ds: xr.Dataset, meta: dict, synthetic: bool) -> dict:
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
