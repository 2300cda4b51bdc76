r"""Weak errors of SGD's continuous models on a deep network (docs/math.md section 12): for each $\eta$, the ensemble
means of $L(W_e(t))$ and $\lVert W_e(t) \rVert_F$ under SGD (the reference), the gradient flow, the first- and
second-order SMEs and SVAG, with their Monte Carlo standard errors.

The SMEs are solved by Euler-Maruyama on a shared Brownian grid (``path="scan"``) at two steps, $\eta/s$ and
$\eta/(2s)$, and extrapolated (Talay-Tubaro): $2\,\mathbb E[\phi^{\eta/(2s)}] - \mathbb E[\phi^{\eta/s}]$ removes the
scheme's first-order weak error, leaving $O(\eta^2/s^2)$ below the SME's own distance from SGD; the two runs share
their Brownian path, so the extrapolated value is formed path by path and its standard error is that of the
per-path values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
import xarray as xr

from ...core import integrate, sgd, sme
from ...core.trajectory import STATUSES, ensemble_statistics

__all__ = ["METHODS", "OBSERVABLES", "THEORY_ORDERS", "save_times", "observables", "ensemble_moments", "summarize",
           "run_values", "flow_values", "sme_values", "weak_errors"]

METHODS = ("gf", "sme1", "sme2", "svag")
OBSERVABLES = ("loss", "norm")
THEORY_ORDERS = {"gf": 1.0, "sme1": 1.0, "sme2": 2.0, "svag": 1.0}


def save_times(t1: float, points: int, steps: Sequence[float]) -> np.ndarray:
    """``points`` evenly spaced flow times on ``[0, t1]``, each checked to be a whole number of every step in
    ``steps`` (so that every discrete run and every fixed-step SDE run saves exactly there)."""
    if points < 2:
        raise ValueError(f"points must be at least 2; got {points}")
    ts = np.linspace(0.0, t1, points)
    for h in steps:
        if ts[1] - ts[0] < h * (1 - 1e-9):
            raise ValueError(f"the save spacing t1 / (points - 1) = {ts[1] - ts[0]:g} is shorter than the step {h:g}; "
                             f"lengthen t1 or save fewer points")
        n = ts / h
        if np.any(np.abs(n - np.round(n)) > 1e-9 * np.maximum(1.0, n)):
            raise ValueError(f"the save times t1 * i / (points - 1) (spacing {ts[1] - ts[0]:g}) must be whole multiples "
                             f"of every step; the step {h:g} does not divide them (choose t1 / (points - 1) a multiple "
                             f"of every eta)")
    return ts


def observables(run) -> tuple[np.ndarray, np.ndarray]:
    """``(L(W_e), |W_e|_F)`` of a run's saved rows (any leading ensemble axis)."""
    w = np.asarray(run.end_to_end)
    return np.asarray(run.loss), np.sqrt(np.sum(w * w, axis=(-2, -1)))


