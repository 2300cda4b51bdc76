"""Parameter sweeps: declarative grids, resumable stores, local or Dask execution.

A sweep runs one *task* (``run``, ``compare``, ``accuracy`` or ``regime``) at every point of a grid (the product
of its axes) and collects scalar results into an ``xarray.Dataset`` with one dimension per axis.

The store is a folder:

* ``points/<index>.json``: one file per finished grid point (its parameters, results, status and
  reason of failure), each written atomically: a sweep killed at any moment (``kill -9`` included)
  loses at most the points in flight;
* ``result.nc``: the assembled Dataset (NaN where a point is not done or failed), rewritten
  atomically every ``flush_every`` seconds (10 by default) and at the end, so xarray can read it while
  the sweep grows; :func:`load` assembles the store as it is at any moment. A point costs one small
  file write whatever the number of finished points (the records are read once, at the start);
* ``sweep.json``: the grid, the fixed parameters and the task (a restart must match them).

Starting the same sweep again computes only the missing points and ends with the same store as an
uninterrupted run. A point that fails (divergence, a solver failure, bad parameters) is recorded
with its reason and does not stop the rest. Executors: ``local`` (in-process, one point after
another, or on a pool of ``n_workers`` spawned processes) or ``dask`` (``dask.distributed``: a
``LocalCluster`` by default, or any scheduler address).
The same grid gives the same numbers, bit for bit, on both. Points that differ only along a task's
batch axis (:data:`BATCH_AXIS`: ``eta`` for ``run``, ``eta_ratio`` for ``regime``) run as one batch: the
work they share once (``run``: one :func:`linflow.overview` of all the batch's etas; ``regime``: the gradient
flow and ``eta_crit``), then each point (:func:`run_points`).
"""

from __future__ import annotations

import itertools
import json
import math
import time
import tomllib
from pathlib import Path

import numpy as np
import xarray as xr

from ..core import files as _io
from ..core.catalog import INITS, PROBLEMS

__all__ = ["sweep", "load", "load_config", "validate", "run_point", "run_points", "run_grid", "BATCH_AXIS", "PARAMETERS",
           "TASKS", "PROBLEMS", "phase_diagram", "regime_diagram"]

# parameter -> (type, default); every grid axis and fixed value must be one of these
PARAMETERS: dict[str, tuple[type, object]] = {
    "problem": (str, "synthetic"),
    "data": (str, ""),
    "m": (int, 500),
    "d": (int, 8),
    "p": (float, 2.0),
    "weight_decay": (float, 0.0),
    "seed": (int, 0),
    "depth": (int, 3),
    "width": (int, 8),
    "init": (str, "balanced"),
    "scale": (float, 0.3),
    "t1": (float, 10.0),
    "points": (int, 41),
    "eta": (float, 0.05),
    "eta_divisors": (list, [1, 2, 4, 8, 16]),
    "tol": (float, 1e-2),
    "solver": (str, "tsit5"),
    "rtol": (float, 1e-8),
    "atol": (float, 1e-10),
    "eta_ratio": (float, 1.0),
}
TASKS = ("run", "compare", "accuracy", "regime")
# the range of each numeric parameter: (lower bound, whether the bound itself is allowed)
_BOUNDS: dict[str, tuple[float, bool]] = {
    "m": (1, True), "d": (1, True), "p": (1.0, True), "weight_decay": (0.0, True), "seed": (0, True),
    "depth": (1, True), "width": (1, True), "scale": (0.0, False), "t1": (0.0, False), "points": (2, True),
    "eta": (0.0, False), "tol": (0.0, False), "rtol": (0.0, False), "atol": (0.0, False),
    "eta_ratio": (0.0, False),
}


def _check_bound(key: str, value, where: str) -> None:
    if key not in _BOUNDS:
        return
    low, inclusive = _BOUNDS[key]
    if value < low or (value == low and not inclusive):
        raise ValueError(f"{where}: {key!r} must be {'>=' if inclusive else '>'} {low:g}, got {value!r}")


