"""One grid point, or a batch of points along the task's batch axis: the tasks (run, compare, accuracy,
regime) and what their points share."""

from __future__ import annotations

import json
import math

import numpy as np


from .config import defaults, parse_singular_values


# ----------------------------------------------------------------------------- one point
def problem_and_layers(params: dict, task: str = "run"):
    """The problem and start of a grid point (:mod:`linflow.core.specs`, the command line's builder); for task
    ``saddles`` whitened regression with a square target of the point's ``singular_values`` and the ``start``
    (aligned or random) whose product has every singular value ``scale`` (:mod:`linflow.studies.saddles`)."""
    from ...core import problems, specs

    if task == "saddles":
        from ..saddles.flows import start_layers

        prob = problems.whitened(sorted(parse_singular_values(params["singular_values"]), reverse=True),
                                 seed=params["seed"])
        return prob, start_layers(prob, params["depth"], params["scale"], params["start"], params["seed"])

    prob = specs.problem(params["problem"], m=params["m"], d=params["d"], p=params["p"],
                         weight_decay=params["weight_decay"], seed=params["seed"], data=params["data"])
    widths = [params["width"]] * (params["depth"] - 1)
    return prob, specs.start(prob, params["depth"], widths, params["init"], params["scale"], params["seed"])


#: the grid axis along which a task's points share work (``run``: the flows, in one overview of the batch's etas;
#: ``regime``: the flow and ``eta_crit``): the points of a grid that differ only there run as one batch, the shared part once
BATCH_AXIS = {"run": "eta", "regime": "eta_ratio", "atlas": "eta_ratio"}


def run_point(task: str, params: dict) -> dict:
    """Run one grid point; returns ``{"status": "ok"|"failed", "reason": ..., "results": {name: float}}``.

    Pure: the same parameters give the same numbers in any process.
    """
    return run_points(task, [params])[0]


def run_points(task: str, batch: list[dict]) -> list[dict]:
    """Run grid points that differ at most along :data:`BATCH_AXIS` ``[task]``: the problem, the start and the
    work they share (the gradient flow; ``eta_crit``) once, then each point. One record per point, each the
    same, bit for bit, as :func:`run_point` of that point alone."""
    full = [defaults(task) | params for params in batch]
    shared = {k for k in full[0] if k != BATCH_AXIS.get(task)}
    if any({k: f[k] for k in shared} != {k: full[0][k] for k in shared} for f in full[1:]):
        raise ValueError(f"a batch of {task!r} points may differ only in {BATCH_AXIS.get(task)!r}")
    try:
        if full[0]["depth"] < 1:
            raise ValueError(f"depth must be >= 1, got {full[0]['depth']}")
        prob, layers = problem_and_layers(full[0], task)
    except Exception as exc:  # a failing point is recorded, never fatal
        return [failed_record(f"{type(exc).__name__}: {exc}")] * len(full)
    cache: dict = {"batch": full}
    return [_one_point(task, prob, layers, p, cache) for p in full]


def _one_point(task: str, prob, layers, p: dict, cache: dict) -> dict:
    try:
        results = TASK_FUNCTIONS[task](prob, layers, p, cache)
    except Exception as exc:  # a failing point is recorded, never fatal
        return failed_record(f"{type(exc).__name__}: {exc}")
    reason = results.pop("reason", "")
    bad = [k for k, v in results.items() if not np.isfinite(v)]
    return {"status": "failed" if reason else "ok", "reason": reason, "results": results, "nonfinite": bad}


def batches_of(todo: list, task: str) -> list[list]:
    """``todo`` (pairs ``(index, params)``) grouped into batches of points that differ only along the task's
    batch axis (one point per batch for the other tasks), in grid order."""
    axis = BATCH_AXIS.get(task)
    groups: dict = {}
    for idx, params in todo:
        key = json.dumps({k: v for k, v in params.items() if k != axis}, sort_keys=True) if axis else len(groups)
        groups.setdefault(key, []).append((idx, params))
    return list(groups.values())


def _settings(p: dict):
    """The point's :class:`~linflow.SolverSettings` (``solver``, ``rtol``, ``atol``), built once per task call."""
    from ...core.settings import SolverSettings

    return SolverSettings(p["solver"], rtol=p["rtol"], atol=p["atol"])


def _flow(prob, layers, p, cache: dict):
    """The gradient flow of a point on ``[0, t1]`` (``points`` saves): computed once per batch of points."""
    from ...core.integrate import gradient_flow

    if "flow" not in cache:
        cache["flow"] = gradient_flow(prob, layers, p["t1"], n_save=p["points"], settings=_settings(p))
    if not cache["flow"].ok:
        raise RuntimeError(cache["flow"].message)
    return cache["flow"]


