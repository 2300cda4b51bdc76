"""The derived numbers of a :func:`linflow.compare` Dataset: fitted orders, breakdown eta, stability thresholds;
its JSON document and its printed report (words, never nan, where nothing was measured)."""

from __future__ import annotations


import numpy as np
import xarray as xr

from ...core.measures import crossing, fit_order
from ...core.text import cell

from .regimes import REGIME_RULE


ASYMPTOTIC = 0.1  # orders are fitted where the relative deviation is below this


def flatten_summary(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_summary(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fit_mask(ds: xr.Dataset, errors) -> np.ndarray:
    """The etas an order is fitted on: GD stable (outcome ok), relative deviation of W_e below
    :data:`ASYMPTOTIC`, and ``errors`` more than 1000 times the solver tolerance (above its floor)."""
    floor = 1e3 * max(float(ds.attrs["rtol"]), float(ds.attrs["atol"]))
    errors = np.asarray(errors, dtype=float)
    ok = np.asarray(ds.gd_outcome.values).astype(str) == "ok"
    return ok & (ds.max_deviation_rel.values < ASYMPTOTIC) & np.isfinite(errors) & (errors > floor)


def summary(ds: xr.Dataset) -> dict:
    """Derived numbers of a :func:`compare` Dataset: fitted orders, breakdown eta, stability thresholds."""
    etas = ds.eta.values
    rel = ds.max_deviation_rel.values
    ok = ds.gd_outcome.values == "ok"
    out = {}
    fits = {"flow": fit_order(etas, ds.max_layer_deviation.values, fit_mask(ds, ds.max_layer_deviation.values))}
    for order in (1, 2):
        name = f"max_mod{order}_deviation"
        if name in ds:
            err = ds[name].values
            fits[f"modified{order}"] = fit_order(etas, err, fit_mask(ds, err))
    for name, fit in fits.items():
        status = "ok" if fit.fitted else (f"not fitted: {fit.n} eta(s) with a stable run, relative deviation below "
                                          f"{ASYMPTOTIC:g} and error above 1000 x the solver tolerance (need 2)")
        out[f"order_{name}"] = {"order": fit.order, "eta_low": fit.eta_low, "eta_high": fit.eta_high, "points": fit.n,
                                "ci95": list(fit.ci95) if fit.ci95 else [float("nan")] * 2, "status": status}
    # an unstable run counts as above the level; the interpolated eta stays on the grid where the next run failed
    cut = crossing(etas, np.where(ok, rel, np.inf), float(ds.attrs["tol"]))
    grid_eta = cut.below
    interp_eta = cut.below if (cut.diverged or np.isinf(cut.at)) else cut.at
    out["breakdown_eta"] = grid_eta
    out["breakdown_eta_interpolated"] = interp_eta
    tol = float(ds.attrs["tol"])
    out["breakdown_status"] = (
        f"none: every eta of the grid is already above {tol:g} (or unstable), the smallest included"
        if not np.isfinite(grid_eta) else
        f"above the grid: every eta up to the largest, {grid_eta:.4g}, stays within {tol:g}; the breakdown eta is "
        "at least that" if grid_eta == etas[-1] else "ok")
    if "sharpness" in ds:
        out["sharpness_max"] = float(np.max(ds.sharpness.values))
        out["stability_eta_predicted"] = 2.0 / out["sharpness_max"]
    failed = ~ok
    out["stability_eta_observed"] = float(etas[failed].min()) if failed.any() else float("nan")
    out["stability_eta_observed_status"] = ("ok" if failed.any() else
                                            "none: GD neither diverged nor oscillated at any eta of the grid")
    catapults = etas[ds.regime.values == "catapult"] if "regime" in ds else etas[:0]
    if catapults.size and not failed.any():
        out["stability_eta_observed_status"] += ("; GD catapulted (its loss rose above L(0), then it converged) at eta "
                                                 + ", ".join(f"{e:.4g}" for e in catapults))
    below = ok & (etas < (out["stability_eta_observed"] if failed.any() else np.inf))
    out["largest_stable_eta_observed"] = float(etas[below].max()) if below.any() else float("nan")
    out["largest_stable_eta_observed_status"] = ("ok" if below.any() else
                                                 "none: GD diverged or oscillated already at the smallest eta")
    if "regime" in ds:
        out["regimes"] = "; ".join(f"eta {e:g}: {r}" for e, r in zip(etas, ds.regime.values))
        out["regime_rule"] = REGIME_RULE
    return out


def report(ds: xr.Dataset) -> dict:
    """The JSON document of a :func:`compare` Dataset: its settings, :func:`summary` and the outcome per eta."""
    per_eta = {"outcomes": [str(o) for o in ds.gd_outcome.values],
               # null for a diverged run (its maximum over the horizon is unbounded): its outcome says so
               "max_relative_deviation": [None if o == "diverged" else float(x)
                                          for o, x in zip(ds.gd_outcome.values, ds.max_deviation_rel.values)]}
    if "regime" in ds:
        per_eta["regime_per_eta"] = [str(r) for r in ds.regime.values]
    if "central_status" in ds:
        per_eta["central_flow_status"] = [str(c) for c in ds.central_status.values]
    settings = {k: ds.attrs[k] for k in ("problem", "init") if k in ds.attrs}
    return {**settings, "depth": int(ds.attrs["depth"]), "t1": float(ds.attrs["t1"]),
            "etas": [float(e) for e in ds.eta.values], **summary(ds), **per_eta}


def summary_text(ds: xr.Dataset) -> str:
    """The summary of a :func:`compare` Dataset as a short printed report."""
    s = summary(ds)
    lines = [f"etas: {', '.join(f'{e:.4g}' for e in ds.eta.values)}  (horizon t1 = {ds.attrs['t1']:g})", ""]
    expected = {"flow": 1, "modified1": 2, "modified2": 3}
    for name, label in (("flow", "GD vs gradient flow"), ("modified1", "GD vs 1st-order modified flow"),
                        ("modified2", "GD vs 2nd-order modified flow")):
        fit = s.get(f"order_{name}")
        if fit is None:
            continue
        lines.append(f"order of {label:<32} " + (
            f"{fit['order']:6.3f}  (theory {expected[name]}; fit on {fit['points']} etas in [{fit['eta_low']:.3g}, "
            f"{fit['eta_high']:.3g}])" if fit["status"] == "ok" else f"{fit['status']}"))
    breakdown = (f"{s['breakdown_eta']:.4g} (interpolated {s['breakdown_eta_interpolated']:.4g})"
                 if s["breakdown_status"] == "ok" else s["breakdown_status"])
    observed = (f"{s['stability_eta_observed']:.4g}" if s["stability_eta_observed_status"] == "ok"
                else s["stability_eta_observed_status"])
    lines += [
        "",
        f"breakdown eta (max relative deviation of W_e <= {ds.attrs['tol']:g}): {breakdown}",
        (f"stability threshold predicted from the flow, 2 / max_t S(t): {s['stability_eta_predicted']:.4g} "
         f"(max sharpness {s['sharpness_max']:.4g})" if "sharpness" in ds else
         "stability threshold predicted from the flow: not measured (curvature=False)"),
        f"stability threshold observed (smallest eta where GD diverged or oscillated): {observed}",
        "",
        f"{'eta':>10} {'outcome':>12} {'max rel dev':>12} {'eta S/2':>9} {'max |D| GD':>11} {'|D| identity err':>17}"
        + ("   regime (end: eta S_GD/2, rel. distance to the central flow)" if "regime" in ds else ""),
    ]
    for i, eta in enumerate(ds.eta.values):
        row = ds.isel(eta=i)
        diverged = str(row.gd_outcome.values) == "diverged"
        rel = np.nan if diverged else float(row.max_deviation_rel)
        line = (f"{eta:>10.4g} {str(row.gd_outcome.values):>12} "
                f"{cell(rel, '12.3e', 'diverged' if diverged else 'not measured')} "
                f"{cell(float(row.eta_sharpness_half.max()) if 'sharpness' in ds else np.nan, '9.3f', 'not measured')} "
                f"{cell(_max_reached(row.gd_imbalance.values), '11.3e', 'no save')} "
                f"{cell(_max_reached(row.gd_imbalance_identity_error.values), '17.2e', 'no save')}")
        if "regime" in ds:
            s_end, dev = float(row.gd_midpoint_sharpness[-1]) * eta / 2, float(row.central_deviation_rel[-1])
            line += f"   {str(row.regime.values)}"
            if np.isfinite(s_end):  # measured past the predicted threshold only
                line += f" ({s_end:.3f}, " + (f"{dev:.2e})" if np.isfinite(dev) else "no central flow)")
        lines.append(line)
    lines.append("(max rel dev: max over t of ||W_e^GD - W_e^flow||_F / max_t ||W_e^flow||_F; a diverged run has none; "
                 "max |D| GD: over the saves GD reached)")
    if "regime" in ds:
        lines += ["", f"regime rule: {REGIME_RULE}"]
    return "\n".join(lines)


def _max_reached(values: np.ndarray) -> float:
    """The maximum over the saves a run reached (the rows after a stop are NaN): nan only if it reached none."""
    values = np.asarray(values, float)
    return float(np.max(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")
