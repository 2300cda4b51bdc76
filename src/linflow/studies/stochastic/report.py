"""The grades of the weak-error and linear-scaling Datasets: fitted weak orders with their 95% intervals, the linear
scaling rule measured against its noise-to-signal prediction, every number in words where a number cannot be."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ...core.measures import fit_order
from .weak import THEORY_ORDERS

__all__ = ["ORDER_TOLERANCE", "RESOLVED_SE", "ASYMPTOTIC_SPREAD", "ORDER_RULE", "fitted_order", "orders", "summary",
           "summary_text"]

ORDER_TOLERANCE = 0.2
RESOLVED_SE = 2.0
ASYMPTOTIC_SPREAD = 0.5
ORDER_RULE = (f"slope of ln|weak error| against ln eta at the last save time, weighted least squares with weights "
              f"(|error| / se)^2, over the etas whose error exceeds {RESOLVED_SE:g} standard errors (at least 3); 95% "
              f"interval from the Monte Carlo error alone (1.96 x the slope's standard error); local orders: the "
              f"slopes between neighbouring resolved etas. agrees: within {ORDER_TOLERANCE:g} of theory; not "
              f"asymptotic: otherwise, when the local orders spread by more than {ASYMPTOTIC_SPREAD:g} (the etas are "
              f"not yet in the range where one power of eta dominates); differs: the whole interval farther than "
              f"{ORDER_TOLERANCE:g} from theory; inconclusive otherwise; not fitted: fewer than 3 resolved etas or a "
              f"diverged ensemble")


def fitted_order(etas, errors, ses) -> dict:
    """The weighted log-log slope of ``|errors|`` against ``etas`` over the resolved points (:data:`ORDER_RULE`):
    ``{"order", "ci95", "resolved_etas"}``, or ``{"order": None, "reason": ...}``."""
    etas, errors, ses = (np.asarray(a, dtype=float) for a in (etas, errors, ses))
    if not np.all(np.isfinite(errors)):
        return {"order": None, "ci95": None, "resolved_etas": [],
                "reason": "not fitted: an ensemble at some eta left the finite numbers (see not_ok)"}
    resolved = np.abs(errors) > RESOLVED_SE * ses
    if resolved.sum() < 3:
        return {"order": None, "ci95": None, "resolved_etas": etas[resolved].tolist(),
                "reason": f"not fitted: {int(resolved.sum())} of {len(etas)} etas have an error above "
                          f"{RESOLVED_SE:g} standard errors (3 needed)"}
    w = np.where(ses > 0, (np.abs(errors) / np.maximum(ses, 1e-300)) ** 2, 1e12)
    fit = fit_order(etas, errors, resolved, weights=w, min_points=3)
    return {"order": fit.order, "ci95": list(fit.ci95), "resolved_etas": etas[resolved].tolist(),
            "local_orders": list(fit.local_orders), "reason": ""}


def _models(ds: xr.Dataset) -> list[str]:
    """The models compared with SGD (every model but SGD itself)."""
    return [str(m) for m in ds.model.values if m != "sgd"]


def order_verdict(fit: dict, theory: float) -> str:
    if fit["order"] is None:
        return "not fitted"
    if abs(fit["order"] - theory) <= ORDER_TOLERANCE:
        return "agrees"
    local = fit.get("local_orders") or []
    if len(local) >= 2 and max(local) - min(local) > ASYMPTOTIC_SPREAD:
        return "not asymptotic"
    lo, hi = fit["ci95"]
    return "differs" if lo > theory + ORDER_TOLERANCE or hi < theory - ORDER_TOLERANCE else "inconclusive"


def orders(ds: xr.Dataset) -> list[dict]:
    """Each model's fitted weak order per observable at the last save time, with theory and verdict."""
    rows = []
    last = ds.time.values[-1]
    for method in _models(ds):
        for obs in ds.observable.values:
            err = ds.weak_error.sel(model=method, observable=obs, time=last).values
            se = ds.weak_se.sel(model=method, observable=obs, time=last).values
            fit = fitted_order(ds.eta.values, err, se)
            theory = THEORY_ORDERS[str(method)]
            rows.append({"method": str(method), "observable": str(obs), "theory": theory, **fit,
                         "verdict": order_verdict(fit, theory)})
    return rows


def _number(x: float, se: float | None = None) -> str | float:
    if not np.isfinite(x):
        return "an ensemble left the finite numbers"
    return float(x)


def summary(weak: xr.Dataset, scaling: xr.Dataset | None = None) -> dict:
    """The numbers and grades of a weak-error study (and of a linear-scaling study, if given)."""
    last = weak.time.values[-1]
    out = {"rules": {"order": ORDER_RULE, "mean": weak.attrs["rule_mean"], "sme": weak.attrs["rule_sme"]},
           "problem": weak.attrs.get("problem", "(unlabelled)"), "batch": int(weak.attrs["batch"]),
           "paths": int(weak.attrs["paths"]),
           "sampling": weak.attrs["sampling"], "ell": int(weak.attrs["ell"]), "t1": float(weak.attrs["t1"]),
           "weak_errors": {}, "orders": orders(weak), "not_ok": []}
    for method in _models(weak):
        for obs in weak.observable.values:
            out["weak_errors"][f"{method}/{obs}"] = {
                f"{eta:g}": {"error": _number(float(weak.weak_error.sel(model=method, observable=obs, eta=eta,
                                                                        time=last))),
                             "se": _number(float(weak.weak_se.sel(model=method, observable=obs, eta=eta, time=last)))}
                for eta in weak.eta.values}
    for method in weak.model.values:
        for eta in weak.eta.values:
            n = int(weak.not_ok.sel(model=method, eta=eta))
            if n:
                out["not_ok"].append(f"{method} at eta = {eta:g}: {n} of {out['paths']} paths left the finite numbers")
    if scaling is not None:
        from .scaling import scaling_summary

        out["linear_scaling"] = scaling_summary(scaling)
    return out


def summary_text(summary: dict) -> str:
    """The summary as lines a reader can take in at a glance."""
    lines = [f"problem: {summary['problem']}", f"minibatches of {summary['batch']} ({summary['sampling']}), "
             f"{summary['paths']} paths per method, SVAG l = {summary['ell']}, horizon t = {summary['t1']:g}", "",
             "weak error at the last save time (model mean - SGD mean, +- 1 standard error):"]
    for key, per_eta in summary["weak_errors"].items():
        cells = []
        for eta, e in per_eta.items():
            cells.append(f"eta {eta}: {e['error']:+.2e} +- {e['se']:.1e}" if isinstance(e["error"], float)
                         else f"eta {eta}: {e['error']}")
        lines.append(f"  {key:>12}  " + "; ".join(cells))
    lines += ["", "fitted weak orders (" + ORDER_RULE.split(". agrees")[0] + "):"]
    for r in summary["orders"]:
        got = (f"{r['order']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]" if r["order"] is not None else r["reason"])
        lines.append(f"  {r['method']:>5} {r['observable']:>5}: {got}  (theory {r['theory']:g}): {r['verdict']}")
    if "linear_scaling" in summary:
        from .scaling import scaling_text

        lines += ["", *scaling_text(summary["linear_scaling"])]
    if summary["not_ok"]:
        lines += ["", "runs that did not end ok:", *(f"  {x}" for x in summary["not_ok"])]
    return "\n".join(lines)
