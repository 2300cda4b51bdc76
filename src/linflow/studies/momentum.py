r"""Where a momentum method (heavy ball, Nesterov) leaves its continuous models: deviations over the learning rate
at fixed flow time, their fitted orders and the learning rate where each crosses a level (docs/math.md section 13).

For each eta of a grid on the save spacing, the method runs from rest and from its slow manifold
(:func:`linflow.heavy_ball`, :func:`linflow.nesterov`) and each model (:func:`linflow.heavy_ball_flow`,
:func:`linflow.nesterov_flow`) from the start it is paired with
(:data:`PAIRS`); the deviation is the largest distance of ``W_e`` after the initial layer (the saves where
``beta^k <= 1e-3`` at the largest eta), relative to the largest norm of the run's ``W_e``. A run that diverged has no
deviation: it counts as above every level and is left out of the order fits, in words. Adam and RMSProp
(:func:`adam_breakdown`, :func:`rmsprop_breakdown`, docs/math.md section 14) against their models give the same
Dataset with one pair, read at every save after ``t = 0``.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import optax
import numpy as np
import xarray as xr

from ..core import checks as _checks, runs as _runs
from ..core.adam import ADAM_FIXED_BETA_MODELS, adam_flow, checked_rmsprop_model, rmsprop_flow
from ..core.descent import OptaxRule, descend_each
from ..core.fields import LayerFlow
from ..core.measures import crossing, fit_order, steps_per_save
from ..core.momentum import (LAYER_DECAY, MomentumRule, checked_method, checked_momentum, heavy_ball_flow,
                             initial_layer_steps, nesterov_flow)
from ..core.problems import Problem
from ..core.settings import settings_from
from .comparison.report import ASYMPTOTIC

__all__ = ["PAIRS", "LAYER_DECAY", "ADAM_FIXED_MODELS", "RULE", "check_grid", "breakdown", "adam_breakdown",
           "adam_fixed_breakdown", "rmsprop_breakdown", "summary", "summary_text", "method_words"]

#: (the discrete run's start, the model, the flow's start, the order theory gives for the pair)
PAIRS = (
    ("rest", "leading", "plain", 1),
    ("manifold", "modified", "plain", 2),
    ("manifold", "second_order", "plain", 2),
    ("rest", "modified", "initial_layer", 2),
    ("rest", "second_order", "initial_layer", 2),
    ("rest", "modified", "plain", 1),
    ("rest", "second_order", "rest", 1),
)


#: the models of :func:`adam_fixed_breakdown` (:func:`linflow.adam_flow`'s at fixed betas)
ADAM_FIXED_MODELS = ADAM_FIXED_BETA_MODELS


#: the rule of :func:`summary`, in words (what the command's JSON states beside its verdicts)
RULE = ("deviation: the largest |W_e(model) - W_e(method)|_F after the initial layer (the saves where beta^k <= 1e-3 "
        "at the largest eta), relative to the run's largest |W_e|_F; order: least-squares slope of log deviation "
        "against log eta over the etas whose deviation is below `asymptotic` (0.1) and above 1000 x the solver's "
        "tolerance, with its 95% interval; 'order n' "
        "when within 0.15 of the theory's n, 'differs' otherwise; crossing: the eta (log-log interpolated) where the "
        "deviation first reaches the level; a run that diverged counts above every level and is left out of the fit")


def check_grid(etas, beta: float, t1: float, points: int) -> float:
    """The time after which deviations are read (the initial layer over at the largest eta: ``beta^k <= 1e-3``);
    a ValueError when fewer than 2 saves of ``linspace(0, t1, points)`` lie after it."""
    ts = np.linspace(0.0, t1, points)
    layer_steps = initial_layer_steps(beta)
    start = max(etas) * layer_steps
    if (ts >= start).sum() < 2:
        raise ValueError(f"the initial layer (beta^k <= {LAYER_DECAY:g}: {layer_steps} steps, t = {start:.3g} at eta = "
                         f"{max(etas):g}) leaves fewer than 2 saves of [0, t1 = {t1:g}]: raise t1 or lower the etas")
    return float(ts[ts >= start][0])


def _relative_deviation(flow, run: np.ndarray, saves: np.ndarray) -> float:
    """The largest ``|W_e(flow) - W_e(run)|_F`` over ``saves``, relative to the run's largest ``|W_e|_F``."""
    gap = np.linalg.norm(np.asarray(flow.end_to_end) - run, axis=(1, 2))
    return float(np.max(gap[saves]) / np.max(np.linalg.norm(run, axis=(1, 2))))