def _check_value(key: str, value, where: str):
    kind = PARAMETERS[key][0]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"{where}: {key!r} must be a finite number, got {value!r}")
        _check_bound(key, value, where)
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where}: {key!r} must be an integer, got {value!r}")
        _check_bound(key, value, where)
        return int(value)
    if kind is list:
        if not isinstance(value, list) or not value or not all(isinstance(v, int) and v > 0 for v in value):
            raise TypeError(f"{where}: {key!r} must be a non-empty list of positive integers, got {value!r}")
        return list(value)
    if not isinstance(value, str):
        raise TypeError(f"{where}: {key!r} must be a string, got {value!r}")
    if key == "init" and value not in INITS:
        raise ValueError(f"{where}: 'init' must be one of {', '.join(INITS)}, got {value!r}")
    if key == "problem" and value not in PROBLEMS:
        raise ValueError(f"{where}: 'problem' must be one of {', '.join(PROBLEMS)}, got {value!r}")
    return value


def validate(grid: dict, fixed: dict | None = None, task: str = "run") -> tuple[dict, dict]:
    """Check a grid and fixed parameters before anything runs; returns normalized copies.

    Raises ``ValueError`` / ``TypeError`` naming the offending key: unknown parameter, empty axis, a
    value of the wrong type, an axis also given as a fixed value, an unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty mapping of parameter -> list of values")
    fixed = dict(fixed or {})
    out_grid, out_fixed = {}, {}
    for key, values in grid.items():
        if key not in PARAMETERS:
            raise ValueError(f"grid: unknown parameter {key!r}; known: {', '.join(PARAMETERS)}")
        if PARAMETERS[key][0] is list:
            raise ValueError(f"grid: {key!r} cannot be a grid axis (give it in 'fixed')")
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"grid: axis {key!r} must be a non-empty list, got {values!r}")
        vals = [_check_value(key, v, f"grid axis {key!r}") for v in values]
        if len(set(vals)) != len(vals):
            raise ValueError(f"grid: axis {key!r} repeats a value: {vals}")
        out_grid[key] = vals
    for key, value in fixed.items():
        if key not in PARAMETERS:
            raise ValueError(f"fixed: unknown parameter {key!r}; known: {', '.join(PARAMETERS)}")
        if key in out_grid:
            raise ValueError(f"fixed: {key!r} is also a grid axis")
        out_fixed[key] = _check_value(key, value, "fixed")
    return out_grid, out_fixed


def load_config(path) -> dict:
    """A sweep from a TOML file: ``task``, optional ``store``, a ``[grid]`` table and a ``[fixed]`` table.

    A relative ``store`` is taken relative to the working directory (like every output path of the
    command line); without one the store is ``<config name>-store`` there. ``name`` is the file's
    stem (the figures of the sweep are named after it).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"config {path}: no such file (expected a TOML file with task, store, [grid] and [fixed])")
    if not path.is_file():
        raise ValueError(f"config {path}: not a file (expected a TOML file with task, store, [grid] and [fixed])")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ValueError(f"config {path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ValueError(f"config {path}: not UTF-8 text (line {line}, byte {exc.start}); TOML files are UTF-8") from None
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(cfg) - {"task", "store", "grid", "fixed"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected task, store, grid, fixed")
    if "grid" not in cfg:
        raise ValueError(f"{path}: a [grid] table is required")
    store = cfg.get("store", f"{path.stem}-store")  # relative to the working directory unless absolute
    return {"name": path.stem, "task": cfg.get("task", "run"), "store": store, "grid": cfg["grid"],
            "fixed": cfg.get("fixed", {})}


# ----------------------------------------------------------------------------- one point
def _problem_and_layers(params: dict):
    """The problem and start of a grid point (:mod:`linflow.core.specs`, the command line's builder)."""
    from ..core import specs

    prob = specs.problem(params["problem"], m=params["m"], d=params["d"], p=params["p"],
                         weight_decay=params["weight_decay"], seed=params["seed"], data=params["data"])
    widths = [params["width"]] * (params["depth"] - 1)
    return prob, specs.start(prob, params["depth"], widths, params["init"], params["scale"], params["seed"])


#: the grid axis along which a task's points share work (``run``: the flows, in one overview of the batch's etas;
#: ``regime``: the flow and ``eta_crit``): the points of a grid that differ only there run as one batch, the shared part once
BATCH_AXIS = {"run": "eta", "regime": "eta_ratio"}


def run_point(task: str, params: dict) -> dict:
    """Run one grid point; returns ``{"status": "ok"|"failed", "reason": ..., "results": {name: float}}``.

    Pure: the same parameters give the same numbers in any process.
    """
    return run_points(task, [params])[0]


def run_points(task: str, batch: list[dict]) -> list[dict]:
    """Run grid points that differ at most along :data:`BATCH_AXIS` ``[task]``: the problem, the start and the
    work they share (the gradient flow; ``eta_crit``) once, then each point. One record per point, each the
    same, bit for bit, as :func:`run_point` of that point alone."""
    full = [{k: v for k, (_, v) in PARAMETERS.items()} | params for params in batch]
    shared = {k for k in full[0] if k != BATCH_AXIS.get(task)}
    if any({k: f[k] for k in shared} != {k: full[0][k] for k in shared} for f in full[1:]):
        raise ValueError(f"a batch of {task!r} points may differ only in {BATCH_AXIS.get(task)!r}")
    try:
        if full[0]["depth"] < 1:
            raise ValueError(f"depth must be >= 1, got {full[0]['depth']}")
        prob, layers = _problem_and_layers(full[0])
    except Exception as exc:  # a failing point is recorded, never fatal
        return [_failed(f"{type(exc).__name__}: {exc}")] * len(full)
    cache: dict = {"batch": full}
    return [_one_point(task, prob, layers, p, cache) for p in full]


def _one_point(task: str, prob, layers, p: dict, cache: dict) -> dict:
    try:
        results = TASK_FUNCTIONS[task](prob, layers, p, cache)
    except Exception as exc:  # a failing point is recorded, never fatal
        return _failed(f"{type(exc).__name__}: {exc}")
    reason = results.pop("reason", "")
    bad = [k for k, v in results.items() if not np.isfinite(v)]
    return {"status": "failed" if reason else "ok", "reason": reason, "results": results, "nonfinite": bad}


def _batches(todo: list, task: str) -> list[list]:
    """``todo`` (pairs ``(index, params)``) grouped into batches of points that differ only along the task's
    batch axis (one point per batch for the other tasks), in grid order."""
    axis = BATCH_AXIS.get(task)
    groups: dict = {}
    for idx, params in todo:
        key = json.dumps({k: v for k, v in params.items() if k != axis}, sort_keys=True) if axis else len(groups)
        groups.setdefault(key, []).append((idx, params))
    return list(groups.values())


def _flow(prob, layers, p, cache: dict):
    """The gradient flow of a point on ``[0, t1]`` (``points`` saves): computed once per batch of points."""
    from ..core.integrate import gradient_flow

    if "flow" not in cache:
        cache["flow"] = gradient_flow(prob, layers, p["t1"], n_save=p["points"], solver=p["solver"], rtol=p["rtol"],
                                      atol=p["atol"])
    if not cache["flow"].ok:
        raise RuntimeError(cache["flow"].message)
    return cache["flow"]


def run_grid(eta: float, t1: float, points: int) -> tuple[float, int]:
    """The time grid ``linspace(0, horizon, n)`` of task ``run`` at ``eta``: ``(t1, points)`` when ``eta`` divides
    ``t1 / (points - 1)``; otherwise ``s = max(1, round(t1 / (points - 1) / eta))`` steps between saves and
    ``n - 1 = max(1, round(t1 / (s eta)))`` saves, so that GD's iterate ``k`` sits at ``t = k eta`` on the grid and
    ``horizon = (n - 1) s eta`` is the nearest such horizon to ``t1`` (within half a save spacing)."""
    from ..core.descent import steps_per_save

    try:
        steps_per_save(eta, t1, points)
        return float(t1), int(points)
    except ValueError:
        every = max(1, round(t1 / (points - 1) / eta))
        saves = max(1, round(t1 / (every * eta)))
        return saves * every * eta, saves + 1


def _task_run(prob, layers, p, cache: dict) -> dict:
    """:func:`linflow.overview.overview` (the layer flow, the end-to-end flow, GD and Eq. 10) on the point's
    :func:`run_grid`, computed once for all the etas of the batch that share that grid: this point's row."""
    from .overview import overview, summary

    grid = run_grid(p["eta"], p["t1"], p["points"])
    if grid not in cache:
        etas = [q["eta"] for q in cache["batch"] if run_grid(q["eta"], q["t1"], q["points"]) == grid]
        try:
            ds = overview(prob, layers, etas, grid[0], points=grid[1], solver=p["solver"], rtol=p["rtol"],
                          atol=p["atol"])
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
    from .comparison import compare, summary

    spacing = p["t1"] / (p["points"] - 1)
    ds = compare(prob, layers, [spacing / n for n in p["eta_divisors"]], p["t1"], points=p["points"], tol=p["tol"],
                 orders=(1,), solver=p["solver"], rtol=min(p["rtol"], 1e-10), atol=min(p["atol"], 1e-12))
    s = summary(ds)
    return {"breakdown_eta": s["breakdown_eta_interpolated"], "stability_eta_predicted": s["stability_eta_predicted"],
            "stability_eta_observed": s["stability_eta_observed"], "order_flow": s["order_flow"]["order"],
            "order_modified1": s["order_modified1"]["order"], "sharpness_max": s["sharpness_max"]}


def _task_accuracy(prob, layers, p, cache: dict) -> dict:
    from .accuracy import work_precision

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
    from .comparison import REGIMES, compare
    from ..core.curvature import sharpness

    if "eta_crit" not in cache:
        cache["eta_crit"] = 2.0 / float(np.max(np.asarray(sharpness(prob, _flow(prob, layers, p, cache).layers))))
    eta_crit = cache["eta_crit"]
    eta = p["eta_ratio"] * eta_crit
    per_save = max(1, math.ceil(p["t1"] / eta / (p["points"] - 1)))  # GD steps between saves: t1 rounded up
    ds = compare(prob, layers, [eta], per_save * eta * (p["points"] - 1), points=p["points"], orders=(),
                 solver=p["solver"], rtol=p["rtol"], atol=p["atol"])
    return {"regime": float(REGIMES.index(str(ds.regime.values[0]))), "eta": eta, "eta_crit": eta_crit,
            "gd_midpoint_sharpness_ratio": float(ds.gd_midpoint_sharpness.values[0, -1]) * eta / 2,
            "central_deviation_rel": float(ds.central_deviation_rel.values[0, -1])}


TASK_FUNCTIONS = {"run": _task_run, "compare": _task_compare, "accuracy": _task_accuracy, "regime": _task_regime}


# ----------------------------------------------------------------------------- the sweep
def _points(grid: dict):
    axes = list(grid)
    for idx in itertools.product(*(range(len(grid[a])) for a in axes)):
        yield idx, {a: grid[a][i] for a, i in zip(axes, idx)}


def _point_name(idx) -> str:
    return "p" + "_".join(str(i) for i in idx) + ".json"


def _read_records(store: Path) -> dict:
    """The finished points of a store, by grid index (read once, when a sweep starts or is assembled)."""
    records = {}
    for f in sorted((store / "points").glob("p*.json")):
        rec = json.loads(f.read_text())
        records[tuple(rec["index"])] = rec
    return records


def _assemble(records: dict, grid: dict, fixed: dict, task: str) -> xr.Dataset:
    """The Dataset of the finished points ``records`` (NaN where a point is pending or has no value)."""
    axes = list(grid)
    shape = tuple(len(grid[a]) for a in axes)
    names = sorted({k for r in records.values() for k in r["results"]})
    data = {n: np.full(shape, np.nan) for n in names}
    status = np.full(shape, "pending", dtype=object)
    reason = np.full(shape, "", dtype=object)
    for idx, rec in records.items():
        status[idx] = rec["status"]
        reason[idx] = rec["reason"]
        for n, v in rec["results"].items():
            data[n][idx] = np.nan if v is None else v  # JSON null: no value (see the point's status)
    dv = {n: (axes, v) for n, v in data.items()}
    dv["status"] = (axes, status.astype(str))
    dv["reason"] = (axes, reason.astype(str))
    attrs = {"task": task, "fixed": json.dumps(fixed, sort_keys=True), "done": int((status != "pending").sum()),
             "failed": int((status == "failed").sum()), "total": int(status.size)}
    return xr.Dataset(dv, coords={a: grid[a] for a in axes}, attrs=attrs)


def load(store) -> xr.Dataset:
    """The Dataset of a sweep store as it is now (finished points; the others pending), from its records."""
    store = Path(store)
    spec = json.loads((store / "sweep.json").read_text())
    grid = {axis: spec["grid"][axis] for axis in spec["axes"]}
    return _assemble(_read_records(store), grid, spec["fixed"], spec["task"])


def _write_point(store: Path, idx, params, out) -> dict:
    """One finished point as its own small JSON file (atomic): the cost of a point does not depend on how
    many are done."""
    rec = {"index": list(idx), "params": params, **out}
    _io.write_json(rec, store / "points" / _point_name(idx))
    return _io.jsonable(rec)


def sweep(grid, task: str = "run", store=None, *, fixed: dict | None = None, executor: str = "local",
          scheduler: str | None = None, n_workers: int | None = None, progress: bool = True,
          flush_every: float = 10.0) -> xr.Dataset:
    """Run ``task`` at every point of ``grid`` (a dict of axes, or a TOML file path) into ``store``.

    Args:
        grid: ``{parameter: [values, ...]}`` (see :data:`PARAMETERS`), or the path of a TOML config
            (then ``task``, ``store`` and ``fixed`` come from it unless given here).
        task: ``run``, ``compare``, ``accuracy`` or ``regime`` (:data:`TASKS`).
        store: the store folder (created; an existing one must hold the same sweep, and is resumed).
        fixed: parameters held fixed for every point.
        executor: ``local`` or ``dask``.
        scheduler: a Dask scheduler address (default: a ``LocalCluster`` of ``n_workers`` processes).
        n_workers: ``local``: 1 (default) runs the points in this process one after another, more runs
            them on a pool of spawned processes; ``dask``: workers of the default ``LocalCluster``
            (default 2).
        progress: show a progress bar with done, failed and remaining counts.
        flush_every: seconds between rewrites of ``store/result.nc`` while the sweep runs (it is always
            written at the end; :func:`load` assembles a store at any moment from its point records).

    Returns:
        The assembled ``xarray.Dataset`` (also in ``store/result.nc``).

    Examples:
        >>> import linflow
        >>> ds = linflow.sweep({"depth": [1, 2, 3], "p": [2.0, 4.0]}, "run", "my-store",
        ...                    fixed={"t1": 5.0})  # doctest: +SKIP
        >>> ds.max_relative_deviation.sel(p=4.0)  # doctest: +SKIP
    """
    if isinstance(grid, (str, Path)):
        cfg = load_config(grid)
        grid, task, fixed = cfg["grid"], cfg["task"] if task == "run" else task, fixed or cfg["fixed"]
        store = store or cfg["store"]
    if store is None:
        raise ValueError("store must be given (a folder for the results)")
    grid, fixed = validate(grid, fixed, task)
    if executor not in ("local", "dask"):
        raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}")
    if n_workers is None:
        n_workers = 1 if executor == "local" else 2
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    total = math.prod(len(v) for v in grid.values())
    from tqdm.auto import tqdm

    # the bar is up before the first point starts (the first one also compiles: it is the slowest)
    bar = tqdm(total=total, desc=f"sweep {task}", unit="point", disable=not progress or None, mininterval=0.5)
    bar.set_postfix_str("starting", refresh=True)
    try:
        return _sweep(grid, task, Path(store), fixed, executor, scheduler, n_workers, bar, float(flush_every))
    finally:
        bar.close()


def _sweep(grid, task, store: Path, fixed, executor, scheduler, n_workers, bar, flush_every: float) -> xr.Dataset:
    spec = {"task": task, "grid": grid, "axes": list(grid), "fixed": fixed}  # JSON sorts keys: keep the order
    if (store / "sweep.json").exists():
        old = json.loads((store / "sweep.json").read_text())
        if old != json.loads(json.dumps(spec)):
            raise ValueError(f"{store} holds a different sweep ({old}); use another store or delete it")
    (store / "points").mkdir(parents=True, exist_ok=True)
    _io.write_json(spec, store / "sweep.json")
    records = _read_records(store)  # the only read of the store: afterwards, points are only appended
    todo = [(idx, {**fixed, **params}) for idx, params in _points(grid) if idx not in records]
    bar.update(bar.total - len(todo))
    bar.set_postfix(failed=0, remaining=len(todo))
    failed = [0]
    flushed = [time.monotonic()]

    def record(idx, params, out):
        rec = _write_point(store, idx, params, out)
        records[idx] = rec
        failed[0] += out["status"] == "failed"
        bar.update(1)
        bar.set_postfix(failed=failed[0], remaining=bar.total - bar.n, refresh=False)
        if time.monotonic() - flushed[0] >= flush_every:  # result.nc follows the sweep, at a bounded cost
            _io.write_netcdf(_assemble(records, grid, fixed, task), store / "result.nc")
            flushed[0] = time.monotonic()

    batches = _batches(todo, task)
    if executor == "local" and n_workers <= 1:
        for batch in batches:
            for (idx, params), out in zip(batch, run_points(task, [params for _, params in batch])):
                record(idx, params, out)
    elif executor == "local":
        _run_processes(batches, task, record, n_workers)
    else:
        _run_dask(batches, task, record, scheduler, n_workers)
    ds = _assemble(records, grid, fixed, task)
    _io.write_netcdf(ds, store / "result.nc")
    return ds


def _failed(reason: str) -> dict:
    """The record of a point that failed (kept in the store with its reason)."""
    return {"status": "failed", "reason": reason, "results": {}, "nonfinite": []}


def _gather(futures: dict, as_completed, record) -> None:
    """Record each batch's points as its future finishes (concurrent.futures or Dask); a dead worker fails its
    points."""
    for fut in as_completed(futures):
        batch = futures[fut]
        try:
            outs = fut.result()
        except Exception as exc:  # a worker that died: its points are failed, the sweep goes on
            outs = [_failed(f"worker error: {exc}")] * len(batch)
        for (idx, params), out in zip(batch, outs):
            record(idx, params, out)


def _run_processes(batches, task, record, n_workers) -> None:
    """Batches of points on a pool of ``n_workers`` fresh (spawned) processes; results recorded as they finish."""
    import concurrent.futures as cf
    import multiprocessing

    with cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_points, task, [params for _, params in batch]): batch for batch in batches}
        _gather(futures, cf.as_completed, record)