def run_grid(eta: float, t1: float, points: int) -> tuple[float, int]:
    """The time grid of task ``run`` at ``eta``: :func:`linflow.core.measures.save_grid`."""
    from ...core.measures import save_grid

    return save_grid(eta, t1, points)


def _task_run(prob, layers, p, cache: dict) -> dict:
    """:func:`linflow.studies.overview.overview` (the layer flow, the end-to-end flow, GD and Eq. 10) on the point's
    :func:`run_grid`, computed once for all the etas of the batch that share that grid: this point's row."""
    from ..overview import overview, summary

    grid = run_grid(p["eta"], p["t1"], p["points"])
    if grid not in cache:
        etas = [q["eta"] for q in cache["batch"] if run_grid(q["eta"], q["t1"], q["points"]) == grid]
        try:
            ds = overview(prob, layers, etas, grid[0], points=grid[1], settings=_settings(p))
            cache[grid] = (ds, summary(ds))
        except Exception as exc:  # e.g. the layer flow failed: every point on this grid says so, computed once
            cache[grid] = exc
    if isinstance(cache[grid], Exception):
        raise cache[grid]
    ds, s = cache[grid]
    i = [float(e) for e in ds.eta.values].index(p["eta"])
    row, gd = s["runs"][i], ds.isel(eta=i)
    ok = row["gd_status"] == "ok"
    imbalance = gd.gd_imbalance.values[np.isfinite(gd.gd_imbalance.values)]
    return {"horizon": grid[0], "flow_final_loss": s["flow"]["final_loss"],
            "gd_final_loss": float(gd.gd_loss.values[-1]) if ok else math.nan,
            "max_relative_deviation": row["max_relative_deviation_gd"],
            "max_relative_deviation_eq10": row["max_relative_deviation_eq10"],
            "theorem1_relative_gap": s["theorem1_relative_gap"], "gd_imbalance_final": float(imbalance[-1]),
            "flow_nfev": float(s["flow"]["nfev"]), "diverged": float(not ok),
            "reason": "" if ok else f"gradient descent diverged: {row['gd_message']}"}


def _task_compare(prob, layers, p, cache: dict) -> dict:
    from ...core.measures import divisor_etas
    from ..comparison import compare, summary

    ds = compare(prob, layers, divisor_etas(p["t1"], p["points"], p["eta_divisors"]), p["t1"], points=p["points"],
                 tol=p["tol"], orders=(1,), settings=_settings(p))
    s = summary(ds)
    return {"breakdown_eta": s["breakdown_eta_interpolated"], "stability_eta_predicted": s["stability_eta_predicted"],
            "stability_eta_observed": s["stability_eta_observed"], "order_flow": s["order_flow"]["order"],
            "order_modified1": s["order_modified1"]["order"], "sharpness_max": s["sharpness_max"]}


def _task_accuracy(prob, layers, p, cache: dict) -> dict:
    from ..accuracy import work_precision

    k = round(-math.log10(p["rtol"]))
    ds = work_precision(prob, layers, p["t1"], solvers=("tsit5", "dopri8"), scipy_solvers=(), tolerances=(k,),
                        reference="numerical", repeats=1, n_times=max(p["points"], 2))
    out = {}
    for name in ("tsit5", "dopri8"):
        row = ds.sel(solver=name)
        out[f"{name}_rms_error"] = float(row.rms_error.values[0])
        out[f"{name}_nfev"] = float(row.nfev.values[0])
    return out


def _task_regime(prob, layers, p, cache: dict) -> dict:
    """GD at ``eta = eta_ratio * eta_crit`` (``eta_crit = 2 / max_t S(t)`` along the gradient flow on ``[0, t1]``),
    classified by :func:`linflow.compare` (with the central flow where the network is small): ``regime`` is an
    index into :data:`linflow.comparison.REGIMES`. The flow and ``eta_crit`` are shared by a batch of ratios."""
    from ..comparison import REGIMES, compare
    from ...core.curvature import sharpness

    if "eta_crit" not in cache:
        cache["eta_crit"] = 2.0 / float(np.max(np.asarray(sharpness(prob, _flow(prob, layers, p, cache).layers))))
    eta_crit = cache["eta_crit"]
    eta = p["eta_ratio"] * eta_crit
    per_save = max(1, math.ceil(p["t1"] / eta / (p["points"] - 1)))  # GD steps between saves: t1 rounded up
    ds = compare(prob, layers, [eta], per_save * eta * (p["points"] - 1), points=p["points"], orders=(),
                 settings=_settings(p))
    return {"regime": float(REGIMES.index(str(ds.regime.values[0]))), "eta": eta, "eta_crit": eta_crit,
            "gd_midpoint_sharpness_ratio": float(ds.gd_midpoint_sharpness.values[0, -1]) * eta / 2,
            "central_deviation_rel": float(ds.central_deviation_rel.values[0, -1])}


