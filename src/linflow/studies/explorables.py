r"""The explorables' data: what the docs site's interactive pages show and the notebooks' live controls compute.

* :func:`leaving_the_flow` -- "GD leaves the flow": on a two-feature regression (so that $W_e$ is a point of the
  plane), the layer flow's path and gradient descent's iterates for every $\eta$ of a grid that runs from the
  first-order regime past $2 / S$ (the sharpness of the flow's limit, docs/math.md (5.4)) to divergence, with the
  loss and the sharpness along each run, in flow time $t = k\eta$.
* :func:`solver_accuracy` -- "how accurate is my solver": work-precision data (docs/math.md section 7) of
  adaptive solvers against the closed-form solution, per tolerance.
* :func:`plateaus` -- "saddle to saddle": the singular values of $W_e$ and the loss along the layer flow from a small
  aligned start, for several initial scales $\alpha$ and depths, with the closed-form escape times (section 10).
* :func:`attractor_map` -- "the attractor map": gradient descent's attractor for every $\eta$ past the threshold on
  the scalar network $uv$ (docs/math.md section 11): the orbit's last iterates, its period, its Lyapunov exponent.

Both return plain, JSON-ready dictionaries (lists of floats; a diverged run is cut where it left the finite
numbers and says so in ``status``); :func:`gd_on_the_plane` is the compiled computation that a live control calls
once per slider move (``eta`` is a tracer: a new value never recompiles).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..core import init, problems
from ..core.init import end_to_end
from ..core.curvature import sharpness
from ..core.descent import EulerRule, iterate
from ..core.fields import LayerFlow, network_loss
from ..core.gfs import gfs_sharpness
from ..core.integrate import gradient_flow
from ..core.problems import Problem
from .accuracy import work_precision

__all__ = ["attractor_map", "plateaus", "plane_problem", "plane_start", "gd_on_the_plane", "leaving_the_flow", "solver_accuracy",
           "live_plane", "accuracy_setting", "live_accuracy", "MAX_STEPS", "HORIZON"]

MAX_STEPS = 2000
HORIZON = 12.0


def plane_problem() -> Problem:
    """A two-feature regression (features scaled 1 and 1/3, 200 samples; ``problems.synthetic``): ``W_e`` is 1 x 2."""
    return problems.synthetic(m=200, d=2, scale_range=3.0, seed=3)


def plane_start(problem: Problem):
    """Depth 3, width 2, balanced layers of scale 0.4 (seed 1): a start away from the target's direction."""
    return init.balanced((problem.d, 2, 2, problem.k), 0.4, seed=1)


@functools.partial(jax.jit, static_argnames=("steps",))
def _layers_path(problem: Problem, layers0, eta, steps: int = MAX_STEPS):
    """GD's layers at every iterate, ``(steps + 1, ...)`` per layer, frozen after a divergence, and the first iterate
    that was not finite (-1: none): the engine (:func:`linflow.core.descent.iterate`), one compiled program for every
    ``eta``."""
    return iterate(EulerRule(LayerFlow(problem)), tuple(layers0), eta, 1, steps)


@functools.partial(jax.jit, static_argnames=("steps",))
def gd_on_the_plane(problem: Problem, layers0, eta, steps: int = MAX_STEPS):
    """``steps`` GD iterates at step ``eta`` from ``layers0``: ``(W_e (steps + 1, k, d), loss (steps + 1,))``,
    NaN from the first iterate that was not finite. One compiled program serves every ``eta``."""
    path, diverged_at = _layers_path(problem, tuple(layers0), eta, steps)
    reached = (diverged_at < 0) | (jnp.arange(steps + 1) < diverged_at)
    we, loss = end_to_end(path), jax.vmap(lambda layers: network_loss(problem, layers))(path)
    return jnp.where(reached[:, None, None], we, jnp.nan), jnp.where(reached, loss, jnp.nan)


def _sharpness_at(problem: Problem, layers0, eta: float, keep: np.ndarray, size: int = 300) -> np.ndarray:
    """The sharpness at GD's iterates ``keep`` (padded to ``size`` points: one compiled shape)."""
    if not len(keep):
        return np.zeros(0)
    idx = np.concatenate([keep, np.full(size - len(keep), keep[-1])])
    path = _layers_path(problem, tuple(layers0), eta)[0]
    return np.asarray(sharpness(problem, tuple(w[idx] for w in path), iters=16))[: len(keep)]


def _finite_prefix(*arrays) -> int:
    """Length of the leading run where every array is finite (and the loss not exploded)."""
    ok = np.ones(len(arrays[0]), bool)
    for a in arrays:
        a = np.asarray(a, float).reshape(len(ok), -1)
        ok &= np.all(np.isfinite(a), axis=1) & np.all(np.abs(a) < 1e12, axis=1)
    return int(np.argmin(ok)) if not ok.all() else len(ok)