def _name(pair) -> str:
    start, model, flow_start, _ = pair
    return f"{model} ({flow_start}) vs the method ({start})"


def breakdown(problem: Problem, layers0, etas, beta, t1, *, points: int = 11, level: float = 1e-2,
              asymptotic: float = ASYMPTOTIC, method: str = "heavy_ball", settings=None, rtol: float = 1e-12,
              atol: float = 1e-14) -> xr.Dataset:
    """The momentum method ``method`` (:data:`linflow.core.momentum.METHODS`) against its models (:data:`PAIRS`) at
    every eta of ``etas`` (each dividing ``t1 / (points - 1)``), saved on ``linspace(0, t1, points)``: a Dataset with
    ``deviation_rel`` (pair, eta), each run's ``status`` and, in ``attrs``, the level whose crossing is reported
    (``level``, the comparison's 1%), the deviation below which orders are fitted (``asymptotic``, the comparison's
    0.1), the method, the momentum and the time after which deviations are read."""
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    beta = float(checked_momentum(beta))
    method = checked_method(method)
    points = _checks.integer("points", points, minimum=3)
    t1 = _checks.positive("t1", t1)
    level = _checks.positive("level", level)
    asymptotic = _checks.positive("asymptotic", asymptotic)
    etas = np.sort(np.asarray([_checks.positive("etas", e) for e in np.atleast_1d(etas)], dtype=float))
    per_save = np.array([steps_per_save(float(e), t1, points) for e in etas], dtype=np.int64)
    settings = settings_from(settings, breakdown, rtol=rtol, atol=atol)
    ts = np.linspace(0.0, t1, points)
    after = ts >= check_grid(etas, beta, t1, points)
    runs = {start: descend_each(MomentumRule(LayerFlow(problem), jnp.float64(beta), start, method), layers0, etas,
                                per_save, points - 1, kind=method)
            for start in ("rest", "manifold")}
    model_flow = heavy_ball_flow if method == "heavy_ball" else nesterov_flow
    deviation = np.full((len(PAIRS), len(etas)), np.nan)
    model_status = np.full((len(PAIRS), len(etas)), "", dtype=object)
    status = {s: np.asarray([str(r.status) for r in run.unstack()]) for s, run in runs.items()}
    for i, eta in enumerate(etas):
        for p, (start, model, flow_start, _) in enumerate(PAIRS):
            if status[start][i] != "ok":
                continue
            run = np.asarray(runs[start].end_to_end[i])
            flow = model_flow(problem, layers0, eta, beta, t1, model=model, start=flow_start, ts=ts,
                                   settings=settings)
            model_status[p, i] = str(flow.status)
            if flow.status == "ok":
                deviation[p, i] = _relative_deviation(flow, run, after)
    return xr.Dataset(
        {"deviation_rel": (("pair", "eta"), deviation), "status_model": (("pair", "eta"), model_status.astype(str)),
         "status_rest": (("eta",), status["rest"]), "status_manifold": (("eta",), status["manifold"]),
         "theory_order": (("pair",), np.array([p[3] for p in PAIRS]))},
        coords={"pair": [_name(p) for p in PAIRS], "eta": etas},
        attrs={"method": method, "beta": beta, "t1": t1, "points": points, "level": level, "asymptotic": asymptotic,
               "after": float(ts[after][0]),
               "initial_layer_steps": initial_layer_steps(beta), "rtol": settings.rtol, "atol": settings.atol})


