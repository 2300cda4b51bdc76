"""Arora, Cohen, Hu & Luo (NeurIPS 2019, "ACHL19"): deep matrix factorization completes a low-rank matrix from few
entries better than the minimum-nuclear-norm completion, and depth 2 tracks the nuclear norm (docs/math.md
sections 9-10).

Their setting as published: a random rank-5 ``100 x 100`` target, completed from a few thousand uniformly random
observed entries (2,000 in their Fig. 3), by gradient descent on depth 2, 3 and 4 from a small start, against
the minimum-nuclear-norm completion; reconstruction error over the whole matrix. Here: the target ``U V^T`` with
Gaussian ``U``, ``V`` (``n x 5``), scaled to ``||W*||_F = n`` (as in the authors' group's public code, Razin & Cohen
2020); the layer flow (Tsit5) from balanced layers whose product has every singular value ``alpha = 1e-6``
(random orientation), stopped by an event where the training loss falls below 1e-10 of its start (or at the
horizon); 3 seeds (target, mask, start); the nuclear norm by cvxpy with SCS.

Every run ends with a fate (:data:`FATE_RULE`): *fitted*, *escaping* (its largest singular value is past 4x the
target's and grows faster than its loss falls: the flow has left the target with its loss stalled, and the run is
stopped there; run on, two such flows were seen to fit the observed entries far from the target, errors 7.5 and
10.6; a large run whose loss still falls faster goes on) or *still fitting* at its step budget, measured by the
rates of the loss and of the largest singular value where it stopped. A fitted run's error is either the flow's
limit or set by the stop (*at the stopping floor*, :data:`FLOOR_RULE`). The verdict (:data:`RULE`) compares each
seed with the nuclear norm on the same instance, so a run gone elsewhere counts instead of hiding behind a median;
the medians are reported beside. The start-scale rows (:data:`STARTS`: balanced and the authors' Gaussian start,
scales ``1e-3 ... 1e-6``) give the verdict at the fewest observations for each start.

The full configuration is ``50 x 50``, rank 5 (475 degrees of freedom), with 750 / 1,000 / 1,500 / 2,500 observed
entries: the published counts 1,500 / 2,000 / 3,000 / 5,000 in the same ratio to the degrees of freedom (975 at
``100 x 100``). :data:`PUBLISHED` holds the published configuration: its main table runs in about 10 minutes on two
cores, its start rows (63 flows at 100 x 100) much longer (docs/guide/paper.md). Quick mode: ``30 x 30`` rank 3 (171
degrees of freedom), 300 entries, 2 seeds, depths 2-4, the main start only. The flows are independent: they run over
the machine's cores, one thread per CPU device (:func:`linflow.core.parallel.spread_tasks`; the same numbers as one
after another).
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
import lineax as lx

from ..core import init, problems
from ..core.fields import LayerFlow
from ..core.parallel import spread_tasks
from ..core.passages import first_passages
from ..core.sensing import CompletionProblem, random_mask
from ..core.settings import SolverSettings, with_newton
from .common import caption, verdict

__all__ = ["achl19", "target", "nuclear_norm_completion", "start_layers", "instance", "flow_run", "fate_of", "grade_claims",
           "RULE", "FATE_RULE", "FLOOR_RULE", "FULL", "PUBLISHED", "QUICK", "STARTS", "START", "BUDGET", "CHUNK",
           "PROBE_AFTER", "PROBE", "IMPLICIT_PIECE", "IMPLICIT_COST",
           "PRECONDITION_FROM"]

#: the main table's start: balanced layers, every singular value of the product 1e-6
START = ("balanced", 1e-6)
#: the start-scale rows: balanced, and the authors' Gaussian start (their default is ("gaussian", 1e-3))
STARTS = tuple((kind, s) for kind in ("balanced", "gaussian") for s in (1e-3, 1e-4, 1e-5, 1e-6))
FULL = {"n": 50, "rank": 5, "counts": (750, 1000, 1500, 2500), "seeds": (0, 1, 2), "depths": (2, 3, 4),
        "starts": STARTS}
PUBLISHED = {"n": 100, "rank": 5, "counts": (1500, 2000, 3000, 5000), "seeds": (0, 1, 2), "depths": (2, 3, 4),
             "starts": STARTS}
#: quick: 30 x 30, rank 3, 300 entries, 2 seeds, the main start; the full run's schedule (every run fits by Tsit5 within
#: 8,913 steps, before the first implicit probe: measured)
QUICK = {"n": 30, "rank": 3, "counts": (300,), "seeds": (0, 1), "depths": (2, 3, 4), "starts": (START,)}
FIT = 1e-10
#: the earlier loss level read on the way to FIT (the floor test)
EARLIER = 1e-8
#: a fitted run's error is at the stopping floor when it fell more than this factor from EARLIER to FIT
FLOOR_DROP = 3.0
#: an unfitted run escapes when its largest singular value is above ESCAPE x the target's and growing (a run on a
#: saddle's plateau after its first mode was measured at 2.3x, tests/test_achl19.py; escaping runs at about 6x)
ESCAPE = 4.0
RTOL, ATOL = 1e-7, 1e-9
#: Newton's linear solves need not be exact (inexact Newton): 1e-4 against 1e-8 took 33 s against 55 s on a
#: 50 x 50 depth-4 run with the same error to 2e-6 relative (measured)
GMRES_RTOL, GMRES_ATOL = 1e-4, 1e-8
#: a run's step budget: Tsit5 steps, Kvaerno5 steps (a run past both is reported with its fate and its error where
#: it stopped)
BUDGET = (200_000, 2_000)
#: the explicit phase runs in pieces of CHUNK steps: after each, a fitted run stops, and so does an escaping one
CHUNK = 5_000
#: which solver: Tsit5 first; after PROBE_AFTER Tsit5 steps without a fit (and every PROBE_AFTER after), PROBE Kvaerno5
#: steps are tried from where it is, and the run goes on implicitly (in pieces of IMPLICIT_PIECE) when an implicit step
#: covered more than IMPLICIT_COST times the flow time of a Tsit5 step of the last piece: what one implicit step costs
#: in explicit ones (measured). Neither alone does: every main-table run of the 50 x 50 configuration fits by Tsit5
#: alone within 39,285 steps, and a depth-4 run at 2,500 entries sent to Kvaerno5 after 5,000 Tsit5 steps took 60
#: implicit steps (271 s) without fitting where 1,520 more Tsit5 steps (0.7 s) fitted it; a 30 x 30 run from the
#: authors' start 1e-3 still had not fitted after 136,193 Tsit5 steps and fitted in 35 Kvaerno5 steps.
PROBE_AFTER, PROBE, IMPLICIT_PIECE, IMPLICIT_COST = 10_000, 10, 100, 300
BETTER, TRACK, RECOVERED = 0.8, 1.25, 1e-3
FATES = ("fitted", "escaping", "still fitting")
FATE_RULE = (f"fitted: the loss fell below {FIT:g} of its start; escaping: not fitted, the largest singular "
             f"value above {ESCAPE:g} x the target's and growing faster than the loss falls (d ln sigma_1 / dt > 0 "
             f"and d ln sigma_1 / dt > -d ln L / dt, instantaneous rates along the flow: the norm grows, the loss "
             f"stalls), checked every {CHUNK:,} explicit steps and where the run stopped: an escaping run is stopped "
             f"there, its error already that of a matrix {ESCAPE:g} x the target's in norm; still fitting: not fitted "
             f"otherwise (a large run whose loss falls faster than its norm grows goes on: it may fit a completion "
             f"far from the target)")
FLOOR_RULE = (f"a fitted run's error is at the stopping floor when it fell more than {FLOOR_DROP:g}x between the "
              f"loss at {EARLIER:g} and at {FIT:g} of its start: the stop sets it and the flow's limit is at most "
              f"this; otherwise it is the flow's limit (to that factor)")
RULE = (f"per seed, on the same instance: claim A, every depth >= 3 has error below {BETTER:g} x the nuclear "
        f"norm's at the fewest observations; claim B, depth 2's error is within a factor {TRACK:g} of the nuclear "
        f"norm's at every count where the nuclear norm does not recover (its error > {RECOVERED:g}). An escaping run "
        f"enters with its error where it stopped; a run still fitting leaves its comparison undecided. agrees: both "
        f"claims hold in every comparison; differs: neither holds in any; inconclusive: a claim undecided and "
        f"neither holds anywhere else; partly: otherwise. Medians over seeds are reported beside, never judged alone")
PAPER = ("with few observed entries, depth >= 3 recovers a low-rank matrix more accurately than the minimum nuclear "
         "norm completion, while depth 2 performs about like it (ACHL19, Section 3, Figure 2)")


def target(n: int, rank: int, seed: int) -> np.ndarray:
    """``U V^T`` with ``N(0, 1)`` ``U``, ``V`` (``n x rank``), scaled to Frobenius norm ``n`` (the authors' group's
    public code, Razin & Cohen 2020)."""
    rng = np.random.default_rng([seed, 19])
    W = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, n))
    return W * (n / np.linalg.norm(W))


def nuclear_norm_completion(problem: CompletionProblem, eps: float = 1e-7) -> tuple[np.ndarray, str]:
    """``argmin ||X||_* s.t. X_rc = v_rc on the observed entries``, by cvxpy with SCS (tolerance ``eps``):
    ``(X, status)``."""
    import cvxpy as cp

    X = cp.Variable(problem.shape)
    rows, cols = np.asarray(problem.rows), np.asarray(problem.cols)
    constraint = [X[rows, cols] == np.asarray(problem.values)]
    task = cp.Problem(cp.Minimize(cp.normNuc(X)), constraint)
    task.solve(solver=cp.SCS, eps=eps, max_iters=200_000)
    return (np.asarray(X.value) if X.value is not None else np.full(problem.shape, np.nan)), str(task.status)


def start_layers(n: int, depth: int, seed: int, start=START) -> tuple[jax.Array, ...]:
    """The ``depth`` square ``n x n`` layers of a start ``(kind, scale)``: ``"balanced"``, balanced layers whose
    product is ``scale Q_1 Q_2^T`` (random orthogonal ``Q``: every singular value ``scale``); ``"gaussian"``, the
    authors' start (their ``init_scale``): independent ``N(0, s^2)`` entries with ``s = scale^(1/N) / sqrt(n)``, so
    that ``||W_e||_F`` is about ``scale sqrt(n)`` (not balanced)."""
    kind, scale = start
    if kind == "balanced":
        rng = np.random.default_rng([seed, 23])
        return init.factorize(scale * problems.orthonormal(rng, n, n) @ problems.orthonormal(rng, n, n).T, depth)
    if kind == "gaussian":
        return init.near_zero((n,) * (depth + 1), scale ** (1 / depth) / np.sqrt(n), seed=seed + 23)
    raise ValueError(f"start must be ('balanced' or 'gaussian', scale), got {start!r}")


class _LossBelow(eqx.Module):
    """The observable ``-L1(W) / L1(W_e(0))``, twice (first passages of ``-EARLIER`` and ``-FIT``)."""

    problem: CompletionProblem
    scale: jax.Array

    def __call__(self, W):
        return jnp.full(2, -self.problem.loss(W) / self.scale)


def _rates(problem: CompletionProblem, layers) -> tuple[float, float, float]:
    """``(sigma_1(W_e), d ln sigma_1 / dt, d ln L / dt)`` along the layer flow at ``layers``: the end-to-end velocity
    is the tangent of ``W_e`` along the field (a JVP), ``d sigma_1 / dt = u_1^T dW_e/dt v_1``."""
    velocity = LayerFlow(problem)(0.0, tuple(layers), None)
    W, dW = jax.jvp(init.end_to_end, (tuple(layers),), (velocity,))
    U, s, Vt = np.linalg.svd(np.asarray(W))
    loss, dloss = jax.jvp(problem.loss, (W,), (dW,))
    return float(s[0]), float(U[:, 0] @ np.asarray(dW) @ Vt[0] / s[0]), float(dloss / loss)


def fate_of(fitted: bool, sigma_ratio: float, sigma_rate: float, loss_rate: float) -> str:
    """:data:`FATE_RULE`: ``fitted``, ``escaping`` or ``still fitting`` from whether the loss reached the fit level,
    the largest singular value over the target's, its rate ``d ln sigma_1 / dt`` and the loss's ``d ln L / dt`` where
    the run stopped: escaping when ``sigma_1`` is large and grows faster than the loss falls (the norm grows, the
    loss stalls)."""
    if fitted:
        return "fitted"
    escaping = sigma_ratio > ESCAPE and sigma_rate > 0 and sigma_rate > -loss_rate
    return "escaping" if escaping else "still fitting"


#: precondition the implicit stages by their Gauss-Newton inverse (linflow.core.stages) from this depth on: the
#: stiff tails of small singular modes settling. Measured (50 x 50, one core, the implicit part after 10,000 Tsit5
#: steps): depth 4 at 750 entries from balanced 1e-4, 16 Kvaerno5 steps and 8.8 s against 348 steps and 75.8 s
#: unpreconditioned (errors equal to 1.1e-4 relative); depth 2 at 1,500 entries, 11 steps either way, 16.6 s against 4.7 s
PRECONDITION_FROM = 3


def _settings(implicit: bool, max_steps: int, gauss_newton=None) -> SolverSettings:
    """Tsit5, or Kvaerno5 whose stages Newton solves with GMRES on Jacobian-vector products (never the Jacobian),
    preconditioned by the Gauss-Newton inverse of ``gauss_newton = (problem, layers)`` when given (factored once per
    step; GMRES restarted every 5 products, since lineax tests convergence once per cycle)."""
    if not implicit:
        return SolverSettings("tsit5", rtol=RTOL, atol=ATOL, max_steps=max_steps)
    krylov = lx.GMRES(rtol=GMRES_RTOL, atol=GMRES_ATOL, restart=40 if gauss_newton is None else 5, max_steps=400)
    return SolverSettings(with_newton("kvaerno5", 1e-6, 1e-8, linear_solver=krylov, gauss_newton=gauss_newton),
                          rtol=RTOL, atol=ATOL, max_steps=max_steps)


def flow_run(problem: CompletionProblem, depth: int, seed: int, start=START, t1: float = 1e5,
             budget: tuple[int, int] = BUDGET) -> dict:
    """The layer flow from :func:`start_layers`, stopped by an event where the loss falls below :data:`FIT` of its
    start (or at ``t1``): up to ``budget[0]`` Tsit5 steps in pieces of :data:`CHUNK` and up to ``budget[1]``
    Kvaerno5 steps (GMRES stages), the implicit solver taking over where a probe shows it covers more flow time per
    unit of work (:data:`PROBE_AFTER`) or the explicit budget is spent; a run escaping after a piece stops there
    (:data:`FATE_RULE`). Returns ``W`` where it stopped, ``time``, ``fate`` (:func:`fate_of`),
    ``error`` (relative to the target), ``at_floor`` (:data:`FLOOR_RULE`; None when not fitted), ``loss_ratio``,
    ``sigma_ratio`` (``sigma_1`` over the target's), ``sigma_rate`` and ``loss_rate`` (per unit time, where it
    stopped), ``steps`` and ``implicit_steps``, ``seconds`` (its wall time, compiling included), ``status`` (the
    solver's)."""
    started = time.perf_counter()
    W_star = np.asarray(problem.target_matrix)
    sigma_star = float(np.linalg.norm(W_star, 2))
    layers0 = start_layers(problem.k, depth, seed, start)
    observable = _LossBelow(problem, jnp.asarray(float(problem.loss(init.end_to_end(layers0)))))
    levels = np.array([-EARLIER, -FIT])
    states, t0, layers, steps, implicit_steps, status = [None, None], 0.0, layers0, 0, 0, "ok"
    preconditioned = (problem, layers0) if depth >= PRECONDITION_FROM else None

    def escaping() -> bool:
        sigma, sigma_rate, loss_rate = _rates(problem, layers)
        return fate_of(False, sigma / sigma_star, sigma_rate, loss_rate) == "escaping"

    def advance(implicit: bool, max_steps: int) -> float:
        """One piece of the solve from where the run is; returns its mean step."""
        nonlocal t0, layers, steps, implicit_steps, status
        pending = [i for i in range(2) if states[i] is None]
        out = first_passages(LayerFlow(problem), layers, levels[pending], t1 - t0, observable=observable,
                             settings=_settings(implicit, max_steps, preconditioned if implicit else None))
        for i, state in zip(pending, out["states"]):
            states[i] = state
        steps += out["num_steps"]
        implicit_steps += out["num_steps"] if implicit else 0
        t0, layers, status = t0 + out["final_time"], out["final_state"], out["status"]
        return out["final_time"] / max(out["num_steps"], 1)

    explicit_left, next_probe, h_explicit = budget[0], PROBE_AFTER, 0.0
    while states[1] is None and t0 < t1 and status in ("ok", "max_steps") and not escaping():
        implicit_left = budget[1] - implicit_steps
        if explicit_left > 0 and not (implicit_left > 0 and steps - implicit_steps >= next_probe):
            h_explicit = advance(False, min(CHUNK, explicit_left))
            explicit_left = budget[0] - (steps - implicit_steps)
        elif implicit_left > 0:
            probing = explicit_left > 0
            h_implicit = advance(True, min(PROBE if probing else IMPLICIT_PIECE, implicit_left))
            if probing and h_implicit > IMPLICIT_COST * h_explicit:  # implicit wins: it goes on alone
                explicit_left = 0
            elif probing:
                next_probe = steps - implicit_steps + PROBE_AFTER
        else:
            break
    fitted = states[1] is not None
    layers = states[1] if fitted else layers
    W = np.asarray(init.end_to_end(layers))
    sigma, sigma_rate, loss_rate = _rates(problem, layers)
    norm = np.linalg.norm(W_star)
    error = float(np.linalg.norm(W - W_star) / norm)
    at_floor = None
    if fitted:
        earlier = np.asarray(init.end_to_end(states[0]))
        at_floor = bool(error * FLOOR_DROP < np.linalg.norm(earlier - W_star) / norm)
    fate = fate_of(fitted, sigma / sigma_star, sigma_rate, loss_rate)
    return {"W": W, "time": t0, "fate": fate, "error": error,
            "at_floor": at_floor, "loss_ratio": float(problem.loss(W) / observable.scale),
            "sigma_ratio": sigma / sigma_star, "sigma_rate": sigma_rate, "loss_rate": loss_rate, "steps": steps,
            "implicit_steps": implicit_steps, "seconds": time.perf_counter() - started, "status": status}


def instance(n: int, rank: int, count: int, seed: int) -> CompletionProblem:
    """The completion problem of a seed: :func:`target` observed at ``count`` uniformly random entries."""
    W_star = target(n, rank, seed)
    rows, cols = random_mask(n, n, count, seed=seed + 100)
    return CompletionProblem(rows, cols, W_star[rows, cols], (n, n), target=W_star)


_RUN_FIELDS = ("error", "time", "loss_ratio", "sigma_ratio", "sigma_rate", "loss_rate", "steps", "implicit_steps",
               "seconds")


def _flow_jobs(starts, depths, counts: int, seeds: int) -> list[tuple[int, int, int, int]]:
    """The flows of a run as ``(start, depth, count, seed)`` indices: every depth, count and seed from the main start
    (index 0), and every other start at the fewest count (index 0); the deepest and the start rows first (the
    longest runs measured: they start the pool, the short ones fill in after)."""
    main = [(0, i, c, s) for c in range(counts) for s in range(seeds) for i in range(len(depths))]
    rows = [(j, i, 0, s) for j in range(1, len(starts)) for s in range(seeds) for i in range(len(depths))]
    return sorted(rows, key=lambda job: (-depths[job[1]], -starts[job[0]][1])) + sorted(
        main, key=lambda job: -depths[job[1]])


def _record(arrays: dict, at: tuple, run: dict) -> None:
    """A flow's numbers (:func:`flow_run`) into ``arrays`` at index ``at``: its error, fate, stopping floor (False
    when not fitted) and every :data:`_RUN_FIELDS` entry (the keys ``run_<field>``)."""
    for key, a in arrays.items():
        a[at] = bool(run["at_floor"]) if key == "at_floor" else run[key.removeprefix("run_")]


def achl19(data=None, quick: bool = False, config: dict | None = None):
    """The table: relative reconstruction error ``||W - W*||_F / ||W*||_F`` per depth (and the nuclear norm), observed
    count and seed, each run's fate and rates, the singular values of every solution, and the start-scale rows at
    the fewest observations: ``(dataset, summary, figures)``; ``data`` is not used; ``config`` replaces the
    configuration (e.g. :data:`PUBLISHED`; keys as :data:`FULL`)."""
    cfg = config if config is not None else QUICK if quick else FULL
    n, r, counts, seeds, depths = cfg["n"], cfg["rank"], cfg["counts"], cfg["seeds"], cfg["depths"]
    budget = tuple(cfg.get("budget", BUDGET))
    starts = tuple(cfg.get("starts", (START,)))
    starts = (START,) + tuple(s for s in starts if tuple(s) != START)
    methods = [f"depth{N}" for N in depths] + ["nuclear"]
    shape = (len(methods), len(counts), len(seeds))
    err, fate = np.full(shape, np.nan), np.full(shape, "", dtype=object)
    sv = np.full(shape + (n,), np.nan)
    runs = {k: np.full((len(depths), len(counts), len(seeds)), np.nan) for k in _RUN_FIELDS}
    floor = np.zeros((len(depths), len(counts), len(seeds)), bool)
    s_shape = (len(starts), len(depths), len(seeds))
    s_err, s_fate, s_floor = np.full(s_shape, np.nan), np.full(s_shape, "", dtype=object), np.zeros(s_shape, bool)
    s_runs = {k: np.full(s_shape, np.nan) for k in _RUN_FIELDS}
    probs = {(c, s): instance(n, r, m, seed) for c, m in enumerate(counts) for s, seed in enumerate(seeds)}
    jobs = _flow_jobs(starts, depths, len(counts), len(seeds))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="achl19", unit="flow", delay=1.0, disable=None)
    try:
        out = spread_tasks(lambda job: flow_run(probs[job[2], job[3]], depths[job[1]], seeds[job[3]], starts[job[0]],
                                                budget=budget), jobs, done=lambda _: bar.update(1))
    finally:
        bar.close()
    table = {"error": err, "fate": fate, "at_floor": floor, **{f"run_{k}": v for k, v in runs.items()}}
    rows = {"error": s_err, "fate": s_fate, "at_floor": s_floor, **{f"run_{k}": v for k, v in s_runs.items()}}
    for (j, i, c, s), run in zip(jobs, out):
        if j == 0:  # the main start: the table's runs (and the start rows' first row)
            _record(table, (i, c, s), run)
            sv[i, c, s] = np.linalg.svd(run["W"], compute_uv=False)
        if c == 0:
            _record(rows, (j, i, s), run)
    for (c, s), prob in probs.items():
        X, status = nuclear_norm_completion(prob)
        W_star = np.asarray(prob.target_matrix)
        err[-1, c, s] = np.linalg.norm(X - W_star) / np.linalg.norm(W_star)
        fate[-1, c, s] = "solved" if status == "optimal" else f"cvxpy status {status}"
        sv[-1, c, s] = np.linalg.svd(np.nan_to_num(X), compute_uv=False)
    start_names = [f"{kind} {scale:g}" for kind, scale in starts]
    ds = xr.Dataset(
        {"relative_error": (("approach", "observed", "seed"), err),
         "singular_values": (("approach", "observed", "seed", "index"), sv),
         "fate": (("approach", "observed", "seed"), fate.astype(str)),
         "at_floor": (("depth", "observed", "seed"), floor),
         **{f"run_{k}": (("depth", "observed", "seed"), v) for k, v in runs.items()},
         "start_relative_error": (("start", "depth", "seed"), s_err),
         "start_fate": (("start", "depth", "seed"), s_fate.astype(str)),
         "start_at_floor": (("start", "depth", "seed"), s_floor),
         **{f"start_run_{k}": (("start", "depth", "seed"), v) for k, v in s_runs.items()}},
        coords={"approach": methods, "observed": list(counts), "seed": list(seeds), "depth": list(depths),
                "index": np.arange(1, n + 1), "start": start_names},
        attrs={"target": f"{n} x {n}, rank {r}: U V^T with Gaussian U, V, scaled to ||W*||_F = {n}",
               "start": f"balanced layers, W_e(0) = {START[1]:g} Q_1 Q_2^T (random orthogonal Q)",
               "starts": "rows at the fewest observations: balanced (every singular value of W_e(0) the scale) and "
                         "the authors' Gaussian start (N(0, scale^(2/N) / n) entries: ||W_e(0)||_F ~ scale sqrt(n))",
               "flow": f"the layer flow (rtol {RTOL:g}, atol {ATOL:g}) stopped by an event where the loss falls below "
                       f"{FIT:g} of its start: up to {budget[0]:,} tsit5 steps in pieces of {CHUNK:,} and up to "
                       f"{budget[1]:,} kvaerno5 steps whose stages Newton solves by GMRES; kvaerno5 takes over when "
                       f"{PROBE} probe steps (after {PROBE_AFTER:,} tsit5 steps, and every {PROBE_AFTER:,} after) each "
                       f"cover more than {IMPLICIT_COST} tsit5 steps' flow time, or when the tsit5 budget is spent; an "
                       f"escaping run stops after the piece where it escapes",
               "nuclear": "cvxpy with SCS, eps 1e-7", "rule": RULE, "fate_rule": FATE_RULE, "floor_rule": FLOOR_RULE,
               "loss": "linflow's completion loss (kd / m) sum (1/2) r^2 (the flow's path does not depend on the scale)"})
    summary = _summary(ds, depths)
    summary["data"] = f"synthetic low-rank completion ({ds.attrs['target']}; no data set)"
    return ds, summary, {"achl19": figure(ds)}


