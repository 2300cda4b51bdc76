r"""How much fig3's speed-ups depend on the rules that produce them (l4, seed 0).

For each configuration (:data:`CASES`: the paper's width-1 network on three preprocessings of the data, and the
two other configurations of :data:`linflow.paper.fig3.CONFIGS`) and depth, GD runs once over a quarter-decade
learning-rate grid for :data:`BUDGET` iterations; every variant of :data:`VARIANTS` reads its speed-up of depth N
over depth 1 from those same runs:

* the learning-rate grid: half-decade (every other point, fig3's own grid) or quarter-decade;
* which runs count: stable to the end of the budget (fig3's rule, :data:`linflow.paper.common.STABLE_RULE`) or
  stable only until they reach the target (finite and, once below L(0), below it up to there);
* what is compared: iterations to the 50%, 90% or 99% target, or the gap to the minimum at a fixed budget
  (``10^3, 10^4, 10^5``; the speed-up is depth 1's gap over depth N's, each at its best learning rate among the runs
  stable up to that budget; a gap below :data:`GAP_FLOOR` times ``L(0) - L_min`` is at the rounding level of the
  minimum and counts as that floor, so two converged runs compare as 1x, not as a quotient of rounding errors).

Beside each configuration: ``S(0) / S(W*)``, the sharpness of the linear model's loss at zero over that at its
minimizer. GD on the linear model is held to ``eta < 2 / S`` where it is sharpest and a preconditioner can at best
let it step as if the sharpness were the minimum's, so the ratio bounds the gain of any preconditioning near
``W*`` (and ``>= 10x`` needs a ratio above 10).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import common
from .runs import descend_grid, start_layers

__all__ = ["CASES", "VARIANTS", "BUDGET", "QUARTER_GRID", "variant_speedups", "sharpness_ratio", "sensitivity",
           "robustness", "DIRECTION_RULE", "GAP_FLOOR"]

#: name -> (preprocessing, width, start)
CASES = {
    "width1 standardized": ("standardize", 1, "balanced"),
    "width1 scaled (uncentred)": ("scaled", 1, "balanced"),
    "width1 whitened": ("whitened", 1, "balanced"),
    "standardized16 (gaussian start)": ("standardize", 16, "gaussian"),
    "whitened32": ("whitened", 32, "balanced"),
}
QUARTER_GRID = {"standardize": tuple(10.0 ** np.arange(-5.0, -0.9, 0.25)),
                "scaled": tuple(10.0 ** np.arange(-6.0, -0.9, 0.25)),
                "whitened": tuple(10.0 ** np.arange(-3.0, 0.6, 0.25))}
BUDGET = {"standardize": 100_000, "scaled": 100_000, "whitened": 10_000}
VARIANTS = ("90%, stable to end, half-decade (fig3's rule)", "90%, stable to end, quarter-decade",
            "90%, stable until target, half-decade", "90%, stable until target, quarter-decade",
            "50%, stable to end, quarter-decade", "99%, stable to end, quarter-decade",
            "gap at 1e3", "gap at 1e4", "gap at 1e5")
FRACTIONS = {"50%": 0.5, "90%": 0.9, "99%": 0.99}
GAP_FLOOR = 1e-9
DIRECTION_RULE = ("per configuration and depth: 'robust' when every variant that measured something puts depth N on "
                  "the same side of depth 1 (all faster, > 1x, or all slower, < 1x); 'depends on ...' names the "
                  "variants on the other side of the majority; a variant where neither depth reached the target "
                  "measures nothing and is said as such")


def _stable_until(row: np.ndarray, l0: float, j: int) -> bool:
    """Finite at every save up to ``j`` and, once below ``l0``, below it up to ``j`` (``j`` included)."""
    part = row[: j + 1]
    if not np.all(np.isfinite(part)):
        return False
    below = part < l0
    return bool(not below.any() or np.all(below[int(np.argmax(below)):]))


def iterations_to_target(iters, loss, l0: float, target: float, until: bool) -> np.ndarray:
    """Per run: iterations to ``target`` (inf: not reached or not acceptable). Stable to end: fig3's rule
    (:func:`linflow.paper.common.iterations_to` on runs stable to the end); until the target: the first save at or
    below the target, the run stable up to there."""
    out = np.full(len(loss), math.inf)
    for i, row in enumerate(loss):
        if until:
            hit = np.flatnonzero(np.isfinite(row) & (row <= target))
            if hit.size and _stable_until(row, l0, int(hit[0])):
                out[i] = iters[hit[0]]
        elif common.stable_to_end(row, bool(np.all(np.isfinite(row))), l0):
            out[i] = common.iterations_to(row, iters, target)
    return out


def gap_at(iters, loss, l0: float, lmin: float, budget: float) -> float:
    """The smallest gap ``L - L_min`` at the last save <= ``budget`` among runs stable up to there (inf: none;
    nan: the budget is beyond the runs)."""
    if budget > iters[-1] * (1 + 1e-9):
        return math.nan
    j = int(np.searchsorted(iters, budget, side="right")) - 1
    gaps = [max(row[j] - lmin, GAP_FLOOR * (l0 - lmin)) for row in loss if _stable_until(row, l0, j) and row[j] < l0]
    return min(gaps) if gaps else math.inf


def _reading(iters, loss, l0: float, lmin: float, targets: dict, variant: str) -> float:
    """One depth's number under ``variant``: iterations (a target variant) or the gap (a budget variant)."""
    if variant.startswith("gap at"):
        return gap_at(iters, loss, l0, lmin, float(variant.split()[-1]))
    frac, rule, grid = (part.strip() for part in variant.split(","))
    rows = loss if grid.startswith("quarter") else loss[::2]
    return float(np.min(iterations_to_target(iters, rows, l0, targets[frac], until=rule.startswith("stable until"))))