@dataclasses.dataclass(frozen=True)
class _ScaledAdam:
    """``optax.adam(lr, 1 - a lr, 1 - b lr, eps)``: Adam whose averages scale with its step (hashable: a static
    field of the engine's rule)."""

    a: float
    b: float
    eps: float

    def __call__(self, learning_rate):
        return optax.adam(learning_rate, 1.0 - self.a * learning_rate, 1.0 - self.b * learning_rate, eps=self.eps)


@dataclasses.dataclass(frozen=True)
class _FixedAdam:
    """``optax.adam(lr, beta1, beta2, eps, eps_root)``: Adam whose averages stay fixed as its step changes
    (hashable)."""

    beta1: float
    beta2: float
    eps: float
    eps_root: float

    def __call__(self, learning_rate):
        return optax.adam(learning_rate, self.beta1, self.beta2, eps=self.eps, eps_root=self.eps_root)


@dataclasses.dataclass(frozen=True)
class _ScaledRMSProp:
    """``optax.rmsprop(lr, 1 - b lr, eps, initial_scale)``: RMSProp whose average scales with its step (hashable)."""

    b: float
    eps: float
    initial_scale: float

    def __call__(self, learning_rate):
        return optax.rmsprop(learning_rate, 1.0 - self.b * learning_rate, eps=self.eps,
                             initial_scale=self.initial_scale)


def _adaptive_breakdown(problem: Problem, layers0, etas, t1, rates: dict, optimizer, models, attrs: dict, points,
                        level, asymptotic, settings) -> xr.Dataset:
    """An adaptive method (``optimizer``, an optax rule of the step) against its models (``models``: ``(pair, model,
    theory order)`` each, ``model(eta, ts)`` a :class:`Trajectory`) at every eta, read at every save after
    ``t = 0``: the Dataset of :func:`breakdown` with one pair per model. ``rates``: the averages' rates
    ``{name: value}``, each ``1 - beta = rate eta`` (positive, checked by the caller; here every eta is checked below
    ``1 / rate``)."""
    t1 = _checks.positive("t1", t1)
    points = _checks.integer("points", points, minimum=3)
    level, asymptotic = _checks.positive("level", level), _checks.positive("asymptotic", asymptotic)
    etas = np.sort(np.asarray([_checks.positive("etas", e) for e in np.atleast_1d(etas)], dtype=float))
    fastest = max(rates.values(), default=0.0)
    if etas.max() * fastest >= 1.0:
        raise ValueError(f"etas must stay below 1 / max({', '.join(rates)}) = {1 / fastest:g} (each average's "
                         f"weight, 1 - rate x eta, must be > 0); got {etas.max():g}")
    per_save = np.array([steps_per_save(float(e), t1, points) for e in etas], dtype=np.int64)
    ts = np.linspace(0.0, t1, points)
    runs = descend_each(OptaxRule(LayerFlow(problem), optimizer), layers0, etas, per_save, points - 1,
                        kind=attrs["method"])
    status = np.asarray([str(r.status) for r in runs.unstack()])
    deviation = np.full((len(models), len(etas)), np.nan)
    model_status = np.full((len(models), len(etas)), "", dtype=object)
    for i, eta in enumerate(etas):
        if status[i] != "ok":
            continue
        for p, (_, model, _) in enumerate(models):
            flow = model(float(eta), ts)
            model_status[p, i] = str(flow.status)
            if flow.status == "ok":
                deviation[p, i] = _relative_deviation(flow, np.asarray(runs.end_to_end[i]), ts > 0)
    return xr.Dataset(
        {"deviation_rel": (("pair", "eta"), deviation), "status_model": (("pair", "eta"), model_status.astype(str)),
         "status_rest": (("eta",), status),
         "status_manifold": (("eta",), status),
         "theory_order": (("pair",), np.array([float(theory) for _, _, theory in models]))},
        coords={"pair": [pair for pair, _, _ in models], "eta": etas},
        attrs={**attrs, "t1": t1, "points": points, "level": level, "asymptotic": asymptotic, "after": float(ts[1]),
               "initial_layer_steps": 0, "rtol": settings.rtol, "atol": settings.atol})


