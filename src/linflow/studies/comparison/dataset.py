"""The Dataset of :func:`linflow.compare`: the deviations of every run from its flow, per-eta outcomes and
statuses, the first-order bound's integral, the settings."""

from __future__ import annotations


import numpy as np

from ...core.trajectory import descent_message

from .regimes import REGIME_RULE

OSCILLATION_COS = -0.5  # consecutive GD updates this anti-aligned ...
OSCILLATION_GROWTH = 0.999  # ... and not shrinking: a period-2 orbit (or its onset), not convergence


def bound_integral(ts: np.ndarray, lam_min: np.ndarray, hg_norm: np.ndarray) -> np.ndarray:
    """``(1/2) int_0^t exp(int_{t'}^t -lambda_min) ||H g||(t') dt'`` on the grid (trapezoid, stable recursion)."""
    out = np.zeros_like(ts)
    acc = 0.0
    for n in range(1, len(ts)):
        dt = ts[n] - ts[n - 1]
        growth = float(np.exp(min(-0.5 * dt * (lam_min[n] + lam_min[n - 1]), 700.0)))  # capped: inf-free
        acc = growth * acc + 0.5 * dt * (growth * hg_norm[n - 1] + hg_norm[n])
        out[n] = 0.5 * acc
    return out


def tree_norm(layers) -> np.ndarray:
    """``sqrt(sum_j ||W_j||_F^2)`` over the trailing two axes of each layer."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(sum(np.sum(np.asarray(w) ** 2, axis=(-2, -1)) for w in layers))


def run_data(lf, ef, runs: dict, modified: dict, per_save, etas) -> dict:
    """The deviations of every run from its flow (per eta and save) and the per-eta outcomes and statuses."""
    data = _deviations(lf, ef, runs, modified, per_save)
    data.update(_per_eta(runs, etas, data, modified))
    return data


def _mask_after(bad, values, saved_steps) -> np.ndarray:
    """NaN on saved rows at or after a divergence step."""
    out = np.array(values, dtype=float, copy=True)
    for i, b in enumerate(bad):
        if b >= 0:
            out[i, saved_steps[i] >= b] = np.nan
    return out


def frobenius(a) -> np.ndarray:
    """Frobenius norms over the last two axes (inf, not a warning, for a run about to overflow)."""
    with np.errstate(over="ignore"):
        return np.sqrt(np.sum(np.asarray(a) ** 2, axis=(-2, -1)))


def _deviations(lf, ef, runs, modified, per_save) -> dict:
    """Losses, distances from the flows (absolute and relative) and imbalances on the ``(eta, t)`` grid."""
    gd, gd_bad, eq_bad = runs["gd"], runs["gd_bad"], runs["eq_bad"]
    saved_steps = per_save[:, None] * np.arange(len(lf.ts))[None]
    gd_mask = lambda v: _mask_after(gd_bad, v, saved_steps)  # noqa: E731
    eq_mask = lambda v: _mask_after(eq_bad, v, saved_steps)  # noqa: E731
    with np.errstate(invalid="ignore", over="ignore"):
        flow_norm = float(np.max(tree_norm(lf.layers)))
        flow_we = np.asarray(lf.end_to_end)
        e2e_we = np.asarray(ef.end_to_end) if ef.ok else np.full_like(flow_we, np.nan)
        we_norm, e2e_norm = float(np.max(frobenius(flow_we))), float(np.nanmax(frobenius(e2e_we)))
        layer_dev = gd_mask(tree_norm(tuple(g - np.asarray(f)[None] for g, f in zip(runs["gd_layers"], lf.layers))))
        we_dev, eq_dev = gd_mask(frobenius(gd["end_to_end"] - flow_we[None])), eq_mask(frobenius(runs["eq_w"] - e2e_we[None]))
        data = {
            "flow_loss": (("t",), np.asarray(lf.loss)),
            "e2e_flow_loss": (("t",), ef.masked(ef.loss)),
            "flow_end_to_end": (("t", "n_out", "n_in"), flow_we),
            "e2e_flow_end_to_end": (("t", "n_out", "n_in"), e2e_we),
            "flow_imbalance": (("t",), np.asarray(lf.imbalance)),
            "theorem1_gap": (("t",), frobenius(flow_we - e2e_we)),
            "gd_end_to_end": (("eta", "t", "n_out", "n_in"), gd_mask(gd["end_to_end"])),
            "gd_loss": (("eta", "t"), gd_mask(gd["loss"])),
            "eq10_loss": (("eta", "t"), eq_mask(runs["eq_loss"])),
            "gd_layer_deviation": (("eta", "t"), layer_dev),
            "gd_layer_deviation_rel": (("eta", "t"), layer_dev / flow_norm),
            "gd_deviation": (("eta", "t"), we_dev),
            "gd_deviation_rel": (("eta", "t"), we_dev / we_norm),
            "eq10_deviation": (("eta", "t"), eq_dev),
            "eq10_deviation_rel": (("eta", "t"), eq_dev / e2e_norm),
            "gd_loss_gap": (("eta", "t"), gd_mask(gd["loss"]) - np.asarray(lf.loss)[None]),
            "eq10_loss_gap": (("eta", "t"), eq_mask(runs["eq_loss"]) - ef.masked(ef.loss)[None]),
            "gd_imbalance": (("eta", "t"), gd_mask(gd["imbalance"])),
        }
        if "imbalance_predicted" in gd:  # GD's diagnostics (not in the plain configuration)
            data["gd_imbalance_predicted"] = (("eta", "t"), gd_mask(gd["imbalance_predicted"]))
            data["gd_imbalance_identity_error"] = (("eta", "t"), gd_mask(gd["imbalance_identity_error"]))
        for order, (mod_layers, status) in modified.items():
            dev = gd_mask(tree_norm(tuple(g - m for g, m in zip(runs["gd_layers"], mod_layers))))
            data[f"mod{order}_deviation"] = (("eta", "t"), dev)
            data[f"mod{order}_deviation_rel"] = (("eta", "t"), dev / flow_norm)
            data[f"mod{order}_status"] = (("eta",), np.array(status, dtype=str))
    return data


def run_status(kind: str, bad: np.ndarray, etas: np.ndarray, per_save: np.ndarray, t1: float, points: int) -> dict:
    """``{kind}_status`` (ok or diverged) and ``{kind}_message`` (where, as a Trajectory says it) per eta."""
    name = "gd" if kind == "gradient_descent" else "eq10"
    ts = np.linspace(0.0, t1, points)
    status, message = [], []
    for b, eta, every in zip(bad, etas, per_save):
        status.append("ok" if b < 0 else "diverged")
        keep = int(np.sum(every * np.arange(len(ts)) < b)) if b >= 0 else len(ts)
        message.append("" if b < 0 else descent_message(kind, float(eta), ts, keep, {"diverged_at": int(b)}))
    return {f"{name}_status": (("eta",), np.array(status, dtype=str)),
            f"{name}_message": (("eta",), np.array(message, dtype=str))}


def _per_eta(runs, etas, data, modified) -> dict:
    """GD's outcome per eta (diverged, oscillating: a period-2 orbit or its onset, ok), the statuses of GD and
    Eq. 10 with their messages, and the maxima over t."""
    gd, gd_bad, eq_bad = runs["gd"], runs["gd_bad"], runs["eq_bad"]
    last = {k: v[:, -1] for k, v in gd.items()}
    theta_norm = tree_norm(tuple(w[:, -1] for w in runs["gd_layers"]))
    oscillating = np.zeros(len(etas), bool)  # needs GD's diagnostics: never said in the plain configuration
    if "update_cos" in last:
        oscillating = ((gd_bad < 0) & (last["update_cos"] < OSCILLATION_COS)
                       & (last["update_growth"] > OSCILLATION_GROWTH) & (last["update_norm"] > 1e-12 * (1.0 + theta_norm)))
    outcome = np.where(gd_bad >= 0, "diverged", np.where(oscillating, "oscillating", "ok"))
    out = {
        "gd_outcome": (("eta",), outcome.astype(str)),
        "gd_diverged_step": (("eta",), gd_bad.astype(np.int64)),
        "gd_diverged_time": (("eta",), np.where(gd_bad >= 0, gd_bad * etas, np.nan)),
        "eq10_diverged_step": (("eta",), eq_bad.astype(np.int64)),
        "max_deviation_rel": (("eta",), _nanmax_rows(data["gd_deviation_rel"][1])),
        "max_layer_deviation": (("eta",), _nanmax_rows(data["gd_layer_deviation"][1])),
        "max_eq10_deviation_rel": (("eta",), _nanmax_rows(data["eq10_deviation_rel"][1])),
        **runs["statuses"],
    }
    for order in modified:
        out[f"max_mod{order}_deviation"] = (("eta",), _nanmax_rows(data[f"mod{order}_deviation"][1]))
    return out


def _nanmax_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    out = np.full(a.shape[0], np.nan)
    for i, row in enumerate(a):
        if np.isfinite(row).any():
            out[i] = np.nanmax(row)
    return out


def settings_attrs(problem, layers0, t1, points, tol, settings, lf, ef, caught) -> dict:
    return {
        "depth": len(layers0),
        "dims": ",".join(str(n) for n in (problem.d, *(w.shape[0] for w in layers0))),
        "p": problem.p,
        "weight_decay": float(problem.weight_decay),
        "t1": t1,
        "points": points,
        "tol": tol,
        "solver": settings.name,
        "rtol": float(settings.rtol),
        "atol": float(settings.atol),
        "flow_status": lf.status,
        "flow_message": lf.message,
        "flow_num_steps": int(lf.stats["num_steps"]),
        "flow_nfev": int(lf.stats["nfev"]),
        "e2e_flow_status": ef.status,
        "e2e_flow_message": ef.message,
        "e2e_flow_num_steps": int(ef.stats["num_steps"]),
        "e2e_flow_nfev": int(ef.stats["nfev"]),
        "initial_imbalance": float(lf.imbalance[0]),
        "warnings": " | ".join(str(w.message) for w in caught),
        "time_convention": "flow time t; GD iterate k sits at t = k * eta",
        "relative_deviation": "distance / max over t of the flow's norm",
        "regime_rule": REGIME_RULE,
        "central_deviation": "||W_e(mean of GD's last two iterates) - W_e(central flow)|| / max_t ||W_e(flow)||",
    }