def _task_saddles(prob, layers, p, cache: dict) -> dict:
    """Each mode's escape time along the layer flow and the end-to-end flow (root state) from the point's small start,
    against the closed form (aligned start) or the layer flow (random start), and GD's at the point's ``eta``
    (:func:`linflow.studies.saddles.gd_escapes` without its solver costs): per mode ``i`` ``escape_i`` (layer flow),
    ``exact_escape_i`` (the closed form; aligned start only), ``gd_relative_shift_i``; ``escape_relative_error`` the
    largest over modes and both flows against the reference."""
    from ...core.settings import SolverSettings
    from ..saddles import escape_times, exact_escape_times, gd_escapes

    s = np.linalg.svd(np.asarray(prob.target), compute_uv=False)
    depth, alpha = p["depth"], p["scale"]
    if depth < 2 or not 0 < alpha < s[-1] / 2:
        raise ValueError(f"task 'saddles' needs depth >= 2 and 0 < scale < {s[-1] / 2:g} (the weakest escape level), "
                         f"got depth {depth}, scale {alpha:g}")
    exact = exact_escape_times(s, alpha, depth)
    settings = SolverSettings(p["solver"], rtol=p["rtol"], atol=p["atol"], max_steps=3_000_000)
    horizon = (1.2 if p["start"] == "aligned" else 3.0) * exact[-1]
    runs = {flow: escape_times(prob, layers, horizon, flow=flow, settings=settings) for flow in ("layers", "end_to_end")}
    for flow, run in runs.items():
        if run["status"] != "ok" or not np.all(np.isfinite(run["times"])):
            return {"reason": f"the {flow} flow did not reach every escape by t = {horizon:g}: "
                              f"{run['message'] or 'no solver failure'}"}
    reference = exact if p["start"] == "aligned" else runs["layers"]["times"]
    error = max(float(np.max(np.abs(run["times"] / reference - 1))) for run in runs.values())
    gd = gd_escapes(s, depth=depth, alpha=alpha, etas=(p["eta"],), seed=p["seed"], solvers=(), start=p["start"])
    out = {"escape_relative_error": error if p["start"] == "aligned" else float(
        np.max(np.abs(runs["end_to_end"]["times"] / reference - 1))), "flow_steps": float(runs["layers"]["num_steps"])}
    for i, t in enumerate(runs["layers"]["times"], start=1):
        out[f"escape_{i}"] = float(t)
        if p["start"] == "aligned":
            out[f"exact_escape_{i}"] = float(exact[i - 1])
        out[f"gd_relative_shift_{i}"] = float(gd.relative_escape_shift.values[0, i - 1])
    out["gd_steps"] = float(gd.gd_steps.values[0])
    status = str(gd.status.values[0])
    if status != "ok":
        out["reason"] = f"gradient descent at eta {p['eta']:g}: {status}"
    return out


def _task_atlas(prob, layers, p, cache: dict) -> dict:
    """GD's attractor at ``eta = eta_ratio * eta_crit`` (``eta_crit = 2 / S`` of the gradient flow's limit from the
    start), every ratio of the batch in one vmapped run (:func:`linflow.studies.atlas.atlas`, no central flow):
    ``period`` (0: none), ``lyapunov`` (per step), ``chaotic`` (1.0 where the attractor is chaotic), ``eta``,
    ``eta_crit``; a run that diverged fails the point, its step in the reason."""
    from ..atlas import atlas

    ratios = [q["eta_ratio"] for q in cache["batch"]]
    if "atlas" not in cache:
        cache["atlas"] = atlas(prob, layers, ratios=ratios, transient=p["transient"], record=p["record"],
                               central_points=0, seed=p["seed"])
    ds = cache["atlas"]
    row = ds.isel(eta=ratios.index(p["eta_ratio"]))
    out = {"period": float(row.period), "lyapunov": float(row.lyapunov), "eta": float(row.eta),
           "eta_crit": float(ds.attrs["eta_crit"]), "chaotic": float(str(row.attractor.values) == "chaotic")}
    if int(row.diverged_at) >= 0:
        out["reason"] = f"gradient descent diverged at step {int(row.diverged_at)}"
    return out