def adam_breakdown(problem: Problem, layers0, etas, a, b, t1, *, points: int = 11, level: float = 1e-2,
                   asymptotic: float = ASYMPTOTIC, eps: float = 1e-8, settings=None, rtol: float = 1e-12,
                   atol: float = 1e-14) -> xr.Dataset:
    """optax's Adam with ``1 - beta1 = a eta`` and ``1 - beta2 = b eta`` against its model (14.1,
    :func:`linflow.adam_flow`) at every eta of ``etas`` (each dividing ``t1 / (points - 1)`` and below ``1 / a``,
    ``1 / b``): the Dataset of :func:`breakdown` with one pair (the model against the run, theory order 1), read at
    every save after ``t = 0`` (the bias corrections leave no initial layer); :func:`summary` and
    :func:`linflow.plot.momentum_breakdown` read it."""
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    a, b = (_checks.positive(n, v) for n, v in (("a", a), ("b", b)))
    settings = settings_from(settings, adam_breakdown, rtol=rtol, atol=atol)

    def model(eta, ts):
        return adam_flow(problem, layers0, eta, 1.0 - a * eta, 1.0 - b * eta, ts[-1], eps=eps, ts=ts,
                         settings=settings)

    return _adaptive_breakdown(problem, layers0, etas, t1, {"a": a, "b": b}, _ScaledAdam(a, b, float(eps)),
                               [("adam_flow (moments from 0) vs the method (optax's adam)", model, 1)],
                               {"method": "adam", "a": a, "b": b}, points, level, asymptotic, settings)


def adam_fixed_breakdown(problem: Problem, layers0, etas, beta1, beta2, t1, *,
                         models=("memoryless", "modified"), points: int = 11, level: float = 1e-2,
                         asymptotic: float = ASYMPTOTIC, eps: float = 0.0, eps_root: float = 1.0, settings=None,
                         rtol: float = 1e-12, atol: float = 1e-14) -> xr.Dataset:
    r"""optax's Adam at fixed ``beta1``, ``beta2`` (``adam(eta, beta1, beta2, eps, eps_root)``) against its models
    at fixed betas (``"memoryless"``: :math:`\dot\theta = -F`, theory order 1; ``"modified"``: (14.8), order 2;
    :func:`linflow.adam_flow`), one pair each, at every eta of ``etas`` (each dividing ``t1 / (points - 1)``), read
    at every save after ``t = 0``: the Dataset of :func:`adam_breakdown`. The defaults ``eps = 0``, ``eps_root = 1``
    keep ``F`` smooth on the scale of the gradients (docs/math.md after (14.8): as ``eps_root -> 0`` the asymptotic
    range of eta shrinks)."""
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    beta1, beta2 = (float(_checks.unit_weight(n, v, "an average's weight")) for n, v in
                    (("beta1", beta1), ("beta2", beta2)))
    eps = float(_checks.real_scalar("eps", eps, minimum=0.0))
    eps_root = float(_checks.real_scalar("eps_root", eps_root, minimum=0.0))
    models = (models,) if isinstance(models, str) else tuple(models)
    if not models or any(m not in ADAM_FIXED_MODELS for m in models):
        raise ValueError(f"models must be some of {', '.join(ADAM_FIXED_MODELS)}; got {models!r}")
    settings = settings_from(settings, adam_fixed_breakdown, rtol=rtol, atol=atol)

    def model_of(name):
        def flow(eta, ts):
            return adam_flow(problem, layers0, eta, beta1, beta2, ts[-1], eps=eps, eps_root=eps_root, model=name,
                             ts=ts, settings=settings)
        words = "memoryless flow" if name == "memoryless" else "modified (14.8)"
        return (f"adam_flow, {words} vs the method (optax's adam)", flow, 1 if name == "memoryless" else 2)

    return _adaptive_breakdown(problem, layers0, etas, t1, {}, _FixedAdam(beta1, beta2, eps, eps_root),
                               [model_of(m) for m in models],
                               {"method": "adam", "beta1": beta1, "beta2": beta2, "eps_root": eps_root}, points,
                               level, asymptotic, settings)


