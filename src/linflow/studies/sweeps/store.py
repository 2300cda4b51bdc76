"""The store of a sweep: one JSON record per finished point (atomic), read back and assembled into a Dataset."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import xarray as xr

from ...core import files as _io




# ----------------------------------------------------------------------------- the sweep
def grid_points(grid: dict):
    axes = list(grid)
    for idx in itertools.product(*(range(len(grid[a])) for a in axes)):
        yield idx, {a: grid[a][i] for a, i in zip(axes, idx)}


def point_name(idx) -> str:
    return "p" + "_".join(str(i) for i in idx) + ".json"


def read_records(store: Path) -> dict:
    """The finished points of a store, by grid index (read once, when a sweep starts or is assembled)."""
    records = {}
    for f in sorted((store / "points").glob("p*.json")):
        rec = json.loads(f.read_text())
        records[tuple(rec["index"])] = rec
    return records


def assemble(records: dict, grid: dict, fixed: dict, task: str) -> xr.Dataset:
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
    return assemble(read_records(store), grid, spec["fixed"], spec["task"])


def write_point(store: Path, idx, params, out) -> dict:
    """One finished point as its own small JSON file (atomic): the cost of a point does not depend on how
    many are done."""
    rec = {"index": list(idx), "params": params, **out}
    _io.write_json(rec, store / "points" / point_name(idx))
    return _io.jsonable(rec)
