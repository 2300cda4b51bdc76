r"""Stability edges of GD, heavy ball, Nesterov, Adam and RMSProp, measured as plateaus of the (preconditioned)
sharpness along the run (docs/math.md (14.5)-(14.6)).

Frozen at a state, each method is a linear recursion on a quadratic with Hessian $H$; it is stable while the largest
eigenvalue of $P^{-1} H$ ($P$ the method's diagonal preconditioner, $1$ for GD and the momentum methods) is below its
edge:

==============  ============================================  =================================================
method          preconditioner $P$ (optax's state)           edge of $\lambda_1(P^{-1} H)$
==============  ============================================  =================================================
``gd``          1                                             $2 / \eta$
``heavy_ball``  1                                             $2 (1 + \beta) / \eta$
``nesterov``    1                                             $(2 + 2\beta) / ((1 + 2\beta) \eta)$
``adam``        $\sqrt{\hat v} + \varepsilon$                 $(2 + 2\beta_1) / ((1 - \beta_1) \eta)$
``rmsprop``     $\sqrt{v + \varepsilon}$                      $2 / \eta$
==============  ============================================  =================================================

Cohen et al. (2021, 2022) found the (preconditioned) sharpness rising to the edge and hovering there.
:func:`stability_edge` runs the method (optax's, on the one discrete engine) and reads $\lambda_1(P^{-1} H)$ at the
midpoint of consecutive iterates (the point a period-2 orbit oscillates about; section 8) with the preconditioner
of the later one; :func:`edge_summary` states the plateau and its verdict by :data:`EDGE_RULE`.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from ..core import checks as _checks, runs as _runs
from ..core.curvature import preconditioned_sharpness
from ..core.descent import OptaxRule, iterate
from ..core.fields import LayerFlow, network_loss
from ..core.problems import Problem

__all__ = ["EDGE_METHODS", "EDGE_RULE", "edge", "stability_edge", "edge_summary", "edge_text"]

#: the methods whose edge is measured
EDGE_METHODS = ("gd", "heavy_ball", "nesterov", "adam", "rmsprop")

#: the verdict's rule, in words (beside every verdict)
EDGE_RULE = ("reading: lambda_1(P^-1 H) at the midpoint of consecutive iterates, P the method's preconditioner after "
             "the later one, over the method's edge; arrival: the first reading at or above 1 - tolerance after the start's "
             "transient (the readings before the first one below 1 + tolerance: RMSProp's P starts near 0); plateau: "
             "the median of the readings from the arrival to the end, with their range; 'held at the edge' when the "
             "median is within the tolerance of 1, 'above' or 'below the edge' otherwise; 'never reached' without "
             "an arrival; a run that diverged is said so, with its step, and judged on nothing")


@dataclasses.dataclass(frozen=True)
class _Method:
    """A method's optax transformation and its hyperparameters (hashable: a static field of the engine's rule)."""

    name: str
    beta: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    initial_scale: float = 0.0

    def __call__(self, learning_rate):
        if self.name == "adam":
            return optax.adam(learning_rate, self.beta1, self.beta2, eps=self.eps)
        if self.name == "rmsprop":
            return optax.rmsprop(learning_rate, self.beta2, eps=self.eps, initial_scale=self.initial_scale)
        return optax.sgd(learning_rate, momentum=self.beta if self.name != "gd" else None,
                         nesterov=self.name == "nesterov")

    def preconditioner(self, opt_state, layers):
        """The diagonal of ``P`` in this optimizer state (ones for GD and the momentum methods)."""
        if self.name == "adam":
            s = _inner(opt_state, optax.ScaleByAdamState)
            c = 1.0 - self.beta2 ** s.count
            return jax.tree_util.tree_map(lambda v: jnp.sqrt(v / c) + self.eps, tuple(s.nu))
        if self.name == "rmsprop":
            return jax.tree_util.tree_map(lambda v: jnp.sqrt(v + self.eps),
                                          tuple(_inner(opt_state, optax.ScaleByRmsState).nu))
        return jax.tree_util.tree_map(jnp.ones_like, tuple(layers))


def _inner(opt_state, kind):
    """The one state of type ``kind`` inside an optax state."""
    return next(x for x in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, kind))
                if isinstance(x, kind))


def edge(method: str, eta, *, beta: float = 0.5, beta1: float = 0.9) -> float:
    r"""The largest $\lambda_1(P^{-1} H)$ at which ``method`` is stable frozen at a state (docs/math.md (14.6)):
    $2/\eta$ (GD, RMSProp), $2 (1 + \beta) / \eta$ (heavy ball), $(2 + 2\beta) / ((1 + 2\beta) \eta)$ (Nesterov),
    $(2 + 2\beta_1) / ((1 - \beta_1) \eta)$ (Adam).

    Examples:
        >>> round(edge("adam", 0.01), 9)   # 38 / eta at optax's beta1 = 0.9
        3800.0
    """
    if method not in EDGE_METHODS:
        raise ValueError(f"method must be one of {', '.join(EDGE_METHODS)}; got {method!r}")
    eta = _checks.positive("eta", eta)
    beta, beta1 = _unit("beta", beta), _unit("beta1", beta1)
    if method in ("gd", "rmsprop"):
        return 2.0 / eta
    if method == "heavy_ball":
        return 2.0 * (1.0 + beta) / eta
    if method == "nesterov":
        return (2.0 + 2.0 * beta) / ((1.0 + 2.0 * beta) * eta)
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * eta)


@eqx.filter_jit
def _readings(rule: OptaxRule, method: _Method, layers0, eta, every: int, n_saves: int, iters: int):
    problem = rule.field.problem

    def keep(state):
        after = rule(state, eta)
        mid = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, state[0], after[0])
        reading = preconditioned_sharpness(problem, mid, method.preconditioner(after[1], after[0]), iters=iters)
        return reading, network_loss(problem, state[0])

    return iterate(rule, rule.init(layers0, eta), eta, every, n_saves, keep=keep)


def _unit(name: str, value) -> float:
    value = _checks.real_scalar(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {value:g}")
    return value


def stability_edge(problem: Problem, layers0, method: str, eta, steps: int, *, every: int = 100, beta: float = 0.5,
                   beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, initial_scale: float = 0.0,
                   tolerance: float = 0.05, iters: int = 64) -> xr.Dataset:
    r"""``steps`` steps of ``method`` (:data:`EDGE_METHODS`: optax's ``sgd``, ``sgd(momentum=beta[, nesterov])``,
    ``adam(eta, beta1, beta2, eps)``, ``rmsprop(eta, beta2, eps, initial_scale)``) from ``layers0``, reading every
    ``every`` steps $\lambda_1(P^{-1} H)$ at the midpoint of the iterate and the next, over the method's :func:`edge`.

    Returns a Dataset over ``step``: ``ratio`` (the reading over the edge; NaN after a divergence) and ``loss`` (the
    network loss at the iterate), with ``attrs`` holding the method, its hyperparameters, ``edge``, ``tolerance`` and
    ``diverged_at`` (-1 if none); :func:`edge_summary` reads it.
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    if method not in EDGE_METHODS:
        raise ValueError(f"method must be one of {', '.join(EDGE_METHODS)}; got {method!r}")
    eta = _checks.positive("eta", eta)
    every = _checks.integer("every", every, minimum=1)
    steps = _checks.integer("steps", steps, minimum=every)
    if steps % every:
        raise ValueError(f"steps must be a multiple of every = {every}; got {steps}")
    beta, beta1, beta2 = _unit("beta", beta), _unit("beta1", beta1), _unit("beta2", beta2)
    eps = _checks.positive("eps", eps)
    initial_scale = float(_checks.real_scalar("initial_scale", initial_scale, minimum=0.0))
    tolerance = _checks.positive("tolerance", tolerance)
    iters = _checks.integer("iters", iters, minimum=2)
    spec = _Method(method, beta, beta1, beta2, eps, initial_scale)
    rule = OptaxRule(LayerFlow(problem), spec)
    (reading, loss), bad_at = _readings(rule, spec, layers0, jnp.float64(eta), every, steps // every, iters)
    threshold = edge(method, eta, beta=beta, beta1=beta1)
    step = np.arange(steps // every + 1) * every
    bad_at = int(bad_at)
    ratio = np.asarray(reading) / threshold
    reached = (step < bad_at - 1) if bad_at >= 0 else np.ones(step.shape, bool)  # the next iterate admissible too
    hyper = ({"beta": beta} if method in ("heavy_ball", "nesterov") else
             {"beta1": beta1, "beta2": beta2, "eps": eps} if method == "adam" else
             {"decay": beta2, "eps": eps, "initial_scale": initial_scale} if method == "rmsprop" else {})
    return xr.Dataset({"ratio": (("step",), np.where(reached, ratio, np.nan)),
                       "loss": (("step",), np.where(reached | (step < max(bad_at, 0)), np.asarray(loss), np.nan))},
                      coords={"step": step},
                      attrs={"method": method, "eta": eta, "edge": threshold, "tolerance": tolerance,
                             "diverged_at": bad_at, "iters": iters, **hyper})


def _words(ds: xr.Dataset) -> str:
    m = ds.attrs["method"]
    hyper = {"heavy_ball": "beta = {beta:g}", "nesterov": "beta = {beta:g}",
             "adam": "beta1 = {beta1:g}, beta2 = {beta2:g}", "rmsprop": "decay = {decay:g}"}.get(m, "")
    inside = ", ".join(x for x in (f"eta = {ds.attrs['eta']:g}", hyper.format(**ds.attrs)) if x)
    return f"{m.replace('_', ' ')} ({inside})"


def edge_summary(ds: xr.Dataset) -> dict:
    """The plateau of a :func:`stability_edge` run by :data:`EDGE_RULE`: ``arrival`` (the step of the first reading
    at or above ``1 - tolerance`` after the start's transient), ``plateau`` (the median reading from there),
    ``low``/``high`` (their range), ``last`` (the last reading), ``verdict`` and ``rule``."""
    tol, bad_at = float(ds.attrs["tolerance"]), int(ds.attrs["diverged_at"])
    ratio, step = ds.ratio.values, ds.step.values
    row = {"method": _words(ds), "edge": float(ds.attrs["edge"]), "arrival": None, "plateau": None, "low": None,
           "high": None, "last": None, "rule": EDGE_RULE}
    if bad_at >= 0:
        return {**row, "verdict": f"diverged at step {bad_at}"}
    row["last"] = float(ratio[-1])
    settled = np.flatnonzero(ratio < 1.0 + tol)  # the start's transient ends at the first reading below 1 + tol
    at = np.flatnonzero((ratio >= 1.0 - tol) & (np.arange(ratio.size) >= (settled[0] if settled.size else ratio.size)))
    if at.size == 0:
        return {**row, "verdict": f"never reached the edge (largest reading {np.max(ratio):.3f} of it)"}
    tail = ratio[at[0]:]
    plateau = float(np.median(tail))
    row.update(arrival=int(step[at[0]]), plateau=plateau, low=float(tail.min()), high=float(tail.max()))
    if abs(plateau - 1.0) <= tol:
        verdict = f"held at the edge ({plateau:.3f} of it, within {tol:g})"
    else:
        verdict = f"{'above' if plateau > 1 else 'below'} the edge ({plateau:.3f} of it; the rule: within {tol:g})"
    return {**row, "verdict": verdict}


def edge_text(ds: xr.Dataset) -> str:
    """The summary in words: the method, its edge, the plateau with its range and the verdict."""
    row = edge_summary(ds)
    if row["plateau"] is None:
        return f"{row['method']}: edge {row['edge']:.4g}; {row['verdict']}"
    span = f"range {row['low']:.3f}-{row['high']:.3f}" if math.isfinite(row["low"]) else ""
    return (f"{row['method']}: edge {row['edge']:.4g}; reached at step {row['arrival']}, median reading "
            f"{row['plateau']:.3f} of the edge since ({span}, last {row['last']:.3f}); {row['verdict']}")
