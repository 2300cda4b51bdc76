"""Ghosh, Kwon, Wang, Ravishankar & Qu (2025, arXiv 2502.20531, "Learning dynamics of deep linear networks beyond
the edge of stability"): three claims about GD on the deep matrix factorization loss past ``2 / S``, graded by
stated rules (docs/math.md section 11).

Their setting as far as it is published (the abstract and summaries; no code found): the loss
``(1/2) ||W_N ... W_1 - M*||_F^2`` of square layers, GD with a fixed ``eta`` past the edge of stability, their
analysis in the "singular vector stationary set" (layers sharing the target's singular vectors). Here: ``M*``
diagonal (``X = sqrt(d) I``, so ``L1 = (1/2) ||W_e - M*||_F^2`` exactly) and diagonal layers, a set GD keeps exactly
in floating point; the mode thresholds ``S_i = N s_i^(2-2/N)`` (the sharpness of mode ``i`` at the balanced minimum).

1. *Period doubling to chaos*: depth 3, ``M* = diag(1, 0.5)``, balanced diagonal start; GD's attractor on a grid
   of ``r = eta S_1 / 2`` (:func:`linflow.core.attractors.orbits`).
2. *The oscillation's subspace is set by eta*: depth 2, ``M* = diag(1, 0.9, 0.85, 0.5, 0.2)``; on a period-2 orbit
   the rank of ``W_e(k+1) - W_e(k)`` against ``#{i : S_i eta / 2 > 1}``.
3. *The balancing gap decays to zero*: depth 3, ``M* = diag(1, 0.5)``, an unbalanced diagonal start (layer 1 times
   1.3, layer 3 divided by 1.3: the same ``W_e``); each mode's gap ``max_j |w_(j+1),i^2 - w_j,i^2|`` along GD past
   mode 1's threshold (period 2) and, for contrast, below it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from jax.flatten_util import ravel_pytree

from ..core import init
from ..core.attractors import attractor_of, orbits, period_of
from ..core.descent import gradient_descent
from ..core.problems import Problem
from .common import caption, verdict

__all__ = ["ghosh25", "RULES", "diagonal_problem", "thresholds"]

CASCADE = {"depth": 3, "values": (1.0, 0.5), "ratios": (0.95, 1.7, 151)}
SUBSPACE = {"depth": 2, "values": (1.0, 0.9, 0.85, 0.5, 0.2), "ratios": (1.05, 1.15, 1.2, 1.23)}
GAP = {"depth": 3, "values": (1.0, 0.5), "ratio": 1.02, "below": 0.8, "steps": 20_000, "tilt": 1.3}
RANK_TOL = 1e-6
RULES = {
    "cascade": "agrees when, in increasing eta, periods 2, 4 and 8 first appear in that order before the first "
               "chaotic eta (largest Lyapunov exponent > 1e-3 per step, no period up to 64), and a chaotic eta comes "
               "before the first divergent one; differs otherwise",
    "subspace": f"on each grid eta where GD's orbit has period 2, the rank of W_e(k+1) - W_e(k) (singular values above "
                f"{RANK_TOL:g} ||W_e||) must equal #{{i : N s_i^(2-2/N) eta / 2 > 1}}; agrees when it does at every "
                f"such eta and those etas predict at least two different ranks; differs when it differs anywhere; "
                f"partly when fewer than two ranks were tested",
    "balancing": "per mode i, the gap max_j |w_(j+1),i^2 - w_j,i^2| (diagonal layers); agrees when every mode past its "
                 "own threshold (S_i eta / 2 > 1) ends below 1e-3 of its start and never rises over two steps "
                 "(gap(k + 2) <= gap(k) (1 + 1e-9): the orbit alternates), while every mode below its threshold stays "
                 "above half its start (GD nearly conserves it there); differs otherwise",
}
PAPER = ("beyond the edge of stability, deep linear networks' loss oscillations follow a period-doubling route to "
         "chaos; on the 2-period orbit they lie in a subspace whose dimension is set by eta; the balancing gap, "
         "conserved by gradient flow, decays monotonically to zero (Ghosh et al. 2025, abstract and Sections 3-4)")


def diagonal_problem(values) -> Problem:
    """``L1(W) = (1/2) ||W - diag(values)||_F^2`` exactly: ``X = sqrt(d) I``, ``Y = sqrt(d) diag(values)``."""
    d = len(values)
    return Problem(np.sqrt(d) * np.eye(d), np.sqrt(d) * np.diag(values))


def thresholds(values, depth: int) -> np.ndarray:
    """``S_i = N s_i^(2-2/N)``: the sharpness of mode ``i`` at the balanced minimum."""
    return depth * np.asarray(values, float) ** (2 - 2 / depth)


def _diagonal_start(values, depth: int, scale: float = 0.6) -> tuple:
    """Balanced diagonal layers with ``W_e = scale diag(values)`` (off the minimum, in its basin)."""
    root = (scale * np.asarray(values)) ** (1 / depth)
    return tuple(jnp.asarray(np.diag(root)) for _ in range(depth))


def _orbits(values, depth, ratios, transient, record):
    prob, start = diagonal_problem(values), _diagonal_start(values, depth)
    etas = 2 * np.asarray(ratios) / thresholds(values, depth)[0]
    flat, unravel = ravel_pytree(start)
    out = jax.device_get(orbits(prob, start, jnp.asarray(etas), jax.random.normal(jax.random.PRNGKey(0), flat.shape),
                                transient=transient, record=record, window=128))
    bad = out["diverged_at"].astype(int)
    period = np.array([period_of(s) if b < 0 else 0 for s, b in zip(out["states"], bad)])
    attractor = [attractor_of(p, lam, b) for p, lam, b in zip(period, out["lyapunov"], bad)]
    return etas, out, period, attractor, unravel


def _cascade(quick: bool) -> tuple[xr.Dataset, dict]:
    lo, hi, n = CASCADE["ratios"]
    ratios = np.linspace(lo, hi, 35 if quick else n)
    etas, out, period, attractor, _ = _orbits(CASCADE["values"], CASCADE["depth"], ratios, 5_000 if quick else 20_000,
                                              1_000 if quick else 4_000)
    first = {}
    for r, p, a in zip(ratios, period, attractor):
        if a == "chaotic":
            break
        if p in (2, 4, 8) and p not in first:
            first[int(p)] = round(float(r), 6)
    chaotic = [round(float(r), 6) for r, a in zip(ratios, attractor) if a == "chaotic"]
    diverged = [round(float(r), 6) for r, a in zip(ratios, attractor) if a == "diverged"]
    ordered = list(first) == [2, 4, 8] and first[2] < first[4] < first[8]
    ok = ordered and bool(chaotic) and (not diverged or chaotic[0] < diverged[0])
    ds = xr.Dataset({"cascade_period": (("cascade_ratio",), period),
                     "cascade_lyapunov": (("cascade_ratio",), np.where(np.array(attractor) == "diverged", np.nan,
                                                                       out["lyapunov"])),
                     "cascade_attractor": (("cascade_ratio",), np.array(attractor, dtype=str))},
                    coords={"cascade_ratio": ratios})
    return ds, {"verdict": "agrees" if ok else "differs", "first_ratio_of_period": {str(k): v for k, v in first.items()},
                "first_chaotic_ratio": chaotic[0] if chaotic else "none on the grid",
                "first_diverged_ratio": diverged[0] if diverged else "none on the grid"}


def _subspace(quick: bool) -> tuple[xr.Dataset, dict]:
    values, depth = SUBSPACE["values"], SUBSPACE["depth"]
    ratios = np.asarray(SUBSPACE["ratios"])
    etas, out, period, attractor, unravel = _orbits(values, depth, ratios, 5_000 if quick else 20_000, 1_000)
    predicted = np.array([int(np.sum(thresholds(values, depth) * e / 2 > 1)) for e in etas])
    measured = np.full(len(etas), -1)
    for i, states in enumerate(out["states"]):
        if period[i] == 2:
            W1, W0 = (np.asarray(init.end_to_end(unravel(jnp.asarray(states[k])))) for k in (-1, -2))
            sv = np.linalg.svd(W1 - W0, compute_uv=False)
            measured[i] = int(np.sum(sv > RANK_TOL * np.linalg.norm(W1)))
    tested = period == 2
    same = bool(np.all(measured[tested] == predicted[tested])) and tested.any()
    value = "differs" if not same else "agrees" if len(set(predicted[tested])) >= 2 else "partly"
    ds = xr.Dataset({"subspace_predicted_rank": (("subspace_ratio",), predicted),
                     "subspace_measured_rank": (("subspace_ratio",), measured),
                     "subspace_attractor": (("subspace_ratio",), np.array(attractor, dtype=str))},
                    coords={"subspace_ratio": ratios})
    rows = {f"{r:g}": {"attractor": a, "predicted_rank": int(p),
                       "measured_rank": int(m) if m >= 0 else "not measured: not a period-2 orbit"}
            for r, a, p, m in zip(ratios, attractor, predicted, measured)}
    return ds, {"verdict": value, "per_ratio": rows}


def _mode_gaps(layers) -> np.ndarray:
    """Per step and mode ``i``: ``max_j |w_(j+1),i^2 - w_j,i^2|`` of diagonal layers (the balancing gap of mode i)."""
    diag = np.stack([np.diagonal(np.asarray(w), axis1=-2, axis2=-1) for w in layers])  # (N, steps, d)
    return np.max(np.abs(np.diff(diag ** 2, axis=0)), axis=0)


def _gap(quick: bool) -> tuple[xr.Dataset, dict]:
    values, depth, tilt = GAP["values"], GAP["depth"], GAP["tilt"]
    prob = diagonal_problem(values)
    start = list(_diagonal_start(values, depth))
    start[0], start[-1] = start[0] * tilt, start[-1] / tilt
    steps = 4_000 if quick else GAP["steps"]
    S = thresholds(values, depth)
    gaps, status, checks = {}, {}, {}
    for name, r in (("past", GAP["ratio"]), ("below", GAP["below"])):
        eta = 2 * r / S[0]
        run = gradient_descent(prob, tuple(start), eta, steps)
        status[name] = run.status if run.status == "ok" else f"{run.status}: {run.message}"
        g = _mode_gaps(run.layers)
        gaps[name] = g
        for i in range(len(values)):
            ratio = float(g[-1, i] / g[0, i])
            if S[i] * eta / 2 > 1:  # this mode oscillates: its gap must decay, never rising over two steps
                ok = ratio < 1e-3 and bool(np.all(g[2:, i] <= g[:-2, i] * (1 + 1e-9)))
                checks[f"{name}, mode {i + 1} (past its threshold)"] = {"end_over_start": ratio, "holds": ok}
            else:  # a stable mode: GD nearly conserves its gap
                checks[f"{name}, mode {i + 1} (below its threshold)"] = {"end_over_start": ratio, "holds": ratio > 0.5}
    ok = status["past"] == status["below"] == "ok" and all(c["holds"] for c in checks.values())
    ds = xr.Dataset({"gap_past": (("step", "mode"), gaps["past"]), "gap_below": (("step", "mode"), gaps["below"])},
                    coords={"step": np.arange(steps + 1), "mode": np.arange(1, len(values) + 1)},
                    attrs={"gap_ratios": f"past {GAP['ratio']}, below {GAP['below']}"})
    return ds, {"verdict": "agrees" if ok else "differs", "per_mode": checks, "status": status}


def ghosh25(data=None, quick: bool = False):
    """The three claims on their setting: ``(dataset, summary, figures)``; ``data`` is not used."""
    parts = [_cascade(quick), _subspace(quick), _gap(quick)]
    ds = xr.merge([p[0] for p in parts], combine_attrs="override")
    claims = dict(zip(("cascade", "subspace", "balancing"), (p[1] for p in parts)))
    ds.attrs.update({"rule_" + k: v for k, v in RULES.items()})
    ds.attrs["setting"] = (f"diagonal targets and layers (the singular vector stationary set); cascade and balancing: "
                           f"depth {CASCADE['depth']}, M* = diag{CASCADE['values']}; subspace: depth "
                           f"{SUBSPACE['depth']}, M* = diag{SUBSPACE['values']}; ratio r = eta S_1 / 2, "
                           f"S_i = N s_i^(2-2/N)")
    grades = [c["verdict"] for c in claims.values()]
    value = "agrees" if all(g == "agrees" for g in grades) else "differs" if all(g == "differs" for g in grades) \
        else "partly"
    rule = ("agrees when each of the three claims agrees by its rule (rules per claim), differs when none does, "
            "partly otherwise")
    measured = "; ".join(f"{k}: {c['verdict']}" for k, c in claims.items())
    c = claims["cascade"]
    gap_text = ", ".join(f"{k}: {v['end_over_start']:.2e}" for k, v in claims["balancing"]["per_mode"].items())
    onsets = ", ".join(f"period {k} from r = {v:g}" for k, v in c["first_ratio_of_period"].items()) or "no doubling"
    chaos, div = c["first_chaotic_ratio"], c["first_diverged_ratio"]
    measured += (f". Cascade: {onsets}; " + (f"chaos from r = {chaos:g}" if isinstance(chaos, float) else
                                             "no chaos on the grid") + "; " +
                 (f"divergence from r = {div:g}" if isinstance(div, float) else "no divergence on the grid") +
                 ". Subspace: " +
                 ", ".join(f"r {r}: rank {v['measured_rank']} (predicted {v['predicted_rank']})"
                           for r, v in claims["subspace"]["per_ratio"].items()) +
                 f". Balancing gap, end over start: {gap_text}")
    summary = {**verdict(value, rule), "paper": PAPER, "measured": measured, "claims": claims, "rules": RULES,
               "data": "diagonal synthetic targets (no data set)"}
    return ds, summary, {"ghosh25": figure(ds)}


def figure(ds: xr.Dataset):
    """Left: the cascade's Lyapunov exponent and period over ``r``. Right: the balancing gap along GD past the
    threshold and below it."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    r = ds.cascade_ratio.values
    axes[0].plot(r, ds.cascade_lyapunov, ".-", ms=3, color="0.3", label="largest Lyapunov exponent")
    axes[0].axhline(0, color="k", lw=0.6)
    twin = axes[0].twinx()
    twin.step(r, np.where(ds.cascade_period.values > 0, ds.cascade_period.values, np.nan), where="mid",
              color="tab:blue", label="period")
    twin.set(yscale="log", ylabel="period (blank: none or diverged)")
    axes[0].set(xlabel="r = eta S_1 / 2", ylabel="Lyapunov exponent per step", title="period doubling into chaos")
    axes[0].legend(fontsize=8, loc="upper left")
    for m in ds["mode"].values:
        axes[1].semilogy(ds.step, ds.gap_past.sel(mode=m), label=f"mode {m}, eta past mode 1's threshold")
        axes[1].semilogy(ds.step, ds.gap_below.sel(mode=m), "--", label=f"mode {m}, eta below it")
    axes[1].set(xlabel="GD step", ylabel="max_j |w_(j+1),i^2 - w_j,i^2|", title="the balancing gap per mode")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    caption(fig, "Ghosh et al. (2025): deep matrix factorization beyond the edge of stability", ds.attrs["setting"])
    return fig