def _task_sgd(prob, layers, p, cache: dict) -> dict:
    """SGD's ensemble of ``paths`` runs at ``eta`` with minibatches of ``batch`` (with replacement) against the gradient
    flow and the first- and second-order SMEs (:func:`linflow.studies.stochastic.weak_errors`) at the horizon ``t1``:
    ``sgd_loss`` and ``sgd_loss_se`` (E L(W_e) and its standard error), ``gf_error``, ``sme1_error``,
    ``sme2_error`` (each model's E L minus SGD's) and ``sme1_error_se``, ``sme2_error_se``; an ensemble with a diverged
    path fails the point (how many, in the reason)."""
    from ..stochastic import weak_errors

    ds = weak_errors(prob, layers, [p["eta"]], p["t1"], batch=p["batch"], paths=p["paths"], points=2, seed=p["seed"],
                     methods=("gf", "sme1", "sme2"))
    last = dict(eta=p["eta"], observable="loss", time=p["t1"])
    out = {"sgd_loss": float(ds["mean"].sel(model="sgd", **last)), "sgd_loss_se": float(ds["se"].sel(model="sgd", **last))}
    for model in ("gf", "sme1", "sme2"):
        out[f"{model}_error"] = float(ds.weak_error.sel(model=model, **last))
        if model != "gf":
            out[f"{model}_error_se"] = float(ds.weak_se.sel(model=model, **last))
    bad = {str(m): int(n) for m, n in zip(ds.model.values, ds.not_ok.sel(eta=p["eta"]).values) if n}
    if bad:
        out["reason"] = "paths left the finite numbers: " + ", ".join(f"{m} {n} of {p['paths']}" for m, n in bad.items())
    return out


def _task_momentum(prob, layers, p, cache: dict) -> dict:
    """The momentum method ``method`` (heavy ball or Nesterov, momentum ``beta``) at ``eta`` against its continuous
    models (:func:`linflow.studies.momentum.breakdown` on ``[0, t1]``, ``points`` saves): each pair's relative
    deviation after the initial layer, named ``<model>_<flow start>_vs_<run start>`` (e.g.
    ``modified_initial_layer_vs_rest``). ``method = "adam_fixed"``: optax's Adam at fixed ``beta1 = beta``,
    ``beta2``, ``eps_root`` (``eps = 0``) against its memoryless flow and its modified equation
    (:func:`linflow.studies.momentum.adam_fixed_breakdown`), deviations ``memoryless_vs_adam`` and
    ``modified_vs_adam``. A run that diverged fails the point (which start, in the reason), and so does a model whose
    solve stopped before ``t1`` (which model and why, in the reason)."""
    from .. import momentum

    if p["method"] == "adam_fixed":
        ds = momentum.adam_fixed_breakdown(prob, layers, [p["eta"]], p["beta"], p["beta2"], p["t1"],
                                           eps_root=p["eps_root"], points=p["points"], settings=_settings(p))
        names = [f"{model}_vs_adam" for model in momentum.ADAM_FIXED_MODELS]
        labels, starts = list(momentum.ADAM_FIXED_MODELS), ["rest"]
    else:
        ds = momentum.breakdown(prob, layers, [p["eta"]], p["beta"], p["t1"], points=p["points"], method=p["method"],
                                settings=_settings(p))
        names = [f"{model}_{flow_start}_vs_{start}" for start, model, flow_start, _ in momentum.PAIRS]
        labels = [f"{model} ({flow_start})" for _, model, flow_start, _ in momentum.PAIRS]
        starts = ["rest", "manifold"]
    out = {name: float(ds.deviation_rel.values[i, 0]) for i, name in enumerate(names)}
    bad = [s for s in starts if str(ds[f"status_{s}"].values[0]) != "ok"]
    stopped = [f"{label}: {code}" for label, code in zip(labels, ds.status_model.values[:, 0]) if code not in ("ok", "")]
    method = "adam" if p["method"] == "adam_fixed" else p["method"]
    reasons = ([f"{method} diverged at eta = {p['eta']:g} (from {' and from '.join(bad)})"] if bad else []) + (
        [f"a model's solve stopped before t1: {', '.join(stopped)}"] if stopped else [])
    if reasons:
        out["reason"] = "; ".join(reasons)
    return out


TASK_FUNCTIONS = {"run": _task_run, "compare": _task_compare, "accuracy": _task_accuracy, "regime": _task_regime,
                  "saddles": _task_saddles, "atlas": _task_atlas, "sgd": _task_sgd, "momentum": _task_momentum}


def failed_record(reason: str) -> dict:
    """The record of a point that failed (kept in the store with its reason)."""
    return {"status": "failed", "reason": reason, "results": {}, "nonfinite": []}
