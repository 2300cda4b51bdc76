"""The map past the threshold: GD's attractor at every learning rate, with the flow's threshold ``2 / S(phi(w0))``
and the central flow's reach marked (docs/math.md section 11)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.flatten_util import ravel_pytree

from ...core import init
from ...core.attractors import ATTRACTOR_RULE, PERIOD_RULE, attractor_of, orbits, period_of
from ...core.central import DENSE_MAX_PARAMS, central_flow
from ...core.curvature import sharpness
from ...core.fields import network_gradient
from ...core.gfs import gfs_limit
from ...core.runs import check_problem
from ..comparison import EOS_TOL

__all__ = ["atlas", "DEFAULT_RATIOS", "CENTRAL_RULE", "TRANSIENT_RULE"]

#: the default grid: eta / eta_crit from 0.9 to 2.1 (eta_crit = 2 / S(phi(w0)), the flow's limit's threshold)
DEFAULT_RATIOS = np.round(np.linspace(0.9, 2.1, 241), 6)
CENTRAL_RULE = (f"the central flow predicts GD at eta where the end-to-end matrix of GD's mean over its last recorded "
                f"iterates (the midpoint of a period-2 orbit) is within {EOS_TOL:g} (relative) of the central flow's at "
                f"the same flow time")
TOO_LARGE = ("central flow not run: {params} parameters (above {limit} its sharpness comes from Lanczos at every "
             "solver step, too slow for the map's horizon)")
TRANSIENT_RULE = ("GD runs `transient` steps unrecorded, then `record` steps recorded; the period is read on the last "
                  "`window` of them, the Lyapunov exponent averaged over all `record`")


def _chunks(n: int, size: int):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def atlas(problem, layers0, etas=None, *, ratios=None, transient: int = 20_000, record: int = 4_000, window: int = 128,
          sharp_window: int = 4, central_points: int = 8, chunk: int = 64, seed: int = 0, progress=None) -> xr.Dataset:
    """GD's attractor for every ``eta`` (or ``ratios`` times ``eta_crit = 2 / S(phi(w0))``; default
    :data:`DEFAULT_RATIOS`) from ``layers0``, batched over the etas (:func:`linflow.core.attractors.orbits`).

    Per eta: ``period`` (0 for none: :data:`~linflow.core.attractors.PERIOD_RULE`), ``lyapunov`` (largest
    exponent per step), ``diverged_at`` (-1 if never), ``attractor`` (in words:
    :data:`~linflow.core.attractors.ATTRACTOR_RULE`), the last ``window`` iterates' ``loss`` and
    ``projection`` (``u_1^T W_e v_1`` on the top singular pair of the flow's limit), GD's ``sharpness`` at its last
    ``sharp_window`` iterates, and, at ``central_points`` etas above ``eta_crit``, the distance of GD's mean to the
    central flow (:data:`CENTRAL_RULE`; ``central_reason`` says why where it was not measured).
    """
    problem = check_problem(problem)
    layers0 = tuple(jnp.asarray(w) for w in layers0)
    if not any(bool(jnp.any(g != 0)) for g in network_gradient(problem, layers0)):
        raise ValueError("the start is a critical point of the loss (its gradient is exactly 0, e.g. every layer 0 at "
                         "depth >= 2: a saddle): GD and the flow never leave it, so the map has no attractor to "
                         "measure; start away from it (a nonzero scale)")
    limit = gfs_limit(problem, layers0)
    if limit["status"] != "ok":
        raise RuntimeError(f"the gradient flow from the start did not converge ({limit['status']}): no threshold to "
                           f"measure eta against")
    s_flow = float(sharpness(problem, limit["layers"]))
    eta_crit = 2.0 / s_flow
    if etas is not None and ratios is not None:
        raise ValueError("give etas or ratios, not both")
    etas = np.asarray(etas if etas is not None else eta_crit * (DEFAULT_RATIOS if ratios is None else
                                                                   np.asarray(ratios, float)), float)
    if etas.ndim != 1 or etas.size == 0 or np.any(~np.isfinite(etas)) or np.any(etas <= 0):
        raise ValueError(f"etas must be a non-empty list of positive learning rates, got {etas}")
    if min(transient, record) < 1 or not 2 * max(sharp_window, 64) <= window <= record:
        raise ValueError(f"need transient >= 1, record >= window >= 128 and window >= 2 sharp_window; got transient="
                         f"{transient}, record={record}, window={window}, sharp_window={sharp_window}")
    tick = progress or (lambda label: None)
    flat0, unravel = ravel_pytree(layers0)
    direction = jax.random.normal(jax.random.PRNGKey(seed), flat0.shape)
    parts = []
    for sl in _chunks(len(etas), chunk):
        parts.append(jax.device_get(orbits(problem, layers0, jnp.asarray(etas[sl]), direction, transient=transient,
                                           record=record, window=window)))
        tick(f"etas {sl.start + 1}-{sl.stop} of {len(etas)}")
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return _dataset(problem, layers0, etas, eta_crit, s_flow, limit, out, unravel, sharp_window, central_points,
                    transient + record, (transient, record, window), tick)


def _end_to_end(unravel, flat: np.ndarray) -> np.ndarray:
    return np.asarray(jax.vmap(lambda y: init.end_to_end(unravel(y)))(jnp.asarray(flat)))


def _dataset(problem, layers0, etas, eta_crit, s_flow, limit, out, unravel, sharp_window, central_points, steps,
             lengths, tick) -> xr.Dataset:
    E, W, P = out["states"].shape
    U, _, Vt = np.linalg.svd(np.asarray(init.end_to_end(limit["layers"])))
    u1, v1 = U[:, 0], Vt[0]
    W_e = _end_to_end(unravel, out["states"].reshape(E * W, P))
    W_e = W_e.reshape(E, W, *W_e.shape[1:])
    projection = np.einsum("i,ewij,j->ew", u1, W_e, v1)
    bad = out["diverged_at"].astype(int)
    period = np.array([period_of(s) if b < 0 else 0 for s, b in zip(out["states"], bad)])  # frozen: no orbit
    attractor = np.array([attractor_of(p, lam, b) for p, lam, b in zip(period, out["lyapunov"], bad)])
    last = out["states"][:, -sharp_window:].reshape(E * sharp_window, P)
    sharp = np.array(sharpness(problem, tuple(jax.vmap(unravel)(jnp.asarray(last))))).reshape(E, sharp_window)
    diverged = bad >= 0
    loss = np.where(diverged[:, None], np.nan, out["loss"][:, -W:])
    projection[diverged], sharp[diverged] = np.nan, np.nan
    lyapunov = np.where(diverged, np.nan, out["lyapunov"])
    deviation, reason = _central(problem, layers0, etas, eta_crit, out, unravel, diverged, central_points, steps, tick)
    transient, record, window = lengths
    return xr.Dataset(
        {"period": (("eta",), period), "lyapunov": (("eta",), lyapunov), "diverged_at": (("eta",), bad),
         "attractor": (("eta",), attractor.astype(str)), "loss": (("eta", "iterate"), loss),
         "projection": (("eta", "iterate"), projection), "sharpness": (("eta", "last"), sharp),
         "central_deviation_rel": (("eta",), deviation), "central_reason": (("eta",), reason.astype(str))},
        coords={"eta": etas, "ratio": ("eta", etas / eta_crit), "iterate": np.arange(steps - W, steps),
                "last": np.arange(steps - sharp_window, steps)},
        attrs={"eta_crit": eta_crit, "flow_limit_sharpness": s_flow, "period_rule": PERIOD_RULE,
               "attractor_rule": ATTRACTOR_RULE, "central_rule": CENTRAL_RULE, "transient": transient,
               "record": record, "window": window,
               "transient_rule": TRANSIENT_RULE.replace("`transient`", str(transient)).replace(
                   "`record`", str(record)).replace("`window`", str(window)),
               "lyapunov": "largest Lyapunov exponent of the GD map per step (Benettin: a tangent vector carried by "
                           "JVPs, renormalized each step)",
               "projection": "u_1^T W_e v_1, (u_1, v_1) the top singular pair of the gradient flow's limit from the start",
               "eta_crit_rule": "2 / S(phi(w0)), S(phi(w0)) the sharpness of the gradient flow's limit from the same start"},
    )


def _central(problem, layers0, etas, eta_crit, out, unravel, diverged, points, steps, tick):
    """The central flow at ``points`` etas above ``eta_crit`` where GD did not diverge (evenly among them), against
    GD's mean over its last recorded iterates."""
    deviation = np.full(len(etas), np.nan)
    reason = np.full(len(etas), "not run at this eta", dtype=object)
    above = np.flatnonzero((etas > eta_crit) & ~diverged)
    reason[(etas <= eta_crit)] = "below eta_crit: GD follows the gradient flow"
    reason[diverged] = "GD diverged"
    params = out["states"].shape[-1]
    if params > DENSE_MAX_PARAMS:  # Lanczos at every step of a horizon of steps * eta: hours, not minutes
        reason[above] = TOO_LARGE.format(params=params, limit=DENSE_MAX_PARAMS)
        return deviation, reason
    if points < 1 or above.size == 0:
        return deviation, reason
    for i in above[np.unique(np.linspace(0, above.size - 1, min(points, above.size)).round().astype(int))]:
        try:
            cf = central_flow(problem, layers0, float(etas[i]), steps * float(etas[i]), n_save=2, max_steps=200_000)
        except ValueError as exc:
            reason[i] = f"central flow not applicable: {exc}"
            continue
        if cf.status != "ok":
            reason[i] = f"central flow stopped: {cf.message}"
            continue
        mean = unravel(jnp.asarray(out["states"][i].mean(axis=0)))
        W_gd, W_cf = np.asarray(init.end_to_end(mean)), np.asarray(cf.end_to_end[-1])
        deviation[i] = float(np.linalg.norm(W_gd - W_cf) / np.linalg.norm(W_cf))
        reason[i] = "predicts GD" if deviation[i] <= EOS_TOL else "does not predict GD"
        tick(f"central flow at eta {etas[i]:.4g}")
    return deviation, reason
