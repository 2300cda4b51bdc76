"""The map in words and numbers: the attractor's segments over eta, the period-doubling cascade, chaos, divergence,
and where the central flow predicts GD."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["summary", "summary_text", "segments", "doublings"]


def segments(ds: xr.Dataset) -> list[dict]:
    """Runs of consecutive etas with one attractor: ``{"attractor", "from_eta", "to_eta", "from_ratio", "to_ratio",
    "points"}`` in increasing eta."""
    out = []
    for i, (eta, a) in enumerate(zip(ds.eta.values, ds.attractor.values)):
        if out and out[-1]["attractor"] == a:
            out[-1].update(to_eta=float(eta), to_ratio=float(ds.ratio.values[i]), points=out[-1]["points"] + 1)
        else:
            out.append({"attractor": str(a), "from_eta": float(eta), "to_eta": float(eta),
                        "from_ratio": float(ds.ratio.values[i]), "to_ratio": float(ds.ratio.values[i]), "points": 1})
    return out


def doublings(ds: xr.Dataset) -> dict:
    """The first eta at which each period ``2^k`` appears (on the grid, in increasing eta, before the first
    chaotic eta), and the Feigenbaum ratios ``(eta_k - eta_(k-1)) / (eta_(k+1) - eta_k)`` where three consecutive
    stages (periods ``2^(k-1), 2^k, 2^(k+1)``) are resolved on the grid
    (4.669... for the logistic map's universality class)."""
    first: dict[int, float] = {}
    for eta, p, a in zip(ds.eta.values, ds.period.values, ds.attractor.values):
        if a == "chaotic":
            break
        if p >= 1 and (p & (p - 1)) == 0 and p not in first and all(q < p for q in first):
            first[int(p)] = float(eta)
    periods = sorted(first)
    onsets = {p: first[p] for p in periods if p >= 2}
    # a ratio needs three consecutive stages 2^k, 2^(k+1), 2^(k+2), each resolved on the grid (a stage the grid
    # skipped would silently merge two intervals into one)
    ratios = [(onsets[2 * p] - onsets[p]) / (onsets[4 * p] - onsets[2 * p]) for p in onsets
              if 2 * p in onsets and 4 * p in onsets and onsets[4 * p] > onsets[2 * p]]
    skipped = [2 * p for p in onsets if 2 * p not in onsets and any(q > 2 * p for q in onsets)]
    if ratios:
        resolution = "three consecutive stages resolved"
    elif skipped:
        resolution = ("the grid does not resolve the cascade: period " + ", ".join(map(str, skipped))
                      + " appears on no eta between its neighbours, so no Feigenbaum ratio is formed")
    else:
        resolution = "fewer than three consecutive period-doubling stages on the grid: no Feigenbaum ratio"
    chaos = [float(e) for e, a in zip(ds.eta.values, ds.attractor.values) if a == "chaotic"]
    return {"first_eta_of_period": {str(p): first[p] for p in periods}, "feigenbaum_ratios": ratios,
            "feigenbaum_resolution": resolution,
            "first_chaotic_eta": chaos[0] if chaos else "no chaotic eta on the grid",
            "grid_spacing": float(np.min(np.diff(ds.eta.values))) if ds.eta.size > 1 else "one eta"}


def summary(ds: xr.Dataset) -> dict:
    """Rules, the threshold, the segments, the cascade, divergence and the central flow's reach (JSON-ready: words
    where a number is missing)."""
    div = [float(e) for e, a in zip(ds.eta.values, ds.attractor.values) if a == "diverged"]
    central = {f"{float(e):.6g}": (float(d) if np.isfinite(d) else str(r)) for e, d, r in
               zip(ds.eta.values, ds.central_deviation_rel.values, ds.central_reason.values)
               if np.isfinite(d) or str(r).startswith("central flow")}
    if central and len(set(central.values())) == 1 and isinstance(next(iter(central.values())), str):
        central = next(iter(central.values()))  # one reason for every eta (e.g. too many parameters): said once
    predicts = [float(e) for e, r in zip(ds.eta.values, ds.central_reason.values) if r == "predicts GD"]
    return {"rules": {"period": ds.attrs["period_rule"], "attractor": ds.attrs["attractor_rule"],
                      "central": ds.attrs["central_rule"], "transient": ds.attrs["transient_rule"]},
            "eta_crit": float(ds.attrs["eta_crit"]), "flow_limit_sharpness": float(ds.attrs["flow_limit_sharpness"]),
            "segments": segments(ds), "cascade": doublings(ds),
            "first_diverged_eta": div[0] if div else "no eta on the grid diverged",
            "central_flow": {"relative_deviation": central,
                             "largest_eta_predicted": max(predicts) if predicts else "none on the grid"}}


def summary_text(s: dict) -> str:
    """:func:`summary` as lines."""
    lines = [f"eta_crit = 2 / S(phi(w0)) = {s['eta_crit']:.6g} (S of the flow's limit {s['flow_limit_sharpness']:.6g})",
             "attractor over eta (ratio = eta / eta_crit):"]
    for seg in s["segments"]:
        lines.append(f"  {seg['from_ratio']:.4f} - {seg['to_ratio']:.4f}: {seg['attractor']} ({seg['points']} etas)")
    c = s["cascade"]
    lines.append("period doubling: " + (", ".join(f"period {p} from eta {e:.5g}" for p, e in
                                                 c["first_eta_of_period"].items()) or "none"))
    if c["feigenbaum_ratios"]:
        lines.append("  Feigenbaum ratios (on the grid): " + ", ".join(f"{r:.2f}" for r in c["feigenbaum_ratios"]))
    else:
        lines.append(f"  Feigenbaum ratios: none ({c.get('feigenbaum_resolution', 'not resolved on the grid')})")
    first = c["first_chaotic_eta"]
    lines.append(f"first chaotic eta: {first:.5g}" if isinstance(first, float) else f"first chaotic eta: {first}")
    d = s["first_diverged_eta"]
    lines.append(f"first diverged eta: {d:.5g}" if isinstance(d, float) else d)
    p = s["central_flow"]["largest_eta_predicted"]
    dev = s["central_flow"]["relative_deviation"]
    lines.append("central flow predicts GD up to eta " + (f"{p:.5g}" if isinstance(p, float) else p) + (
        f" ({dev})" if isinstance(dev, str) else " (measured at: " + ", ".join(
            f"{e}: {v:.3g}" if isinstance(v, float) else f"{e}: {v}" for e, v in dev.items()) + ")"))
    lines.append(f"rule: {s['rules']['attractor']}")
    return "\n".join(lines)