def leaving_the_flow(n_etas: int = 41, horizon: float = HORIZON, points: int = 241) -> dict:
    """The data of "GD leaves the flow": the flow's path on ``linspace(0, horizon, points)``, and for each ``eta`` of
    a geometric grid from ``0.02 * 2 / S`` to ``2.5 * 2 / S`` (``S`` the flow limit's sharpness) GD's iterates up to
    flow time ``horizon`` (at most :data:`MAX_STEPS`; every iterate kept below 300 of them, else evenly thinned), each
    with its loss and sharpness; ``status`` says where a run diverged."""
    problem, layers0 = plane_problem(), plane_start(plane_problem())
    s_limit = float(gfs_sharpness(problem, layers0))
    eta_crit = 2.0 / s_limit
    etas = eta_crit * np.geomspace(0.02, 2.5, n_etas)
    ts = np.linspace(0.0, horizon, points)
    flow = gradient_flow(problem, layers0, horizon, ts=ts, rtol=1e-10, atol=1e-12)
    flow_we = np.asarray(flow.end_to_end)[:, 0, :]
    flow_sharp = np.asarray(sharpness(problem, flow.layers, iters=16))
    runs = []
    for eta in etas:
        steps = int(min(MAX_STEPS, math.ceil(horizon / eta)))
        we, loss = gd_on_the_plane(problem, layers0, eta)
        we, loss = np.asarray(we)[: steps + 1, 0, :], np.asarray(loss)[: steps + 1]
        n = _finite_prefix(we, loss)
        keep = np.unique(np.linspace(0, n - 1, min(n, 300)).astype(int)) if n else np.zeros(0, int)
        sharp = _sharpness_at(problem, layers0, eta, keep)
        status = "finite to the horizon" if n == steps + 1 else f"diverged at iterate {n} (t = {n * eta:.3g})"
        runs.append({"eta": float(eta), "steps": steps, "status": status,
                     "t": (keep * eta).tolist(), "w1": we[keep, 0].tolist(), "w2": we[keep, 1].tolist(),
                     "loss": loss[keep].tolist(), "sharpness": sharp.tolist()})
    return {"problem": "linflow.studies.explorables.plane_problem(): problems.synthetic(m=200, d=2, scale_range=3, "
                       "seed=3); depth 3, width 2, balanced start of scale 0.4 (seed 1)",
            "eta_crit": eta_crit, "flow_limit_sharpness": s_limit, "horizon": horizon,
            "etas": [float(e) for e in etas],
            "flow": {"t": ts.tolist(), "w1": flow_we[:, 0].tolist(), "w2": flow_we[:, 1].tolist(),
                     "loss": np.asarray(flow.loss).tolist(), "sharpness": flow_sharp.tolist()},
            "runs": runs}


def solver_accuracy(solvers=("bosh3", "tsit5", "dopri5", "dopri8"), tolerances=tuple(range(3, 13))) -> dict:
    """Work-precision of ``solvers`` on the layer flow of ``whitened([2, 1, 0.5])``, depth 3, from an aligned balanced
    start (closed-form reference, docs/math.md section 4) over ``t1 = 10``: RMS error of ``W_e`` over 100 times,
    final error, function evaluations, accepted and rejected steps, per tolerance ``rtol = 10^-k``."""
    problem = problems.whitened([2.0, 1.0, 0.5])
    start = init.aligned(problem, depth=3, sigma0=0.05)
    ds = work_precision(problem, start, 10.0, solvers=solvers, scipy_solvers=(), tolerances=tolerances,
                        reference="exact", repeats=1)
    out = {"problem": "whitened([2, 1, 0.5]), depth 3, aligned balanced start sigma0 = 0.05, t1 = 10 (exact reference)",
           "tolerances": [int(k) for k in tolerances], "solvers": list(solvers), "data": {}}
    for s in solvers:
        cell = ds.sel(solver=s)
        out["data"][s] = {k: [_json_number(x) for x in np.asarray(cell[k].values, float)]
                          for k in ("rms_error", "final_error", "nfev", "steps", "rejected")}
        out["data"][s]["status"] = [str(x) for x in cell.status.values]
    return out


def live_plane(eta: float, problem: Problem | None = None, layers0=None, horizon: float = HORIZON) -> dict:
    """What the notebook's eta slider draws: GD's ``W_e`` iterates and losses up to flow time ``horizon`` (at most
    :data:`MAX_STEPS`), cut where a run left the finite numbers. :func:`gd_on_the_plane` is compiled once; a new
    ``eta`` is a new value of a traced argument, not a recompilation."""
    problem = plane_problem() if problem is None else problem
    layers0 = plane_start(problem) if layers0 is None else layers0
    we, loss = gd_on_the_plane(problem, tuple(layers0), jnp.asarray(eta, dtype=jnp.float64))
    steps = int(min(MAX_STEPS, math.ceil(horizon / eta)))
    we, loss = np.asarray(we)[: steps + 1, 0, :], np.asarray(loss)[: steps + 1]
    n = _finite_prefix(we, loss)
    return {"t": np.arange(n) * eta, "w1": we[:n, 0], "w2": we[:n, 1], "loss": loss[:n],
            "status": "finite to the horizon" if n == steps + 1 else f"diverged at iterate {n}"}