def _run_dask(batches, task, record, scheduler, n_workers) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = {client.submit(run_points, task, [params for _, params in batch], pure=False): batch
                   for batch in batches}
        _gather(futures, as_completed, record)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def phase_diagram(ds: xr.Dataset):
    """Breakdown eta and predicted stability threshold against depth, one line per p (a ``compare`` sweep),
    or the regime of GD over (depth, eta / eta_crit) (a ``regime`` sweep: see :func:`regime_diagram`)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if "regime" in ds:
        return regime_diagram(ds)
    if "breakdown_eta" not in ds or "depth" not in ds.dims:
        raise ValueError("phase_diagram needs a 'compare' sweep with a 'depth' axis")
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ps = ds.p.values if "p" in ds.dims else [None]
    for p in ps:
        row = ds.sel(p=p) if p is not None else ds
        others = [d for d in row.dims if d != "depth"]
        if others:
            row = row.isel({d: 0 for d in others})
        label = f"p = {p:g}" if p is not None else ""
        line = ax.semilogy(row.depth, row.breakdown_eta, "o-", label=f"breakdown eta (1%), {label}")
        ax.semilogy(row.depth, row.stability_eta_predicted, "s--", color=line[0].get_color(),
                    label=f"2 / max sharpness, {label}")
    ax.set(xlabel="depth N", ylabel="learning rate", title="Where the small-learning-rate picture fails")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return fig


def regime_diagram(ds: xr.Dataset):
    """GD's regime (:data:`linflow.comparison.REGIMES`) over depth and ``eta / eta_crit``, one coloured cell per
    point of a ``regime`` sweep with axes ``depth`` and ``eta_ratio`` (failed points blank)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from .comparison import REGIMES

    if not {"depth", "eta_ratio"} <= set(ds.dims):
        raise ValueError("regime_diagram needs a 'regime' sweep with axes 'depth' and 'eta_ratio'")
    row = ds.isel({d: 0 for d in ds.regime.dims if d not in ("depth", "eta_ratio")})
    codes = row.regime.transpose("eta_ratio", "depth").values
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8c8c8c"]
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ax.pcolormesh(np.arange(len(row.depth) + 1) - 0.5, np.arange(len(row.eta_ratio) + 1) - 0.5,
                  np.ma.masked_invalid(codes), cmap=ListedColormap(colors), vmin=-0.5, vmax=len(REGIMES) - 0.5)
    ax.set_xticks(range(len(row.depth)), [str(int(d)) for d in row.depth.values])
    ax.set_yticks(range(len(row.eta_ratio)), [f"{r:g}" for r in row.eta_ratio.values])
    ax.set(xlabel="depth N", ylabel="eta / eta_crit  (eta_crit = 2 / max sharpness along the flow)",
           title="Regime of gradient descent")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors]
    ax.legend(handles, REGIMES, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
