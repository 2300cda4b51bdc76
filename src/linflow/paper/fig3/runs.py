"""ACH18 Fig. 3's runs: GD over a learning-rate grid for each depth and seed (the fewest iterations to each target
among the acceptable runs) and the prediction from the layers' gradient flow (flow time to the target and the
largest sharpness on the way)."""

from __future__ import annotations

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import common
from ...core import init
from ...core.curvature import sharpness
from ...core.descent import EulerRule, descend_chunks
from ...core.fields import LayerFlow
from ...core.integrate import gradient_flow

__all__ = ["START_NORM", "ETA_GRID", "descend_grid", "predicted_iterations", "start_layers", "acceptable_runs",
           "best_runs", "cell"]

START_NORM = 0.1
ETA_GRID = {"standardize": tuple(10.0 ** np.arange(-5.0, -0.9, 0.5)), "whitened": tuple(10.0 ** np.arange(-3.0, 0.6, 0.5))}
SAVES_PER_PIECE = 200
WINDOW = 4


def predicted_iterations(flow_time: float, max_sharpness: float) -> float:
    """Iterations GD needs to cover ``flow_time`` with the largest stable step ``2 / max_sharpness``."""
    if not (np.isfinite(flow_time) and np.isfinite(max_sharpness)):
        return math.nan
    return float(max(1.0, math.ceil(flow_time * max_sharpness / 2)))


def start_layers(prob, depth: int, width: int, seed: int, start: str = "balanced"):
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


def descend_grid(prob, layers0, etas, steps: int):
    """GD at every eta of ``etas`` for about ``steps`` steps: ``(iterations, loss (eta, save), ok (eta,))``.

    Each piece of :func:`_pieces` runs only the etas still finite, in one vmapped program: a diverged run's later
    saves are NaN without being computed (in a vmapped loop it would be carried, masked, to the end of every piece;
    a third of fig3's l4 grids diverges within the first 2,000 of 50,000-100,000 steps). One device: the step is a
    product of the live rows with the data matrix, whose cost hardly grows with the rows (a 2565 x 128 matrix, 3 etas
    0.23 ms, 9 etas 0.37 ms a step), so halving the batch over two devices measured slower, not faster."""
    etas = np.asarray(etas, dtype=np.float64)
    rule = EulerRule(LayerFlow(prob))
    state = tuple(np.broadcast_to(np.asarray(w), (len(etas),) + w.shape).copy() for w in layers0)
    pieces = _pieces(steps)
    losses = np.full((len(etas), 1 + SAVES_PER_PIECE * len(pieces)), np.nan)
    iters, ok, done = [np.zeros(1)], np.ones(len(etas), bool), 0
    for p, every in enumerate(pieces):
        live = np.flatnonzero(ok)
        if live.size:
            runs = _live_pieces((etas[live], tuple(w[live] for w in state)), rule, jnp.asarray(every))
            rows = np.arange(SAVES_PER_PIECE + 1)[None] < np.asarray(runs.stop)[:, None]
            loss = np.where(rows, np.asarray(runs.loss), np.nan)
            losses[live, 0] = loss[:, 0] if p == 0 else losses[live, 0]
            losses[live, 1 + p * SAVES_PER_PIECE: 1 + (p + 1) * SAVES_PER_PIECE] = loss[:, 1:]
            ok[live] = np.asarray(runs.result) == 0
            for w, last in zip(state, runs.layers):
                w[live] = np.asarray(last[:, -1])
        iters.append(done + every * np.arange(1, SAVES_PER_PIECE + 1))
        done += every * SAVES_PER_PIECE
    return np.concatenate(iters), losses, ok


@eqx.filter_jit
def _live_pieces(batch, rule, every):
    """One piece of :func:`descend_grid` for each ``(eta, layers)`` of ``batch``: ``SAVES_PER_PIECE`` saves ``every``
    steps apart (traced: the pieces share one compiled program per number of etas)."""
    return jax.vmap(lambda eta, layers: descend_chunks(rule, layers, eta, every, SAVES_PER_PIECE))(*batch)


def acceptable_runs(loss: np.ndarray, ok: np.ndarray, l0: float) -> np.ndarray:
    """:func:`linflow.paper.common.stable_to_end` for each run (row)."""
    return np.array([common.stable_to_end(row, f, l0) for row, f in zip(loss, ok)])


def best_runs(iters, loss, fine, targets) -> tuple[np.ndarray, np.ndarray]:
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


def cell(prob, pre: str, start: str, width: int, depth: int, seeds, steps: int, l0: float, targets, quick: bool = False):
    """Best iterations per seed and target, chosen etas, seed-0 curves, the flow's prediction, and the wall seconds
    of the GD runs and of the flow with its sharpness readings (``seconds``)."""
    grid = np.asarray(ETA_GRID[pre])
    its = np.full((len(seeds), len(targets)), math.inf)
    eta_idx = np.full((len(seeds), len(targets)), -1)
    window, began = grid, time.perf_counter()
    for s, seed in enumerate(seeds):
        layers0 = start_layers(prob, depth, width, seed, start)
        iters, loss, ok = descend_grid(prob, layers0, window, steps)
        its[s], best = best_runs(iters, loss, acceptable_runs(loss, ok, l0), targets)
        eta_idx[s] = [np.searchsorted(grid, window[b]) if b >= 0 else -1 for b in best]
        if s == 0:
            curves, seed0_iters, fine0 = loss, iters, acceptable_runs(loss, ok, l0)
            chosen = [b for b in eta_idx[0] if b >= 0]
            if not quick:  # seeds 1, 2 on the window around seed 0's choices
                lo = min(max(0, (min(chosen) + max(chosen)) // 2 - 1), len(grid) - WINDOW) if chosen else 0
                window = grid[lo:lo + WINDOW]
    curve, curve_eta, reached = _seed0_curve(curves, fine0, eta_idx[0, 1], grid)
    grid_seconds, began = time.perf_counter() - began, time.perf_counter()
    horizons = np.where(eta_idx[0] >= 0, grid[np.maximum(eta_idx[0], 0)] * seed0_iters[-1], np.nan)
    # quick: one chunk of sharpness points instead of 7, and 32 Lanczos steps (on these flows the same sharpness as 64
    # to 1e-15 relative, measured on the quick gas-sensor problems)
    flow_t, smax, smax_budget = _prediction(prob, start_layers(prob, depth, width, 0, start), targets, horizons,
                                            points=23 if quick else 160, lanczos_iters=32 if quick else 64)
    seconds = {"learning_rate_grid": grid_seconds, "flow": time.perf_counter() - began}
    return {"iterations": its, "eta": np.where(eta_idx >= 0, grid[np.maximum(eta_idx, 0)], np.nan), "curve": curve,
            "curve_eta": curve_eta, "curve_reached": reached,
            "curve_iterations": seed0_iters, "flow_time": flow_t, "max_sharpness": smax,
            "predicted": np.array([predicted_iterations(t, s) for t, s in zip(flow_t, smax)]),
            "max_sharpness_budget": smax_budget,
            "predicted_budget": np.array([predicted_iterations(t, s) for t, s in zip(flow_t, smax_budget)]),
            "seconds": seconds}