def ensemble_moments(values: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the paths (axis 0) of ``values``; NaN where any path is not ``ok`` (a diverged
    path disqualifies the ensemble: never skipped; :func:`linflow.core.trajectory.ensemble_statistics`)."""
    return ensemble_statistics(values, ok)[:2]


def summarize(values, ok) -> tuple[np.ndarray, np.ndarray, int]:
    """``(mean, se, not_ok)`` of per-path observables ``values`` (one array per observable, paths first): each
    observable's :func:`ensemble_moments`, stacked; a single path (the deterministic gradient flow) is its own mean
    with standard error 0. Either way a path that is not ``ok`` makes the entry NaN."""
    ok = np.asarray(ok)
    if len(ok) == 1:
        mean = np.stack([np.asarray(v, dtype=float)[0] for v in values])
        return (mean if ok[0] else np.full_like(mean, np.nan)), np.zeros_like(mean), int(not ok[0])
    pairs = [ensemble_moments(v, ok) for v in values]
    return np.stack([m for m, _ in pairs]), np.stack([e for _, e in pairs]), int(np.sum(~ok))


def run_values(run) -> tuple[list, np.ndarray]:
    """Per-path ``(loss, norm)`` of a run or an ensemble (a leading path axis either way) and which paths ended ok."""
    ok = np.atleast_1d(np.asarray(run.result) == 0)
    values = observables(run)
    return ([v[None] for v in values] if np.ndim(run.result) == 0 else values), ok


def flow_values(problem, layers0, t1, ts) -> tuple[list, np.ndarray]:
    """:func:`run_values` of the gradient flow on ``ts`` (tight tolerances: its error stays far below the weak
    errors it is compared with)."""
    return run_values(integrate.gradient_flow(problem, layers0, t1, ts=ts, rtol=1e-10, atol=1e-12))


def sme_values(problem, layers0, eta, t1, ts, *, batch, keys, order, sampling="replacement", substeps=2):
    """Per-path ``(loss, norm)`` of the SME of ``order`` extrapolated from steps ``eta / substeps`` and
    ``eta / (2 substeps)`` on one Brownian grid, and whether every path stayed finite."""
    coarse, fine = sme.sme_pair_ensemble(problem, layers0, eta, t1, batch=batch, keys=keys, sampling=sampling,
                                         order=order, dt=eta / substeps, ts=ts)
    ok = (np.asarray(coarse.result) == 0) & (np.asarray(fine.result) == 0)
    values = [2 * f - c for f, c in zip(observables(fine), observables(coarse))]
    return values, ok


def weak_errors(problem, layers0, etas: Sequence[float], t1: float, *, batch: int, paths: int = 1000, points: int = 5,
                ell: int = 4, seed: int = 0, sampling: str = "replacement", methods: Sequence[str] = METHODS,
                substeps: int = 2, progress: Callable[[str], None] | None = None) -> xr.Dataset:
    """SGD's ensemble and its models' for every ``eta``: ``mean`` and ``se`` of each observable at the save times
    (``points`` on ``[0, t1]``), ``weak_error = mean(method) - mean(sgd)`` with ``weak_se`` (the two standard errors
    combined) and ``not_ok`` (paths that left the finite numbers; any makes that entry NaN). ``paths`` keys per
    stochastic method (independent streams), minibatches of ``batch`` drawn by ``sampling`` (with replacement, or
    ``"batch"``); SVAG with ``l = ell``; the SMEs extrapolated in ``dt`` (:func:`sme_values`)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be among {', '.join(METHODS)}; got {unknown}")
    etas = sorted((float(e) for e in etas), reverse=True)
    if len(etas) < 1 or min(etas) <= 0:
        raise ValueError(f"etas must be positive learning rates; got {etas}")
    if paths < 2:
        raise ValueError(f"paths must be at least 2 (a standard error needs two); got {paths}")
    ts = save_times(t1, points, [e / (2 * substeps) for e in etas] + [e / ell for e in etas])
    names = ("sgd", *methods)
    shape = (len(names), len(etas), len(OBSERVABLES), len(ts))
    mean, se = np.full(shape, np.nan), np.full(shape, np.nan)
    not_ok = np.zeros((len(names), len(etas)), dtype=int)
    base = jax.random.PRNGKey(seed)
    keys = {name: jax.random.split(jax.random.fold_in(base, i), paths) for i, name in enumerate(names)}
    flow = flow_values(problem, layers0, t1, ts) if "gf" in methods else None
    for j, eta in enumerate(etas):
        spacing = int(round((ts[1] - ts[0]) / eta))
        for i, name in enumerate(names):
            if name == "gf":
                values, ok = flow
            elif name == "sgd":
                values, ok = run_values(sgd.sgd_ensemble(problem, layers0, eta, spacing * (len(ts) - 1), batch=batch,
                                                         keys=keys[name], sampling=sampling, save_every=spacing))
            elif name == "svag":
                values, ok = run_values(sgd.svag_ensemble(problem, layers0, eta, ell * spacing * (len(ts) - 1),
                                                          batch=batch, keys=keys[name], ell=ell, sampling=sampling,
                                                          save_every=ell * spacing))
            else:
                values, ok = sme_values(problem, layers0, eta, t1, ts, batch=batch, keys=keys[name],
                                        order=int(name[-1]), sampling=sampling, substeps=substeps)
            mean[i, j], se[i, j], not_ok[i, j] = summarize(values, ok)
            if progress is not None and name != "gf":
                progress(f"{name} eta={eta:g}")
    ds = xr.Dataset(
        {"mean": (("model", "eta", "observable", "time"), mean), "se": (("model", "eta", "observable", "time"), se),
         "not_ok": (("model", "eta"), not_ok)},
        coords={"model": list(names), "eta": etas, "observable": list(OBSERVABLES), "time": ts})
    ref = ds["mean"].sel(model="sgd", drop=True)
    ds["weak_error"] = ds["mean"].sel(model=list(methods)) - ref
    ds["weak_se"] = np.hypot(ds["se"].sel(model=list(methods)), ds["se"].sel(model="sgd", drop=True))
    ds.attrs.update(batch=batch, paths=paths, ell=ell, sampling=sampling, seed=seed, t1=float(t1), sde_substeps=substeps,
                    statuses=", ".join(STATUSES),
                    rule_mean="ensemble mean over the paths; none (said in words) where any path left the finite "
                              "numbers (not_ok > 0)",
                    rule_sme=f"Euler-Maruyama at dt = eta/{substeps} and eta/{2 * substeps} on one Brownian grid, "
                             f"extrapolated 2 E[fine] - E[coarse] path by path")
    return ds
