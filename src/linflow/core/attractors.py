"""GD's attractor: its orbit for many learning rates in one compiled call (after a transient, with its largest
Lyapunov exponent and where it diverged), and what it settled on by stated rules: the period, chaos, divergence
(docs/math.md section 11).

For each ``eta`` the GD map ``F(w) = w - eta grad L(w)`` (``L`` the network loss, weight decay included) is iterated
``transient + record`` times from the same start, ``jax.vmap`` over the etas inside one ``lax.scan``. Alongside the
iterate, a tangent vector ``v`` is carried through the map's Jacobian, ``v <- DF(w) v = v - eta H(w) v`` (a JVP of
the gradient: no Hessian formed), renormalized at every step; the largest Lyapunov exponent is the mean of
``log ||DF(w_k) v_k||`` over the recording steps (Benettin et al. 1980): positive on a chaotic attractor, negative
on a stable periodic orbit, zero along a neutral direction (a manifold of minima, the layers' rescalings).
A step whose iterate is not finite, or whose loss exceeds :data:`BLOWUP` times the start's, marks the run
``diverged`` at that step and freezes it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .descent import AbstractRule, iterate, last
from .fields import network_gradient, network_loss

__all__ = ["orbits", "map_orbits", "TangentRule",
           "period_of", "attractor_of", "BLOWUP", "PERIODS", "PERIOD_TOL", "CHAOS_LYAPUNOV",
           "PERIOD_RULE", "ATTRACTOR_RULE"]


BLOWUP = 1e12


class TangentRule(AbstractRule):
    r"""A map $y \mapsto F(y) = $ ``step(y, param)`` carrying a unit tangent vector through its Jacobian,
    $v \leftarrow DF(y) v / \lVert DF(y) v \rVert$ (``jax.jvp``: no Jacobian formed), and the running sum of
    $\log \lVert DF(y_k) v_k \rVert$ from step ``transient`` on (Benettin et al. 1980; docs/math.md section 11).

    State: ``(y, v, sum of logs, steps done, last norm)``. A state is admissible when ``y`` and the norm are finite,
    the norm is positive and ``bad(y)`` is false."""

    step: Callable = eqx.field(static=True)
    bad: Callable = eqx.field(static=True)
    transient: int = eqx.field(static=True)
    direction: jax.Array

    def init(self, y0, eta=None):
        return y0, self.direction / jnp.linalg.norm(self.direction), jnp.asarray(0.0), jnp.asarray(0), jnp.asarray(1.0)

    def admissible(self, state) -> jax.Array:
        y, _, _, _, norm = state
        return jnp.all(jnp.isfinite(y)) & jnp.isfinite(norm) & (norm > 0) & ~self.bad(y)

    def __call__(self, state, param):
        y, v, logs, k, _ = state
        y_next, Jv = jax.jvp(lambda z: self.step(z, param), (y,), (v,))
        norm = jnp.linalg.norm(Jv)
        safe = jnp.where(jnp.isfinite(norm) & (norm > 0), norm, 1.0)
        logs = logs + jnp.where(k >= self.transient, jnp.log(safe), 0.0)
        return y_next, Jv / safe, logs, k + 1, norm


def map_orbits(step, y0, params, direction, *, transient: int, record: int, window: int, observe=None,
               bad=None) -> dict:
    """Any map ``y -> step(y, param)`` on flat states, iterated from ``y0`` at every ``param`` of ``params`` (shape
    ``(E,)``, ``jax.vmap`` over them; trace it under ``jax.jit`` for speed) on the discrete engine
    (:func:`linflow.core.descent.iterate` of a :class:`TangentRule`): ``{"states": (E, window, P)`` the last
    ``window`` iterates, ``"observed": (E, record)`` ``observe(y)`` at every recorded iterate (before its step; the
    norm of ``y`` by default), ``"lyapunov": (E,)`` the largest Lyapunov exponent per step over the recorded steps,
    ``"diverged_at": (E,)`` the first step whose next iterate is not finite or is ``bad`` (``-1`` if none; the run is
    frozen there), ``"final": (E, P)`` the last iterate}``. ``direction`` starts the tangent vector (a flat ``(P,)``),
    carried by ``jax.jvp`` of the step and renormalized every step."""
    observe = observe or jnp.linalg.norm
    if not (transient >= 0 and record >= window >= 1):
        raise ValueError(f"need transient >= 0 and record >= window >= 1; got {transient}, {record}, {window}")
    rule = TangentRule(step, bad or (lambda y: False), transient, jnp.asarray(direction))

    def one(param):
        state, bad_at = rule.init(y0), jnp.asarray(-1)
        if transient:
            saves, bad_at = iterate(rule, state, param, transient, 1)
            state = last(saves)
        kept, bad_rec = iterate(rule, state, param, 1, record, start=transient,
                                keep=lambda s: (observe(s[0]), s[0], s[2]))
        seen, ys, logs = kept
        at = jnp.where(bad_at >= 0, bad_at, bad_rec) - 1
        # the states are those after each step: the window ends with the final iterate
        return {"states": ys[-window:], "observed": seen[:record], "lyapunov": logs[-1] / record,
                "diverged_at": jnp.where(at >= 0, at, -1), "final": ys[-1]}

    return jax.vmap(one)(jnp.asarray(params))


@functools.partial(jax.jit, static_argnames=("transient", "record", "window"))
def orbits(problem, layers0, etas, direction, *, transient: int, record: int, window: int) -> dict:
    """GD from ``layers0`` at every ``eta`` of ``etas`` (:func:`map_orbits` of ``F(w) = w - eta grad L^N(w)``):
    ``{"states", "loss" (the network loss at each recorded iterate), "lyapunov", "diverged_at", "final"}``; a loss
    above :data:`BLOWUP` times the start's counts as divergence."""
    flat0, unravel = ravel_pytree(tuple(layers0))
    scale = jnp.maximum(network_loss(problem, tuple(layers0)), 1e-300)

    def loss(y):
        return network_loss(problem, unravel(y))

    def gd(y, eta):
        return y - eta * ravel_pytree(network_gradient(problem, unravel(y)))[0]

    out = map_orbits(gd, flat0, etas, direction, transient=transient, record=record, window=window, observe=loss,
                     bad=lambda y: ~(loss(y) <= BLOWUP * scale))
    out["loss"] = out.pop("observed")
    return out