def grade_claims(errors: dict, fates: dict, nuclear: np.ndarray) -> dict:
    """:data:`RULE` on per-seed errors: ``errors[f"depth{N}"]`` and ``fates[...]`` of shape ``(counts, seeds)`` (the
    fewest count first), ``nuclear`` the nuclear norm's errors, same shape. Returns ``{"A": tally, "B": tally,
    "verdict"}``, a tally being ``{"held", "failed", "undecided", "status"}`` with ``status`` one of ``holds`` (every
    comparison), ``fails`` (none held, all decided), ``mixed``, ``undecided``, ``not tested`` (no comparison)."""
    nuclear = np.asarray(nuclear, float)

    def tally(pairs) -> dict:
        out = {"held": 0, "failed": 0, "undecided": 0}
        for fate, ok in pairs:
            out["undecided" if fate == "still fitting" else "held" if ok else "failed"] += 1
        total = sum(out.values())
        out["status"] = ("not tested" if not total else "holds" if out["held"] == total else
                         "fails" if out["failed"] == total else "undecided" if not out["held"] else "mixed")
        return out

    deep = [m for m in errors if int(m.removeprefix("depth")) >= 3]
    a = tally((fates[m][0, s], errors[m][0, s] < BETTER * nuclear[0, s]) for m in deep
              for s in range(nuclear.shape[1]))
    b = tally((fates["depth2"][c, s], 1 / TRACK <= errors["depth2"][c, s] / nuclear[c, s] <= TRACK)
              for c in range(nuclear.shape[0]) for s in range(nuclear.shape[1]) if nuclear[c, s] > RECOVERED) \
        if "depth2" in errors else tally(())
    held = [t["held"] for t in (a, b)]
    if a["status"] == b["status"] == "holds":
        value = "agrees"
    elif a["status"] == b["status"] == "fails":
        value = "differs"
    elif not any(held) and (a["undecided"] or b["undecided"]):
        value = "inconclusive: runs still fitting at their step budget leave the claims undecided"
    else:
        value = "partly"
    return {"A": a, "B": b, "verdict": value}