def rmsprop_breakdown(problem: Problem, layers0, etas, b, t1, *, initial_scale: float = 0.0, model: str = "leading",
                      points: int = 11, level: float = 1e-2, asymptotic: float = ASYMPTOTIC, eps: float = 1e-8,
                      settings=None, rtol: float = 1e-12, atol: float = 1e-14) -> xr.Dataset:
    r"""optax's RMSProp with ``1 - decay = b eta``, its second moment from ``initial_scale``, against its model
    (``model="leading"``: (14.2); ``"modified"``: the modified equation (14.7); :func:`linflow.rmsprop_flow`) at every
    eta of ``etas`` (each dividing ``t1 / (points - 1)`` and below ``1 / b``), read at every save after ``t = 0``: the
    Dataset of :func:`adam_breakdown`. The theory's order is ``1/2`` from ``v = 0`` (the initial layer of order
    :math:`\sqrt\eta`, docs/math.md (14.4)), 1 from a positive ``initial_scale``, and 2 for the modified equation
    (which needs ``initial_scale + eps > 0``)."""
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    b = _checks.positive("b", b)
    initial_scale = float(_checks.real_scalar("initial_scale", initial_scale, minimum=0.0))
    model = checked_rmsprop_model(model, initial_scale, eps)  # before any run
    settings = settings_from(settings, rmsprop_breakdown, rtol=rtol, atol=atol)

    def flow(eta, ts):
        return rmsprop_flow(problem, layers0, eta, 1.0 - b * eta, ts[-1], eps=eps, initial_scale=initial_scale,
                            model=model, ts=ts, settings=settings)

    start = "v from 0" if initial_scale == 0 else f"v from {initial_scale:g}"
    name = "rmsprop_flow" if model == "leading" else "rmsprop_flow, modified (14.7)"
    theory = 2 if model == "modified" else 0.5 if initial_scale == 0 else 1
    return _adaptive_breakdown(problem, layers0, etas, t1, {"b": b}, _ScaledRMSProp(b, float(eps), initial_scale),
                               [(f"{name} ({start}) vs the method (optax's rmsprop)", flow, theory)],
                               {"method": "rmsprop", "b": b, "initial_scale": initial_scale, "model": model}, points,
                               level, asymptotic, settings)


