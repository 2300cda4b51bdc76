"""The grades of a saddle-to-saddle Dataset: escape times against the closed form, the scaling exponents fitted over
the small starts, the plateaus, every run's status in words."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["exponents", "summary", "gd_summary", "summary_text", "EXPONENT_RULE", "ACCURACY_TOLERANCE",
           "EXPONENT_TOLERANCE", "FIT_ALPHA_MAX"]

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


def gd_summary(g: xr.Dataset) -> dict:
    """GD's escapes in words and numbers (:func:`linflow.studies.saddles.gd_escapes`' Dataset): per eta its status,
    each mode's escape shift relative to the flow's, the plateaus it merges, its imbalance and steps; per mode the
    fitted order of the shift (None with the reason where fewer than two runs are ``ok``); per solver its steps
    and GD's steps over them."""
    runs = {}
    for i, eta in enumerate(g.eta.values):
        ok = str(g.status.values[i]) == "ok"
        runs[f"{eta:g}"] = {
            "status": str(g.status.values[i]),
            "relative_escape_shift": [float(x) if np.isfinite(x) else "not reached" for x in
                                      g.relative_escape_shift.values[i]] if ok else "not measured: the run is not ok",
            "merged_plateaus": [int(p) for p, m in zip(g.plateau.values, g.merged.values[i]) if m and ok],
            "imbalance": float(g.imbalance.values[i]), "gd_steps": int(g.gd_steps.values[i])}
    orders = [{"mode": int(m), "order": float(o)} if np.isfinite(o) else
              {"mode": int(m), "order": None, "reason": "fewer than two runs ended ok"}
              for m, o in zip(g["mode"].values, g.shift_order.values)]
    cost = {str(s): ({"steps": int(n), "gd_steps_over_solver_steps": {f"{e:g}": float(r) for e, r in
                                                                       zip(g.eta.values, g.cost_ratio.sel(solver=s).values)}}
                     if n > 0 else {"steps": "the solver did not reach the last escape"})
            for s, n in zip(g.solver.values, g.solver_steps.values)}
    return {"rules": {"escape": g.attrs["escape_rule"], "merge": g.attrs["merge_rule"], "order": g.attrs["order_rule"],
                      "cost": g.attrs["cost"]},
            "problem": g.attrs["problem"], "depth": int(g.attrs["depth"]), "alpha": float(g.attrs["alpha"]),
            "start": g.attrs["start"], "flow_escape_times": g.flow_escape_time.values.tolist(), "runs": runs,
            "shift_orders": orders, "cost": cost}


def summary_text(s: dict) -> str:
    """:func:`summary` (with :func:`gd_summary` under ``"gd"`` where present) as lines a reader takes in at a glance."""
    lines = [f"problem: {s['problem']}", "escape times against the closed form (aligned starts):"]
    for flow, acc in s["accuracy"].items():
        worst = acc["max_relative_error"]
        lines.append(f"  {flow:<11} max relative error {worst:.2e}" if isinstance(worst, float) else f"  {flow:<11} {worst}")
        lines[-1] += "  passes" if acc["passes"] else "  FAILS"
    lines.append(f"  rule: {s['rules']['accuracy']}")
    lines.append("scaling exponents of the escape time with 1/alpha (theory: depth 2 log, depth N alpha^-(1-2/N)):")
    for r in s["exponents"]:
        got = f"{r['exponent']:.4f}" if r["exponent"] is not None else r["reason"]
        lines.append(f"  {r['flow']:<11} depth {r['depth']} mode {r['mode']}: {got} (theory {r['theory']:.4f})"
                     + ("" if r["exponent"] is None else "  passes" if r["passes"] else "  FAILS"))
    dev = {N: max(v) for N, v in s["plateaus"]["relative_deviation"].items()}
    lines.append(f"plateaus at alpha {s['plateaus']['alpha']:g}: loss against sum_(i>j) s_i^2 / 2, largest relative "
                 "deviation per depth: " + ", ".join(f"{N}: {d:.1e}" for N, d in dev.items()))
    if "gd" in s:
        g = s["gd"]
        lines.append(f"gradient descent, depth {g['depth']}, alpha {g['alpha']:g} ({g['start']} start): escape shift "
                     "relative to the flow's, per mode")
        for eta, run in g["runs"].items():
            shift = run["relative_escape_shift"]
            shift = ", ".join(f"{x:+.3g}" if isinstance(x, float) else x for x in shift) if isinstance(shift, list) \
                else shift
            merged = f"; merges plateau(s) {run['merged_plateaus']}" if run["merged_plateaus"] else ""
            lines.append(f"  eta {eta}: {run['status']}; {shift}{merged}; {run['gd_steps']} steps")
        lines.append("  order of the shift in eta per mode: " + ", ".join(
            f"{o['mode']}: {o['order']:.2f}" if o["order"] is not None else f"{o['mode']}: {o['reason']}"
            for o in g["shift_orders"]))
        for solver, c in g["cost"].items():
            lines.append(f"  {solver}: {c['steps']} steps" + (
                "; GD's steps over them: " + ", ".join(f"{r:.3g}x (eta {e})" for e, r in
                                                       c["gd_steps_over_solver_steps"].items())
                if isinstance(c["steps"], int) else ""))
    if s["not_ok"]:
        lines.append(f"runs not ok: {len(s['not_ok'])} (listed in the summary JSON)")
    return "\n".join(lines)