def _arrays(ds: xr.Dataset, err, fate, depths):
    errors = {f"depth{N}": np.atleast_2d(err.sel(approach=f"depth{N}").values) for N in depths}
    fates = {f"depth{N}": np.atleast_2d(fate.sel(approach=f"depth{N}").values) for N in depths}
    return errors, fates


def _run_words(where: str, fate: str, run: dict) -> str:
    rates = (f"sigma_1 = {run['sigma_ratio']:.3g} x the target's, d ln sigma_1/dt = {run['sigma_rate']:.2g}, the loss "
             f"at {run['loss_ratio']:.2g} of its start, d ln L/dt = {run['loss_rate']:.2g} (per unit flow time)")
    return (f"{where}: {fate}: {rates}; relative error {run['error']:.3g} where it stopped (t = {run['time']:.4g}, "
            f"{int(run['steps']):,} steps)")


def _summary(ds: xr.Dataset, depths) -> dict:
    err, fate = ds.relative_error, ds.fate
    errors, fates = _arrays(ds, err.transpose("approach", "observed", "seed"), fate, depths)
    grade = grade_claims(errors, fates, err.sel(approach="nuclear").values)
    counts = [int(c) for c in ds.observed.values]
    median = err.median("seed")
    table, per_seed, fate_table, floor_table = {}, {}, {}, {}
    for m in ds.approach.values:
        m = str(m)
        table[m] = {c: float(median.sel(approach=m, observed=c)) for c in counts}
        per_seed[m] = {c: [float(x) for x in err.sel(approach=m, observed=c).values] for c in counts}
        fate_table[m] = {c: [str(x) for x in fate.sel(approach=m, observed=c).values] for c in counts}
        if m != "nuclear":
            N = int(m.removeprefix("depth"))
            floor_table[m] = {c: [bool(x) for x in ds.at_floor.sel(depth=N, observed=c).values] for c in counts}
    not_fitted = []
    for N in depths:
        for c in counts:
            for s in ds.seed.values:
                f = str(fate.sel(approach=f"depth{N}", observed=c, seed=s).item())
                if f != "fitted":
                    run = {k: float(ds[f"run_{k}"].sel(depth=N, observed=c, seed=s)) for k in _RUN_FIELDS}
                    not_fitted.append(_run_words(f"depth{N} at {c} observed, seed {int(s)}", f, run))
    starts = [_start_row(ds, str(name), depths) for name in ds.start.values]
    across = _across(starts)

    def cell(m, c) -> str:
        seeds = ", ".join(_seed_words(e, f, fl) for e, f, fl in
                          zip(per_seed[m][c], fate_table[m][c], floor_table.get(m, {}).get(c, [False] * len(per_seed[m][c]))))
        return f"{table[m][c]:.3g} at {c} [{seeds}]"

    measured = "; ".join(f"{m}: " + ", ".join(cell(m, c) for c in counts) for m in table)
    claims = {k: f"{v['status']} ({v['held']} held, {v['failed']} failed, {v['undecided']} undecided)"
              for k, v in (("A", grade["A"]), ("B", grade["B"]))}
    return {**verdict(grade["verdict"], RULE), "paper": PAPER,
            "measured": f"median relative error [per seed] per observed count: {measured}. Claim A (depth >= 3 below "
                        f"{BETTER:g} x nuclear at {counts[0]}, per seed): {claims['A']}; claim B (depth 2 within "
                        f"{TRACK:g}x of nuclear where it does not recover, per seed): {claims['B']}",
            "claims": claims, "median_relative_error": table, "relative_error_per_seed": per_seed,
            "fates": fate_table, "at_stopping_floor": floor_table, "fate_rule": FATE_RULE, "floor_rule": FLOOR_RULE,
            "runs_not_fitted": not_fitted or "none", "starts": starts, "across_starts": across}


