"""What GD settles on at one learning rate, by stated rules: the period of its orbit, chaos, divergence."""

from __future__ import annotations

import numpy as np

__all__ = ["PERIODS", "PERIOD_TOL", "CHAOS_LYAPUNOV", "PERIOD_RULE", "ATTRACTOR_RULE", "period_of", "attractor_of"]

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
