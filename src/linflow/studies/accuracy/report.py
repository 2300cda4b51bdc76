"""The numbers of a work-precision Dataset: its JSON document and its printed table (words where a solve failed)."""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from ...core.text import cell




def summary(ds: xr.Dataset) -> dict:
    """The JSON document of a :func:`work_precision` Dataset: the flow, horizon and reference, and per solver and
    tolerance exponent ``k`` the RMS and final errors, ``nfev``, wall time and status (NaN stays NaN here; the
    writers put ``null``)."""
    def cell(name, i):
        row = ds.sel(solver=name)
        return {"rms_error": float(row.rms_error.values[i]), "final_error": float(row.final_error.values[i]),
                "nfev": float(row.nfev.values[i]), "wall_time_s": float(row.wall_time.values[i]),
                "status": str(row.status.values[i])}

    return {**({"case": ds.attrs["case"]} if "case" in ds.attrs else {}), "flow": ds.attrs["flow"],
            "t1": float(ds.attrs["t1"]), "reference": ds.attrs["reference"],
            "reference_error_estimate": float(ds.attrs["reference_error_estimate"]),
            "table": {str(name): {str(int(k)): cell(name, i) for i, k in enumerate(ds.tolerance.values)}
                      for name in ds.solver.values}}


def table(ds: xr.Dataset, levels: Sequence[int] | None = None) -> str:
    """A text table: RMS error and nfev per solver at a few tolerance levels."""
    levels = list(ds.tolerance.values) if levels is None else list(levels)
    head = f"{'solver':<14}" + "".join(f"{f'k={k}: rms err':>17}{'nfev':>9}" for k in levels)
    lines = [f"reference: {ds.attrs['reference']} (error estimate {ds.attrs['reference_error_estimate']:.1e})", head]
    for name in ds.solver.values:
        row = ds.sel(solver=name)
        # select with a dict: ``tolerance`` is also a keyword argument of ``.sel``
        at = [{"tolerance": k} for k in levels]  # a failed solve shows its status (max_steps, failed, ...) in words
        cells = "".join(cell(float(row.rms_error.sel(k)), "17.2e", str(row.status.sel(k).values).split(":")[0])
                        + cell(float(row.nfev.sel(k)), "9.0f", "-") for k in at)
        lines.append(f"{name:<14}{cells}")
    lines.append("(k: rtol = 10^-k, atol = 10^-(k+3); euler and heun use dt = t1 / (50 * 2^i) at the i-th level)")
    return "\n".join(lines)