def _seed_words(error: float, fate: str, at_floor: bool) -> str:
    if fate == "fitted" and at_floor:
        return f"<= {error:.2g} (at the stopping floor)"
    return f"{error:.3g}" + ("" if fate in ("fitted", "solved") else f" ({fate})")


def _start_row(ds: xr.Dataset, name: str, depths) -> dict:
    """A start's verdict at the fewest observations, with each depth's median and per-seed errors and fates."""
    fewest = int(ds.observed.values[0])
    nuclear = ds.relative_error.sel(approach="nuclear", observed=fewest).values[None]
    errors = {f"depth{N}": ds.start_relative_error.sel(start=name, depth=N).values[None] for N in depths}
    fates = {f"depth{N}": ds.start_fate.sel(start=name, depth=N).values[None] for N in depths}
    grade = grade_claims(errors, fates, nuclear)
    per_depth = {}
    for N in depths:
        e, f = errors[f"depth{N}"][0], fates[f"depth{N}"][0]
        fl = ds.start_at_floor.sel(start=name, depth=N).values
        per_depth[f"depth{N}"] = {"median": float(np.median(e)),
                                  "per_seed": [_seed_words(x, y, z) for x, y, z in zip(e, f, fl)]}
    return {"start": name, "observed": fewest, "verdict": grade["verdict"],
            "claims": {k: grade[k]["status"] for k in ("A", "B")}, "relative_error": per_depth,
            "nuclear_per_seed": [float(x) for x in nuclear[0]]}


