"""The grades of a saddle-to-saddle Dataset: escape times against the closed form, the scaling exponents fitted over
the small starts, the plateaus, every run's status in words."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["exponents", "summary", "EXPONENT_RULE", "ACCURACY_TOLERANCE", "EXPONENT_TOLERANCE", "FIT_ALPHA_MAX"]

FIT_ALPHA_MAX = 1e-4
ACCURACY_TOLERANCE = 1e-6
EXPONENT_TOLERANCE = 0.05
EXPONENT_RULE = (f"fitted over the aligned starts with alpha <= {FIT_ALPHA_MAX:g} (at least 3): depth 2, t = a ln(1/alpha) "
                 f"+ b, exponent = a * 2 s_i (theory 1: t ~ ln(1/alpha) / (2 s_i)); depth N >= 3, ln t = c + e ln(1/alpha), "
                 f"exponent = e (theory 1 - 2/N: t ~ alpha^-(1-2/N) / ((N-2) s_i)); within {EXPONENT_TOLERANCE:g} of "
                 f"theory passes")


def _fit(alphas: np.ndarray, times: np.ndarray, depth: int, s: float) -> float:
    x = np.log(1.0 / alphas)
    if depth == 2:
        return float(np.polyfit(x, times, 1)[0] * 2 * s)
    return float(np.polyfit(x, np.log(times), 1)[0])


def exponents(ds: xr.Dataset) -> list[dict]:
    """The fitted scaling exponent of each mode's escape time per flow and depth (:data:`EXPONENT_RULE`); a fit with a
    run that did not escape is not made (``exponent`` None, ``reason`` in words)."""
    rows = []
    small = ds.alpha.values[ds.alpha.values <= FIT_ALPHA_MAX]
    for flow in ds.flow.values:
        for N in ds.depth.values:
            for mode in ds.mode.values:
                t = ds.escape_time.sel(start="aligned", flow=flow, depth=N, mode=mode, alpha=small).values
                s = float(ds.singular_value.sel(mode=mode))
                theory = 1.0 if N == 2 else 1.0 - 2.0 / N
                row = {"flow": str(flow), "depth": int(N), "mode": int(mode), "theory": theory, "exponent": None,
                       "passes": False, "reason": ""}
                if len(small) < 3:
                    row["reason"] = f"not fitted: {len(small)} starts with alpha <= {FIT_ALPHA_MAX:g} (3 needed)"
                elif not np.all(np.isfinite(t)):
                    row["reason"] = "not fitted: a run did not reach this escape (see status)"
                else:
                    row["exponent"] = _fit(small, t, int(N), s)
                    row["passes"] = bool(abs(row["exponent"] - theory) <= EXPONENT_TOLERANCE)
                rows.append(row)
    return rows


def summary(ds: xr.Dataset) -> dict:
    """The numbers and the grades: the largest relative escape-time error per flow (aligned starts, against the closed
    form; a run that did not escape counts as failing, never skipped), the exponents, the plateau losses at the
    smallest start, the random starts' escapes relative to the aligned ones, and every run that did not end ``ok``."""
    out = {"rules": {"escape": ds.attrs["escape_rule"], "plateau": ds.attrs["plateau_rule"],
                     "exponent": EXPONENT_RULE, "effective_rank": ds.attrs["effective_rank_rule"],
                     "accuracy": f"max relative escape-time error over every depth, alpha and mode <= "
                                 f"{ACCURACY_TOLERANCE:g} passes; a run that did not escape fails"},
           "problem": ds.attrs["problem"], "accuracy": {}, "not_ok": []}
    for flow in ds.flow.values:
        err = ds.escape_relative_error.sel(start="aligned", flow=flow).values
        worst = float(np.max(np.where(np.isfinite(err), err, np.inf)))
        out["accuracy"][str(flow)] = {"max_relative_error": worst if np.isfinite(worst) else "a run did not escape",
                                      "passes": bool(worst <= ACCURACY_TOLERANCE)}
    out["exponents"] = exponents(ds)
    out["exponents_pass"] = all(r["passes"] for r in out["exponents"])
    a_min = ds.alpha.values.min()
    levels = ds.plateau_loss_theory.values
    measured = ds.plateau_loss.sel(alpha=a_min).values
    out["plateaus"] = {"alpha": float(a_min), "theory": levels.tolist(),
                       "relative_deviation": {int(N): (np.abs(measured[i] / levels - 1)).tolist()
                                              for i, N in enumerate(ds.depth.values)}}
    if "random" in ds.start.values:  # per depth: alpha -> each mode's escape relative to the aligned start's
        ratio = (ds.escape_time.sel(start="random") / ds.escape_time.sel(start="aligned")).sel(flow=ds.flow.values[0])
        out["random_over_aligned"] = {
            int(N): {f"{a:g}": [round(float(x), 6) if np.isfinite(x) else "not reached within the horizon"
                                for x in ratio.sel(depth=N, alpha=a).values] for a in ds.alpha.values}
            for N in ds.depth.values}
    for idx in np.ndindex(ds.status.shape):
        if ds.status.values[idx] != "ok":
            where = {d: str(ds[d].values[i]) for d, i in zip(ds.status.dims, idx)}
            out["not_ok"].append({**where, "status": str(ds.status.values[idx])})
    return out