PERIODS = tuple(range(1, 65))
PERIOD_TOL = 1e-6
CHAOS_LYAPUNOV = 1e-3
PERIOD_RULE = (f"the period is the smallest p in 1..{PERIODS[-1]} with max_k ||w_(k+p) - w_k|| <= "
               f"{PERIOD_TOL:g} max_k ||w_k|| over the last recorded iterates (the full state, not the loss: the two "
               f"points of a period-2 orbit may have one loss); none otherwise")
ATTRACTOR_RULE = (f"diverged: a non-finite iterate or a loss above 1e12 times the start's; otherwise 'period p' (p = 1: "
                  f"'fixed point') when a period is found; 'chaotic' when none is and the largest Lyapunov exponent is "
                  f"above {CHAOS_LYAPUNOV:g} per step; 'unsettled' when none is and it is not (a long transient near a "
                  f"bifurcation, or an orbit of a longer period)")


def period_of(states: np.ndarray, tol: float = PERIOD_TOL) -> int:
    """The period (:data:`PERIOD_RULE`) of the flat iterates ``states`` (``(window, P)``); 0 for none."""
    scale = float(np.max(np.linalg.norm(states, axis=1)))
    for p in PERIODS:
        if p < len(states) and np.max(np.linalg.norm(states[p:] - states[:-p], axis=1)) <= tol * max(scale, 1e-300):
            return p
    return 0


def attractor_of(period: int, lyapunov: float, diverged_at: int) -> str:
    """The attractor in words (:data:`ATTRACTOR_RULE`)."""
    if diverged_at >= 0:
        return "diverged"
    if period == 1:
        return "fixed point"
    if period > 1:
        return f"period {period}"
    return "chaotic" if lyapunov > CHAOS_LYAPUNOV else "unsettled"