def summary(ds: xr.Dataset) -> list[dict]:
    """Per pair: the fitted order with its 95% interval over the etas whose deviation is measured, below
    ``asymptotic`` and above 1000 times the solver's tolerance (the comparison's rule), the theory's order and whether
    it lies within 0.15, and the eta where the deviation first reaches the level (a diverged run counts as above
    it)."""
    etas, level, asymptotic = ds.eta.values, float(ds.attrs["level"]), float(ds.attrs["asymptotic"])
    floor = 1e3 * max(float(ds.attrs.get("rtol", 0.0)), float(ds.attrs.get("atol", 0.0)))  # the solver's error below
    rows = []
    for p, name in enumerate(ds.pair.values):
        dev = ds.deviation_rel.values[p]
        fit = fit_order(etas, dev, np.isfinite(dev) & (dev < asymptotic) & (dev > floor))
        cut = crossing(etas, np.where(np.isfinite(dev), dev, np.inf), level)
        theory = float(ds.theory_order.values[p])
        if not fit.fitted:
            verdict = (f"not fitted: {fit.n} eta(s) measured below {asymptotic:g} and above 1000 x the solver "
                       f"tolerance (need 2)")
        else:
            verdict = (f"order {theory:g}" if abs(fit.order - theory) <= 0.15 else
                       f"differs from order {theory:g} (fitted {fit.order:.2f}; the rule: within 0.15)")
        stopped = _model_stopped(ds, p)
        if stopped:
            verdict += f"; {stopped}"
        if math.isinf(cut.above):
            where = f"above the grid (every eta up to {etas[-1]:.4g} stays below {level:g})"
        elif math.isnan(cut.below):
            where = f"below the grid (at the smallest eta, {etas[0]:.4g}, already at or above {level:g})"
        elif cut.diverged:
            where = (f"between {cut.below:.4g} and {cut.above:.4g} (at {cut.above:.4g} the run diverged or its model "
                     "failed: counted above the level)")
        else:
            where = f"{cut.at:.4g}"
        measured = not (math.isinf(cut.above) or math.isnan(cut.below) or cut.diverged)
        rows.append({"pair": str(name), "order": fit.order if fit.fitted else None,
                     "ci95": list(fit.ci95) if fit.fitted and fit.ci95 else None, "points": fit.n,
                     "theory": theory, "verdict": verdict, "crossing_eta": cut.at if measured else None,
                     "crossing": where})
    return rows


def _model_stopped(ds: xr.Dataset, p: int) -> str:
    """Where the model's solve did not reach ``t1`` (its status per eta), in words; "" where it always did (or the
    Dataset predates ``status_model``)."""
    if "status_model" not in ds:
        return ""
    codes = ds.status_model.values[p]
    bad = [(float(e), str(c)) for e, c in zip(ds.eta.values, codes) if c not in ("ok", "")]
    if not bad:
        return ""
    where = ", ".join(f"{e:.4g} ({c})" for e, c in bad)
    return f"the model's solve stopped before t1 at eta {where}: no deviation there (a stiffer solver may reach it)"


def method_words(ds: xr.Dataset) -> str:
    """``heavy ball (beta = 0.5)``, ``nesterov (beta = 0.5)``, ``adam (1 - beta1 = 2 eta, 1 - beta2 = 4 eta)`` or
    ``adam (beta1 = 0.5, beta2 = 0.8 fixed, eps_root = 1)``."""
    if ds.attrs["method"] == "adam" and "beta1" in ds.attrs:
        return (f"adam (beta1 = {ds.attrs['beta1']:g}, beta2 = {ds.attrs['beta2']:g} fixed, "
                f"eps_root = {ds.attrs['eps_root']:g})")
    if ds.attrs["method"] == "adam":
        return f"adam (1 - beta1 = {ds.attrs['a']:g} eta, 1 - beta2 = {ds.attrs['b']:g} eta)"
    if ds.attrs["method"] == "rmsprop":
        return f"rmsprop (1 - decay = {ds.attrs['b']:g} eta, v from {ds.attrs['initial_scale']:g})"
    return f"{str(ds.attrs['method']).replace('_', ' ')} (beta = {ds.attrs['beta']:g})"


def summary_text(ds: xr.Dataset) -> str:
    """The summary in words, one line per pair, with the rule."""
    lines = [f"{method_words(ds)} against its models, deviation of W_e "
             f"{'at every save after t = 0' if ds.attrs['method'] in ('adam', 'rmsprop') else 'after the initial layer'} "
             f"(t >= {ds.attrs['after']:.3g}) relative to the run's largest "
             f"norm; orders fitted where it is below {ds.attrs['asymptotic']:g}, 'order n' when within 0.15 of the "
             f"theory's; a run that diverged counts above every level"]
    for row in summary(ds):
        ci = f" [{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]" if row["ci95"] else ""
        got = f"{row['order']:.2f}{ci}" if row["order"] is not None else "-"
        lines.append(f"  {row['pair']:<52} order {got:<20} {row['verdict']}; reaches {ds.attrs['level']:g} at eta "
                     f"{row['crossing']}")
    return "\n".join(lines)
