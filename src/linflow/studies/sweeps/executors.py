""":func:`sweep`: the grid's points run in-process, on a pool of processes or on Dask, recorded as they
finish."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import xarray as xr

from ...core import files as _io

from .config import load_config, validate
from .store import assemble, grid_points, read_records, write_point
from .tasks import batches_of, failed_record, run_points


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
    _io.check_output_folder(store, "store")
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
    records = read_records(store)  # the only read of the store: afterwards, points are only appended
    todo = [(idx, {**fixed, **params}) for idx, params in grid_points(grid) if idx not in records]
    bar.update(bar.total - len(todo))
    bar.set_postfix(failed=0, remaining=len(todo))
    failed = [0]
    flushed = [time.monotonic()]

    def record(idx, params, out):
        rec = write_point(store, idx, params, out)
        records[idx] = rec
        failed[0] += out["status"] == "failed"
        bar.update(1)
        bar.set_postfix(failed=failed[0], remaining=bar.total - bar.n, refresh=False)
        if time.monotonic() - flushed[0] >= flush_every:  # result.nc follows the sweep, at a bounded cost
            _io.write_netcdf(assemble(records, grid, fixed, task), store / "result.nc")
            flushed[0] = time.monotonic()

    batches = batches_of(todo, task)
    if executor == "local" and n_workers <= 1:
        for batch in batches:
            for (idx, params), out in zip(batch, run_points(task, [params for _, params in batch])):
                record(idx, params, out)
    elif executor == "local":
        _run_processes(batches, task, record, n_workers)
    else:
        _run_dask(batches, task, record, scheduler, n_workers)
    ds = assemble(records, grid, fixed, task)
    _io.write_netcdf(ds, store / "result.nc")
    return ds


def _gather(futures: dict, as_completed, record) -> None:
    """Record each batch's points as its future finishes (concurrent.futures or Dask); a dead worker fails its
    points."""
    for fut in as_completed(futures):
        batch = futures[fut]
        try:
            outs = fut.result()
        except Exception as exc:  # a worker that died: its points are failed, the sweep goes on
            outs = [failed_record(f"worker error: {exc}")] * len(batch)
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
