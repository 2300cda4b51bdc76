"""Gradient descent from a small start against the flow: the shift of each escape with the step eta (its fitted
order), plateaus that GD merges, the balancedness GD loses on the way, and the cost (GD's steps against an adaptive
solver's to the same escapes)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ...core import init, problems
from ...core.descent import AbstractRule, EulerRule, iterate, last
from ...core.fields import LayerFlow
from ...core.settings import SolverSettings, with_newton
from .flows import ESCAPE_RULE, STARTS, escape_times, exact_escape_times, start_layers

__all__ = ["gd_escapes", "MERGE_RULE", "ORDER_RULE"]

HORIZON = 1.2  # GD runs to 1.2 times the flow's last escape: a run that diverges after escaping is caught
MERGE_RULE = ("GD merges plateau j (between escapes j and j + 1) when it spends less than 10% of the flow's time "
              "there")
ORDER_RULE = "least-squares slope of log |t_GD - t_flow| against log eta over the etas whose GD run reached every escape"


class PassageRule(AbstractRule):
    """GD on the layers (the engine's Euler step) observing the passages of ``W_e``'s leading singular values through
    ``levels``: an observer of the step, reduced on the fly.

    State: ``(layers, steps done, singular values, passage times, fell below L(0), unstable step, loss)``. A passage
    between iterates ``k`` and ``k + 1`` is placed at ``t = eta (k + f)``, ``f`` linear in the singular value;
    the unstable step is the first whose loss is above ``L(0)`` after an earlier one fell below it (-1: none). A
    step whose singular values or loss are not finite is inadmissible: the engine stops there.
    """

    field: LayerFlow
    levels: jax.Array
    loss0: jax.Array

    def values(self, y):
        return jnp.linalg.svd(init.end_to_end(y), compute_uv=False)[: self.levels.shape[0]]

    def init(self, y0, eta=None):
        return (y0, jnp.asarray(0), self.values(y0), jnp.full(self.levels.shape[0], jnp.inf), jnp.asarray(False),
                jnp.asarray(-1), self.loss0)

    def params(self, state):
        return state[0]

    def admissible(self, state) -> jax.Array:
        return jnp.all(jnp.isfinite(state[2])) & jnp.isfinite(state[6])

    def __call__(self, state, eta):
        y, k, sv, times, below, unstable_at, _ = state
        y1 = EulerRule(self.field)(y, eta)
        sv1 = self.values(y1)
        loss = self.field.problem.loss(init.end_to_end(y1))
        f = jnp.clip((self.levels - sv) / jnp.where(sv1 > sv, sv1 - sv, 1.0), 0.0, 1.0)
        times = jnp.where(jnp.isinf(times) & (sv1 >= self.levels), eta * (k + f), times)
        unstable_at = jnp.where((unstable_at < 0) & below & (loss > self.loss0), k + 1, unstable_at)
        return y1, k + 1, sv1, times, below | (loss < self.loss0), unstable_at, loss


@eqx.filter_jit
def _gd_passages(problem, layers0, eta, levels, max_steps):
    """GD for ``max_steps`` steps or to an inadmissible one (:class:`PassageRule` on the engine):
    ``(times, steps, finite, unstable_at, last layers)``."""
    rule = PassageRule(LayerFlow(problem), levels, problem.loss(init.end_to_end(layers0)))
    saves, bad_at = iterate(rule, rule.init(layers0), eta, max_steps, 1)
    y, k, _, times, _, unstable_at, _ = last(saves)
    return times, jnp.where(bad_at >= 0, bad_at, k), bad_at < 0, unstable_at, y


def _status(times, k, finite, unstable_at, eta) -> str:
    if not finite:
        return f"diverged at step {k} (t = {k * eta:.6g})"
    if unstable_at >= 0:
        return f"unstable from step {unstable_at}: the loss rose above L(0) after falling below it"
    if not np.all(np.isfinite(times)):
        return f"not every escape within {k} steps (t = {k * eta:.6g})"
    return "ok"


def gd_escapes(singular_values=(3.0, 1.0, 0.3), depth: int = 3, alpha: float = 1e-6, etas=(0.1, 0.05, 0.02, 0.01),
               *, seed: int = 0, max_steps: int = 5_000_000, solvers=("tsit5", "kvaerno5", "kvaerno5-newton"),
               start: str = "aligned") -> xr.Dataset:
    """GD with each step ``eta`` from a small start against the flow's escapes: the closed form from the aligned start
    (``start='aligned'``), the layer flow's (Tsit5, rtol 1e-10, located by events) from the random one
    (``'random'``: balanced layers, every singular value ``alpha``, random orientation; there GD's imbalance grows
    from zero while the flow's stays zero).

    Per eta: GD run to ``1.2`` times the flow's last escape (a non-finite step there: ``diverged``; a loss above
    ``L(0)`` after falling below it: ``unstable``; such a run is excluded from every fit and reported in words), its
    escape times (:data:`linflow.studies.saddles.ESCAPE_RULE`, interpolated between iterates), their
    shift from the flow's, GD's plateau durations and the plateaus it merges (:data:`MERGE_RULE`), the imbalance
    ``max_j ||D_j||_F / max_j ||W_j||_F^2`` at the horizon (the flow conserves ``D_j = 0``), the steps to its last escape; per
    mode the fitted order of the shift in eta (:data:`ORDER_RULE`); and the cost: each adaptive solver's steps (at
    rtol 1e-8, atol 1e-10) along the layer flow to the same escapes, and GD's steps over them (``name-newton``: the
    implicit solver ``name`` with Newton's method for its stages, :func:`linflow.core.settings.with_newton`).
    """
    s = np.sort(np.asarray(singular_values, dtype=float))[::-1]
    problem = problems.whitened(s, seed=seed)
    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    layers0 = start_layers(problem, depth, alpha, start, seed)
    flow_t = exact_escape_times(s, alpha, depth)
    if start == "random":
        ref = escape_times(problem, layers0, 20.0 * flow_t[-1])
        if ref["status"] != "ok" or not np.all(np.isfinite(ref["times"])):
            raise RuntimeError(f"the flow from the random start did not reach every escape: {ref['message']}")
        flow_t = ref["times"]
    etas = np.sort(np.asarray(etas, dtype=float))[::-1]
    if etas.size == 0 or np.any(etas <= 0):
        raise ValueError(f"etas must be positive learning rates, got {etas}")
    horizon = HORIZON * flow_t[-1]
    runs = [_gd_passages(problem, layers0, jnp.asarray(e), jnp.asarray(s / 2),
                         jnp.asarray(int(min(max_steps, np.ceil(horizon / e))))) for e in etas]  # one compilation
    times, steps, finite, unstable_at = (np.array([np.asarray(r[i]) for r in runs]) for i in range(4))
    last = tuple(jnp.stack([r[4][j] for r in runs]) for j in range(depth))
    status = np.array([_status(*row) for row in zip(times, steps, finite, unstable_at, etas)])
    steps = np.array([int(np.ceil(t[-1] / e)) if np.isfinite(t[-1]) else k for t, k, e in zip(times, steps, etas)])
    imbalance = np.asarray(init.imbalance(last)) / np.max([np.max(np.sum(np.asarray(w) ** 2, axis=(1, 2)))
                                                           for w in last], axis=0)
    shift = times - flow_t[None]
    gd_plateau, flow_plateau = np.diff(times, axis=1), np.diff(flow_t)
    cost = {}
    for name in solvers:
        solver = with_newton(name.removesuffix("-newton")) if name.endswith("-newton") else name
        out = escape_times(problem, layers0, 1.2 * flow_t[-1], settings=SolverSettings(solver, rtol=1e-8, atol=1e-10,
                                                                                     max_steps=max_steps))
        cost[name] = out["num_steps"] if out["status"] == "ok" else -1
    ok = status == "ok"
    order = [float(np.polyfit(np.log(etas[ok]), np.log(np.abs(shift[ok, i])), 1)[0]) if ok.sum() >= 2 else np.nan
             for i in range(len(s))]
    return xr.Dataset(
        {"gd_escape_time": (("eta", "mode"), times), "flow_escape_time": (("mode",), flow_t),
         "escape_shift": (("eta", "mode"), shift), "relative_escape_shift": (("eta", "mode"), shift / flow_t[None]),
         "shift_order": (("mode",), np.asarray(order)),
         "gd_plateau": (("eta", "plateau"), gd_plateau), "flow_plateau": (("plateau",), flow_plateau),
         "merged": (("eta", "plateau"), gd_plateau < 0.1 * flow_plateau[None]),
         "gd_steps": (("eta",), steps), "status": (("eta",), status), "imbalance": (("eta",), imbalance),
         "solver_steps": (("solver",), np.array([cost[n] for n in solvers])),
         "cost_ratio": (("eta", "solver"), steps[:, None] / np.array([max(cost[n], 1) for n in solvers])[None])},
        coords={"eta": etas, "mode": np.arange(1, len(s) + 1), "plateau": np.arange(1, len(s)),
                "solver": list(solvers), "singular_value": ("mode", s)},
        attrs={"escape_rule": ESCAPE_RULE, "merge_rule": MERGE_RULE, "order_rule": ORDER_RULE, "depth": depth,
               "alpha": alpha, "problem": f"whitened regression, target singular values {', '.join(f'{v:g}' for v in s)}",
               "start": start, "flow_reference": "closed form" if start == "aligned" else "the layer flow (tsit5, "
                                                                                            "rtol 1e-10, atol 1e-12)",
               "solver_tolerances": "rtol 1e-8, atol 1e-10",
               "cost": "GD's steps to its last escape over the solver's steps to the flow's last escape"},
    )
