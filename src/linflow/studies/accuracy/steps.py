""":func:`step_sizes`: an adaptive solver's accepted steps along the layer flow against ``3.5 / S(t)``."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import numpy as np
import xarray as xr

from ...core import runs as _runs
from ...core.curvature import sharpness
from ...core.fields import LayerFlow
from ...core.problems import Problem
from ...core.settings import SolverSettings, flat_solve, require_adaptive, result_code
from ...core.trajectory import STATUSES


@eqx.filter_jit
def _every_step(field: LayerFlow, layers0, t1, settings: SolverSettings):
    """The accepted steps' times and layers (``max_steps`` rows, ``inf`` after the last), the status code and the
    number of steps: the same solve path as every flow, saving every step."""
    sol, unravel = flat_solve(field, layers0, 0.0, t1, diffrax.SaveAt(steps=True), settings)
    return sol.ts, jax.vmap(unravel)(sol.ys), result_code(sol.result), sol.stats["num_steps"]


def step_sizes(problem: Problem, layers0, t1: float, *, solver: str = "tsit5", rtol: float = 1e-8,
               atol: float = 1e-11, max_steps: int = 50_000, lanczos_iters: int = 32) -> xr.Dataset:
    """Accepted step sizes of an adaptive solver along the layer flow, with ``3.5 / S(t)`` (stability limit).

    Explicit solvers settle near ``dt * S ~ 3.5`` once the flow is stability-limited (docs/math.md
    section 5). Saves every step (``max_steps`` rows), so keep ``max_steps`` moderate.
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    require_adaptive("step_sizes", solver)
    settings = SolverSettings(solver, rtol=rtol, atol=atol, max_steps=max_steps)
    ts, layers, code, num_steps = _every_step(LayerFlow(problem), layers0, float(t1), settings)
    ts = np.asarray(ts)
    keep = np.isfinite(ts)
    ts = ts[keep]
    layers = tuple(np.asarray(y)[keep] for y in layers)
    dt = np.diff(np.concatenate([[0.0], ts]))
    every = max(1, len(ts) // 200)
    S = np.full(len(ts), np.nan)
    S[::every] = np.asarray(sharpness(problem, tuple(w[::every] for w in layers), iters=lanczos_iters))
    return xr.Dataset(
        {"dt": (("step",), dt), "sharpness": (("step",), S), "stability_dt": (("step",), 3.5 / S)},
        coords={"t": (("step",), ts)},
        attrs={"solver": settings.name, "rtol": rtol, "atol": atol, "status": STATUSES[int(code)],
               "num_steps": int(num_steps)},
    )
