"""The gradient flow's solution from a point, and its sharpness: the GFS sharpness (docs/math.md section 11).

``phi(w)`` is the limit of the layer flow ``dw/dt = -grad L^N(w)`` started at ``w``; ``S_GFS(w) = S(phi(w))``, the
largest Hessian eigenvalue there (Kreisler, Nacson, Soudry & Carmon, ICML 2023). The flow is integrated with an
adaptive solver until ``||grad L^N|| <= gtol`` (a diffrax event), batched over a leading axis of the layers
(``jax.vmap`` of one compiled solve). For depth 2 and width 1 (``u v``, target ``y``, squared loss) the flow
conserves ``c = u^2 - v^2`` and ``phi`` has the closed form ``u^2 = (c + sqrt(c^2 + 4 y^2)) / 2``,
``v^2 = (sqrt(c^2 + 4 y^2) - c) / 2``, with ``S = a (u^2 + v^2) = a sqrt(c^2 + 4 y^2)`` (``a`` the input's second
moment): the tests check against it.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import runs as _runs
from .curvature import sharpness
from .fields import LayerFlow
from .settings import SolverSettings, flat_solve, require_adaptive, result_code
from .trajectory import STATUSES

__all__ = ["gfs_limit", "gfs_sharpness", "GFS_SETTINGS", "NOT_CONVERGED"]

#: the flow to the solution: Tsit5 at tight tolerances (the sharpness of the limit is read to ~1e-8)
NOT_CONVERGED = "not converged by t1"
GFS_SETTINGS = SolverSettings("tsit5", rtol=1e-10, atol=1e-12, max_steps=1_000_000)


@eqx.filter_jit
def _limit(problem, layers, t1, gtol, settings: SolverSettings):
    field = LayerFlow(problem)
    unravel_one = ravel_pytree(tuple(w[0] for w in layers))[1]

    def converged(t, y, args, **kwargs):
        return jnp.linalg.norm(ravel_pytree(field(t, unravel_one(y), None))[0]) <= gtol

    def one(ls):
        sol, unravel = flat_solve(field, ls, 0.0, t1, diffrax.SaveAt(t1=True), settings,
                                  event=diffrax.Event(converged))
        reached = sol.result == diffrax.RESULTS.event_occurred
        code = jnp.where(reached, 0, jnp.where(sol.result == diffrax.RESULTS.successful, -1, result_code(sol.result)))
        return unravel(sol.ys[-1]), sol.ts[-1], code, sol.stats["num_steps"]

    return jax.vmap(one)(layers)


def gfs_limit(problem, layers, *, t1: float = 1e5, gtol: float = 1e-8, settings: SolverSettings | None = None) -> dict:
    """The gradient flow's limit ``phi(w)`` from ``layers`` (a leading batch axis optional): integrated until
    ``||grad L^N|| <= gtol`` or the flow time ``t1``.

    Returns ``{"layers": the limits (batched like the input), "time": the flow time reached, "status": one word per
    point ("ok", or why not: :data:`NOT_CONVERGED` where the gradient stayed above gtol until t1, "max_steps",
    ...),
    "num_steps"}``.
    """
    problem = _runs.check_problem(problem)
    layers = tuple(jnp.asarray(w) for w in layers)
    batched = layers[0].ndim == 3
    if not batched:
        _runs.check_layers(problem, layers)
        layers = tuple(w[None] for w in layers)
    else:
        _runs.check_layers(problem, tuple(w[0] for w in layers))
    if not (gtol > 0 and t1 > 0):
        raise ValueError(f"gtol and t1 must be positive, got gtol={gtol!r}, t1={t1!r}")
    settings = settings or GFS_SETTINGS
    require_adaptive("gfs_limit", settings.solver)
    limit, time, code, steps = _limit(problem, layers, jnp.asarray(float(t1)), jnp.asarray(float(gtol)), settings)
    status = np.array([NOT_CONVERGED if int(c) < 0 else STATUSES[int(c)] for c in np.asarray(code)])
    if not batched:
        limit, time, status, steps = tuple(w[0] for w in limit), time[0], status[0], steps[0]
    return {"layers": limit, "time": time, "status": status, "num_steps": steps}


def gfs_sharpness(problem, layers, *, t1: float = 1e5, gtol: float = 1e-8, settings: SolverSettings | None = None,
                  iters: int = 64) -> jax.Array:
    """``S(phi(w))``: the sharpness of the gradient flow's limit from ``layers`` (a leading batch axis optional;
    :func:`gfs_limit`, then :func:`linflow.sharpness` there).

    Raises RuntimeError naming the points (batch indices) whose flow did not converge, with why: a sharpness of a
    point that is not a limit is never returned.

    Examples:
        >>> import numpy as np, linflow
        >>> prob = linflow.Problem(np.array([[1.0]]), np.array([1.0]))   # L = (1/2)(u v - 1)^2
        >>> w = (np.array([[0.5]]), np.array([[0.3]]))                   # c = u^2 - v^2 = 0.16 (v is layer 2)
        >>> round(float(linflow.gfs_sharpness(prob, w)), 6), round(float(np.hypot(0.16, 2.0)), 6)  # sqrt(c^2 + 4)
        (2.00639, 2.00639)
    """
    out = gfs_limit(problem, layers, t1=t1, gtol=gtol, settings=settings)
    status = np.atleast_1d(out["status"])
    bad = np.flatnonzero(status != "ok")
    if bad.size:
        where = ", ".join(f"{int(i)} ({status[i]})" for i in bad[:10]) + (" ..." if bad.size > 10 else "")
        raise RuntimeError(f"the gradient flow did not reach ||grad|| <= {gtol:g} by t = {t1:g} from {bad.size} "
                           f"point(s): {where}; raise t1 or loosen gtol")
    return sharpness(problem, out["layers"], iters=iters)