@functools.lru_cache(maxsize=1)
def accuracy_setting():
    """The problem, start, times and closed-form ``W_e(t)`` of the accuracy explorable (computed once)."""
    from ..core import exact

    problem = problems.whitened([2.0, 1.0, 0.5])
    start = init.aligned(problem, depth=3, sigma0=0.05)
    ts = np.linspace(0.0, 10.0, 101)
    return problem, start, ts, exact.end_to_end(problem, 3, 0.05, ts)


def live_accuracy(solver: str, k: int) -> dict:
    """What the notebook's solver menu and tolerance slider draw: the layer flow solved by ``solver`` at
    ``rtol = 10^-k``, ``atol = 10^-(k+3)``, its error ``||W_e(t) - W_e^exact(t)||_F`` at 101 times, its function
    evaluations and steps. The tolerances enter the compiled solve as values: one compilation per solver."""
    problem, start, ts, exact_we = accuracy_setting()
    run = gradient_flow(problem, start, 10.0, ts=ts, solver=solver, rtol=10.0 ** -k, atol=10.0 ** -(k + 3))
    err = np.linalg.norm((np.asarray(run.end_to_end) - exact_we).reshape(len(ts), -1), axis=1)
    return {"t": ts, "error": err, "nfev": int(run.stats["nfev"]), "steps": int(run.stats["num_steps"]),
            "status": run.status}


def attractor_map() -> dict:
    """The data of "the attractor map": :func:`linflow.studies.atlas.atlas` on ``uv`` fitted to ``y = 1`` from
    ``(u, v) = (0.5, 0.3)`` (notebook 06), 241 etas from 0.9 to 2.1 times ``eta_crit``: per eta the last 128
    iterates' projection ``u v`` (7 digits), the period (0: none), the largest Lyapunov exponent, the attractor in
    words, and where the central flow was measured its relative distance to GD's mean."""
    from . import atlas

    problem = Problem(np.array([[1.0]]), np.array([1.0]))
    start = (jnp.array([[0.5]]), jnp.array([[0.3]]))
    ds = atlas.atlas(problem, start, central_points=6)
    proj = np.round(np.asarray(ds.projection.values, float), 7)
    return {"problem": "uv fitted to y = 1 (loss (uv - 1)^2 / 2) from (u, v) = (0.5, 0.3); linflow.studies.atlas",
            "eta_crit": float(ds.attrs["eta_crit"]), "etas": [float(e) for e in ds.eta.values],
            "ratios": [float(r) for r in ds.ratio.values], "period_rule": ds.attrs["period_rule"],
            "orbit": [[float(x) for x in row if np.isfinite(x)] for row in proj],
            "period": [int(p) for p in ds.period.values],
            "lyapunov": [_json_number(x) for x in ds.lyapunov.values],
            "attractor": [str(a) for a in ds.attractor.values],
            "central_deviation": [_json_number(x) for x in ds.central_deviation_rel.values]}


def plateaus(s=(3.0, 1.0, 0.3), alphas=tuple(10.0 ** -k for k in range(1, 9)), depths=(2, 3, 4),
             points: int = 300) -> dict:
    """The data of "saddle to saddle": for each depth and initial scale ``alpha`` the layer flow on whitened data with
    target singular values ``s`` from the aligned balanced start with every singular value ``alpha`` (rtol 1e-10),
    saved at ``points`` log-spaced times up to 1.5 times the last closed-form escape (and 41 times within 4% of each
    escape): the singular values of ``W_e``
    and the loss; beside them the closed-form escape times (``sigma_i = s_i / 2``, docs/math.md (10.1)) and the
    plateau levels ``sum_{i > j} s_i^2 / 2``."""
    from ..core import exact

    problem = problems.whitened(list(s))
    out = {"problem": f"whitened({list(s)}), aligned balanced start with every singular value alpha; layer flow, "
                      "rtol 1e-10, atol 1e-12 (tsit5)",
           "s": list(s), "alphas": list(alphas), "depths": list(depths),
           "plateaus": [float(sum(x ** 2 for x in s[j:]) / 2) for j in range(len(s) + 1)], "runs": {}}
    for N in depths:
        rows = []
        for alpha in alphas:
            escapes = [float(exact.time_to_reach(si / 2, si, alpha, N)) for si in s]
            t1 = 1.5 * max(escapes)
            near = [np.linspace(0.96 * e, 1.04 * e, 41) for e in escapes]  # each escape resolved
            ts = np.unique(np.concatenate([[0.0], np.geomspace(1e-3 * min(escapes), t1, points - 1), *near]))
            run = gradient_flow(problem, init.aligned(problem, N, alpha), t1, ts=ts, rtol=1e-10, atol=1e-12,
                                max_steps=400_000)
            sv = np.linalg.svd(np.asarray(run.end_to_end), compute_uv=False)
            n = _finite_prefix(sv, np.asarray(run.loss))
            rows.append({"alpha": float(alpha), "escapes": escapes, "status": run.status, "t": ts[:n].tolist(),
                         "sigma": [sv[:n, i].tolist() for i in range(len(s))],
                         "loss": np.asarray(run.loss)[:n].tolist()})
        out["runs"][str(N)] = rows
    return out


def _json_number(x: float):
    return float(x) if np.isfinite(x) else None