def _across(rows: list[dict]) -> str:
    """What holds across the start rows, in words."""
    def which(claim, status):
        return [r["start"] for r in rows if r["claims"][claim] == status]

    parts = []
    for claim, words in (("A", "depth >= 3 below the nuclear norm"), ("B", "depth 2 tracking the nuclear norm")):
        held = which(claim, "holds")
        parts.append(f"claim A ({words}) holds in every seed at " if claim == "A" else f"claim B ({words}) holds at ")
        parts[-1] += (", ".join(held) if held else "no start") + f" of {len(rows)}"
    verdicts = sorted({r["verdict"].split(":")[0] for r in rows})
    parts.append("verdicts: " + ", ".join(f"{v} at " + ", ".join(r["start"] for r in rows
                                                                  if r["verdict"].split(":")[0] == v) for v in verdicts))
    return "; ".join(parts)


def figure(ds: xr.Dataset):
    """Reconstruction error against the observed count (median, and every seed marked by its fate), the singular
    values of the solutions at the fewest observations (seed 0), and the error at the fewest observations for each
    start (every seed)."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4), constrained_layout=True)
    marks = {"fitted": "o", "solved": "o", "escaping": "x", "still fitting": "^"}
    for k, m in enumerate(ds.approach.values):
        e, color = ds.relative_error.sel(approach=m), f"C{k}"
        label = str(m).replace("depth", "depth ")
        axes[0].semilogy(ds.observed, e.median("seed"), "-", marker="_", ms=14, mew=2, color=color,
                         label=label + " (median)")  # the dash marks the median where one count leaves no line
        for c in ds.observed.values:
            for s in ds.seed.values:
                f = str(ds.fate.sel(approach=m, observed=c, seed=s).item())
                axes[0].semilogy(c, float(e.sel(observed=c, seed=s)), marks.get(f, "s"), color=color, ms=5,
                                 mfc="none" if f != "escaping" else color)
        axes[1].semilogy(ds.index, ds.singular_values.sel(approach=m, observed=ds.observed[0], seed=ds.seed[0]), ".-",
                         ms=3, color=color, label=label)
    for j, name in enumerate(ds.start.values):
        for i, N in enumerate(ds.depth.values):
            for s in ds.seed.values:
                f = str(ds.start_fate.sel(start=name, depth=N, seed=s).item())
                axes[2].semilogy(j + 0.15 * (i - 1), float(ds.start_relative_error.sel(start=name, depth=N, seed=s)),
                                 marks.get(f, "s"), color=f"C{i}", ms=5, mfc="none" if f != "escaping" else f"C{i}",
                                 label=f"depth {int(N)}" if j == 0 and s == ds.seed.values[0] else None)
    nuc = ds.relative_error.sel(approach="nuclear", observed=ds.observed[0])
    axes[2].axhspan(float(nuc.min()), float(nuc.max()), color=f"C{len(ds.depth)}", alpha=0.25, label="nuclear norm")
    axes[2].set_xticks(range(len(ds.start)), [str(s) for s in ds.start.values], rotation=30, ha="right", fontsize=8)
    axes[2].set_xlim(-0.5, len(ds.start) - 0.5)
    axes[0].plot([], [], "kx", label="escaping run")
    axes[0].plot([], [], "k^", mfc="none", label="still fitting")
    axes[0].set(xlabel="observed entries", ylabel="||W - W*||_F / ||W*||_F",
                title="reconstruction error (median: line and dash; every seed: o fitted)")
    axes[1].set(xlabel="index i", ylabel="sigma_i of the solution",
                title=f"singular values at {int(ds.observed[0])} observed entries (seed {int(ds.seed[0])})")
    axes[1].set_xlim(0, min(len(ds.index), 30))
    axes[2].set(ylabel="||W - W*||_F / ||W*||_F", title=f"each start at {int(ds.observed[0])} observed (every seed)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    caption(fig, "ACHL19 matrix completion: deep factorization against the minimum nuclear norm",
            ds.attrs["target"] + "; " + ds.attrs["start"] + "; " + ds.attrs["flow"])
    return fig