def variant_speedups(base: float, deep: float) -> float:
    """Depth 1's reading over depth N's (iterations or gaps: above 1, depth N is better). inf: only depth N got
    there; 0: only depth 1; nan: neither (or the budget is beyond the runs)."""
    if math.isnan(base) or math.isnan(deep) or (math.isinf(base) and math.isinf(deep)):
        return math.nan
    if math.isinf(deep):
        return 0.0
    if math.isinf(base):
        return math.inf
    return base / deep if deep > 0 else math.inf


def sharpness_ratio(prob) -> dict:
    """``S(0)``, ``S(W*)`` and their ratio: the largest Hessian eigenvalue of the linear model's loss at zero and at
    its minimizer (:func:`linflow.paper.common.minimizer`)."""
    hess = jax.jit(jax.hessian(lambda v: prob.loss(v.reshape(prob.k, prob.d))))

    def top(w) -> float:
        return float(np.linalg.eigvalsh(np.asarray(hess(jnp.asarray(w).ravel())))[-1])

    s0, s_star = top(np.zeros((prob.k, prob.d))), top(common.minimizer(prob))
    return {"sharpness_at_zero": s0, "sharpness_at_minimizer": s_star, "ratio": s0 / s_star}


def robustness(speedups: dict) -> str:
    """:data:`DIRECTION_RULE` on ``{variant: speed-up}`` of one configuration and depth."""
    faster = [v for v, x in speedups.items() if not math.isnan(x) and x > 1]
    slower = [v for v, x in speedups.items() if not math.isnan(x) and x < 1]
    if not faster and not slower:
        return "nothing measured (no variant where either depth reached its target)"
    if not slower:
        return "robust: faster under every variant that measured"
    if not faster:
        return "robust: slower under every variant that measured"
    minority, side = (faster, "faster") if len(faster) <= len(slower) else (slower, "slower")
    return f"depends on the rule: {side} only under " + "; ".join(minority)


def sensitivity(data, quick: bool = False, depths=(1, 2, 3, 4)) -> tuple[list[dict], dict]:
    """The table (one row per configuration, depth and variant) and the problems' sharpness ratios."""
    cases = {k: v for k, v in CASES.items() if v[1] == 1} if quick else CASES
    if data is None:  # the synthetic stand-in has no preprocessing to vary
        cases = {k: v for k, v in cases.items() if v[0] == "standardize"}
    depths = (1, 2) if quick else depths
    rows, ratios, base = [], {}, {}
    for name, (pre, width, start) in cases.items():
        prob, _ = common.problem_for(data, 4.0, quick, pre)
        l0, lmin = float(prob.loss(jnp.zeros((prob.k, prob.d)))), common.minimum_loss(prob)
        targets = {k: l0 - q * (l0 - lmin) for k, q in FRACTIONS.items()}
        if pre not in ratios:
            ratios[pre] = sharpness_ratio(prob)
        budget = 2000 if quick else BUDGET[pre]
        grid = QUARTER_GRID[pre]
        variants = [v for v in VARIANTS if not v.startswith("gap at") or float(v.split()[-1]) <= budget]
        readings = {}
        for N in depths:
            if N == 1 and pre in base:
                readings[1] = base[pre]
                continue
            iters, loss, _ = descend_grid(prob, start_layers(prob, N, width, 0, start), grid, budget)
            readings[N] = {v: _reading(iters, loss, l0, lmin, targets, v) for v in variants}
            if N == 1:
                base[pre] = readings[1]
        for N in depths[1:]:
            sp = {v: variant_speedups(readings[1][v], readings[N][v]) for v in variants}
            rows.append({"config": name, "preprocessing": pre, "depth": int(N), "budget": budget,
                         "speedups": sp, "depth1": readings[1], "depthN": readings[N], "robustness": robustness(sp),
                         "sharpness_ratio_linear_model": ratios[pre]["ratio"]})
    return rows, ratios


def words(x: float, variant: str) -> str:
    """A speed-up in words for the table (never 'nan')."""
    gap = variant.startswith("gap at")
    if math.isnan(x):
        return "no stable run at either depth" if gap else "neither depth reached it"
    if math.isinf(x):
        return "only depth N has a stable run" if gap else "only depth N reached it"
    if x == 0:
        return "only depth 1 has a stable run" if gap else "only depth 1 reached it"
    return f"{x:.2f}x"
