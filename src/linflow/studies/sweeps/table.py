"""A sweep's Dataset as a table in words: one row per grid point, its status, and its numbers, where a missing number
says why (the point failed, is pending, or the task measured nothing there) and a regime code is its name."""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from ..comparison import REGIMES

__all__ = ["table"]

#: columns whose values are codes, shown as their names
CODES = {"regime": REGIMES}


def _cell(name: str, value: float, status: str) -> str:
    if np.isfinite(value):
        if name in CODES and float(value).is_integer() and 0 <= value < len(CODES[name]):
            return CODES[name][int(value)]
        return f"{value:.4g}"
    return {"failed": "failed", "pending": "pending"}.get(status, "not measured")


def table(ds: xr.Dataset, width: int = 12) -> str:
    """The rows of ``ds`` (see :func:`linflow.sweeps.load`): the grid's axes, ``status`` and every result; below it,
    the reasons of the points that failed."""
    axes = list(ds.status.dims) if "status" in ds else list(ds.dims)
    results = [n for n in ds.data_vars if n not in ("status", "reason") and ds[n].dims == tuple(axes)]
    header = [*axes, "status", *results]
    rows, reasons = [], []
    for idx in itertools.product(*(range(ds.sizes[a]) for a in axes)):
        at = dict(zip(axes, idx))
        status = str(ds.status.values[idx]) if "status" in ds else "ok"
        point = [f"{ds[a].values[i]:g}" if np.issubdtype(ds[a].dtype, np.number) else str(ds[a].values[i])
                 for a, i in at.items()]
        rows.append([*point, status, *(_cell(n, float(ds[n].values[idx]), status) for n in results)])
        if status == "failed":
            reasons.append(", ".join(f"{a}={v}" for a, v in zip(axes, point)) + ": " + str(ds.reason.values[idx]))
    widths = [max(width, len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    if any(n in CODES for n in results):
        lines.append("regime: " + "; ".join(f"{name}" for name in REGIMES) + " (rule: linflow.comparison.REGIME_RULE)")
    if reasons:
        lines.append("failed points:")
        lines += [f"  {r}" for r in reasons]
    return "\n".join(lines)
