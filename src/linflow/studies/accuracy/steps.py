""":func:`step_sizes`: an adaptive solver's accepted steps along the layer flow against ``3.5 / S(t)``."""

from __future__ import annotations


import numpy as np
import xarray as xr

from ...core import runs as _runs
from ...core.fields import layer_field
from ...core.integrate import SOLVERS, result_code
from ...core.problems import Problem
from ...core.trajectory import STATUSES




def step_sizes(problem: Problem, layers0, t1: float, *, solver: str = "tsit5", rtol: float = 1e-8,
               atol: float = 1e-11, max_steps: int = 50_000, lanczos_iters: int = 32) -> xr.Dataset:
    """Accepted step sizes of an adaptive solver along the layer flow, with ``3.5 / S(t)`` (stability limit).

    Explicit solvers settle near ``dt * S ~ 3.5`` once the flow is stability-limited (docs/math.md
    section 5). Saves every step (``max_steps`` rows), so keep ``max_steps`` moderate.
    """
    from ...core.curvature import sharpness

    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    spec = SOLVERS[solver]
    if not spec.adaptive:
        raise ValueError(f"step_sizes needs an adaptive solver, got {solver!r}")
    import diffrax

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: layer_field(a, y)), spec.make(), 0.0, t1, None, layers0, args=problem,
        saveat=diffrax.SaveAt(steps=True), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps, throw=False,
    )
    ts = np.asarray(sol.ts)
    keep = np.isfinite(ts)
    ts = ts[keep]
    layers = tuple(np.asarray(y)[keep] for y in sol.ys)
    dt = np.diff(np.concatenate([[0.0], ts]))
    every = max(1, len(ts) // 200)
    S = np.full(len(ts), np.nan)
    S[::every] = np.asarray(sharpness(problem, tuple(w[::every] for w in layers), iters=lanczos_iters))
    return xr.Dataset(
        {"dt": (("step",), dt), "sharpness": (("step",), S), "stability_dt": (("step",), 3.5 / S)},
        coords={"t": (("step",), ts)},
        attrs={"solver": solver, "rtol": rtol, "atol": atol, "status": STATUSES[int(result_code(sol.result))],
               "num_steps": int(sol.stats["num_steps"])},
    )
