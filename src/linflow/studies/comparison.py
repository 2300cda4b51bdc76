r"""Where the small-learning-rate assumption breaks: gradient descent against the flows, measured.

:func:`compare` runs, on one time grid ``t = linspace(0, t1, points)`` and for every learning rate
``eta`` (each dividing the grid spacing, since GD iterate ``k`` sits at ``t = k eta``):

* the layer gradient flow and the end-to-end flow (once; they do not depend on ``eta``);
* gradient descent on the layers and the end-to-end update of ACH18 Eq. 10 (all etas batched in one
  compiled computation, a masked loop per eta);
* the first- and second-order modified flows of GD (batched over eta), for the etas below the
  stability threshold predicted from the flow;
* along the layer flow: the sharpness ``S(t)`` and smallest Hessian eigenvalue, ``||H g||``, and the
  first-order error bound of Elkabetz & Cohen (2021),
  ``(eta/2) int_0^t exp(int_{t'}^t -lambda_min) ||H g||(t') dt'`` (trapezoid rule on the grid);
* along GD: the balancedness ``max_j ||D_j||`` and its exact prediction by the accumulated
  ``eta^2`` term, ``D_j <- a^2 D_j + eta^2 (G_{j+1}^T G_{j+1} - G_j G_j^T)``, ``a = 1 - eta lambda``.

* past the threshold (``central=True``, small networks): the central flow of GD for each eta above the
  predicted threshold (:func:`linflow.central_flow`), GD's sharpness at the mean of consecutive iterates,
  and a regime per eta (:data:`REGIMES`, rule in ``ds.attrs["regime_rule"]``).

Then, across etas: the fitted order of the error against eta for the flow and each modified flow
(on the asymptotic range, reported), the breakdown eta (largest eta whose relative deviation stays
under ``tol``), the stability threshold ``2 / max_t S(t)`` predicted from the flow, and the smallest
eta at which GD actually diverged or settled into an oscillation. docs/math.md sections 2 and 5.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..core import checks as _checks, runs as _runs
from ..core.text import cell
from ..core.central import central_flow
from ..core.curvature import hessian_extremes, sharpness
from ..core.descent import EulerRule, descend_on_grid, iterate, steps_per_save
from ..core.fields import MODIFIED_FIELDS, EndToEndFlow, LayerFlow, hessian_vector_product, layer_gradients, network_gradient
from ..core.init import balancedness, end_to_end, imbalance
from ..core.integrate import end_to_end_flow, gradient_flow, modified_flow
from ..core.problems import Problem
from ..core.trajectory import descent_message

__all__ = ["compare", "fit_order", "summary", "report", "summary_text", "REGIMES"]

#: regimes of GD per learning rate (``ds.regime``); the rule is :data:`REGIME_RULE`
REGIMES = ("follows the flow", "edge of stability", "catapult", "diverged", "unclassified")
EOS_TOL = 0.05  # |S(GD midpoint) * eta / 2 - 1| below this at the end: GD sits at the edge of stability
REGIME_RULE = (
    "diverged: GD's iterate became non-finite; follows the flow: eta < 2 / max_t S(t) along the gradient flow "
    "and GD neither diverged nor oscillated; catapult: GD's loss rose above its initial value at some save, then "
    f"GD ended with its sharpness more than {EOS_TOL:g} (relative) below 2 / eta or more than {EOS_TOL:g} away from "
    "the central flow; edge of stability: at the end GD (the mean of its last two iterates) is within "
    f"{EOS_TOL:g} (relative distance of W_e) of the central flow, or, where the central flow was not run, its "
    f"sharpness is within {EOS_TOL:g} (relative) of 2 / eta; unclassified: none of these")
CENTRAL_MAX_PARAMS = 400  # the central flow forms the Hessian densely: run it only on networks this small

OSCILLATION_COS = -0.5  # consecutive GD updates this anti-aligned ...
OSCILLATION_GROWTH = 0.999  # ... and not shrinking: a period-2 orbit (or its onset), not convergence
ASYMPTOTIC = 0.1  # orders are fitted where the relative deviation is below this


class _GDDiagnosticRule(eqx.Module):
    """GD on the layers carrying the exact balancedness prediction and the last two updates.

    State: ``(layers, predicted D_j, last update, cos(last two updates), |last| / |previous|)``.
    """

    problem: Problem

    def __call__(self, state, eta):
        problem = self.problem
        layers, pred, last, _, _ = state
        G = layer_gradients(problem, layers)
        a = 1.0 - eta * problem.weight_decay
        new = tuple(a * w - eta * g for w, g in zip(layers, G))
        update = tuple(n - w for n, w in zip(new, layers))
        gram = lambda x, y: sum(jnp.sum(u * v) for u, v in zip(x, y))  # noqa: E731
        n_new, n_last = jnp.sqrt(gram(update, update)), jnp.sqrt(gram(last, last))
        denom = jnp.where(n_new * n_last > 0, n_new * n_last, 1.0)
        cos = jnp.where(n_new * n_last > 0, gram(update, last) / denom, 0.0)
        growth = jnp.where(n_last > 0, n_new / jnp.where(n_last > 0, n_last, 1.0), 0.0)
        pred = tuple(a**2 * p + eta**2 * (G[j + 1].T @ G[j + 1] - G[j] @ G[j].T) for j, p in enumerate(pred))
        return new, pred, update, cos, growth

    def observe(self, states):
        problem = self.problem
        layers, pred, last, cos, growth = states
        w_e = end_to_end(layers)
        measured = balancedness(layers)
        pred_imb = (jnp.max(jnp.stack([jnp.sqrt(jnp.sum(p**2, axis=(-2, -1))) for p in pred]), axis=0)
                    if pred else jnp.zeros(w_e.shape[0]))
        identity_err = (jnp.max(jnp.stack([jnp.sqrt(jnp.sum((d - p) ** 2, axis=(-2, -1))) for d, p in zip(measured, pred)]),
                                axis=0) if pred else jnp.zeros(w_e.shape[0]))
        norm = lambda tree: jnp.sqrt(sum(jnp.sum(x**2, axis=(-2, -1)) for x in tree))  # noqa: E731
        return {
            "layers": layers,
            "last_update": last,
            "end_to_end": w_e,
            "loss": jax.vmap(problem.loss)(w_e),
            "imbalance": imbalance(layers),
            "imbalance_predicted": pred_imb,
            "imbalance_identity_error": identity_err,
            "update_norm": norm(last),
            "update_cos": cos,
            "update_growth": growth,
        }


@eqx.filter_jit
def _descend_etas(rule, observe, state0, etas, per_save, n_saves: int):
    """:func:`~linflow.descent.iterate` for every eta (its own steps per save), with ``observe`` of the saves.

    One compiled computation; the etas run one after the other (``jax.lax.map``), each for its own number of
    steps (a ``jax.vmap`` would run every eta for the smallest eta's count)."""
    def one(args):
        eta, every = args
        saves, bad_at = iterate(rule, state0, eta, every, n_saves)
        return observe(saves), bad_at
    return jax.lax.map(one, (etas, per_save))


@jax.jit
def _hessian_times_gradient(problem, layers):
    """``H g`` at every saved point of a layer run (batched; compiled once per shape, not per call)."""
    return jax.vmap(lambda ls: hessian_vector_product(problem, ls, network_gradient(problem, ls)))(layers)


def _bound_integral(ts: np.ndarray, lam_min: np.ndarray, hg_norm: np.ndarray) -> np.ndarray:
    """``(1/2) int_0^t exp(int_{t'}^t -lambda_min) ||H g||(t') dt'`` on the grid (trapezoid, stable recursion)."""
    out = np.zeros_like(ts)
    acc = 0.0
    for n in range(1, len(ts)):
        dt = ts[n] - ts[n - 1]
        growth = float(np.exp(min(-0.5 * dt * (lam_min[n] + lam_min[n - 1]), 700.0)))  # capped: inf-free
        acc = growth * acc + 0.5 * dt * (growth * hg_norm[n - 1] + hg_norm[n])
        out[n] = 0.5 * acc
    return out


def _tree_norm(layers) -> np.ndarray:
    """``sqrt(sum_j ||W_j||_F^2)`` over the trailing two axes of each layer."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(sum(np.sum(np.asarray(w) ** 2, axis=(-2, -1)) for w in layers))


def fit_order(etas, errors, mask=None) -> tuple[float, float, float, int]:
    """Least-squares slope of ``log(error)`` against ``log(eta)`` over the masked points.

    Returns ``(order, eta_low, eta_high, n_points)``; NaNs when fewer than two points qualify.
    """
    etas, errors = np.asarray(etas, float), np.asarray(errors, float)
    ok = np.isfinite(errors) & (errors > 0)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    if ok.sum() < 2:
        return float("nan"), float("nan"), float("nan"), int(ok.sum())
    slope = np.polyfit(np.log(etas[ok]), np.log(errors[ok]), 1)[0]
    return float(slope), float(etas[ok].min()), float(etas[ok].max()), int(ok.sum())


def _breakdown(etas: np.ndarray, rel: np.ndarray, tol: float) -> tuple[float, float]:
    """Largest eta (of the grid) up to which the relative deviation stays <= tol, and a log-interpolated crossing."""
    below = np.isfinite(rel) & (rel <= tol)
    if not below[0]:
        return float("nan"), float("nan")
    last = int(np.argmin(below)) - 1 if not below.all() else len(etas) - 1
    if last == len(etas) - 1 or not np.isfinite(rel[last + 1]):
        return float(etas[last]), float(etas[last])
    x0, x1 = np.log(etas[last]), np.log(etas[last + 1])
    y0, y1 = np.log(rel[last]), np.log(rel[last + 1])
    cross = x0 + (np.log(tol) - y0) * (x1 - x0) / (y1 - y0) if y1 != y0 else x0
    return float(etas[last]), float(np.exp(cross))


def compare(
    problem: Problem,
    layers0,
    etas: Sequence[float],
    t1: float,
    *,
    points: int = 101,
    tol: float = 1e-2,
    orders: Sequence[int] = (1, 2),
    solver: str = "tsit5",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 100_000,
    modified_max_steps: int = 20_000,
    lanczos_iters: int = 64,
    central: bool = True,
    curvature: bool = True,
    progress=None,
) -> xr.Dataset:
    """Gradient descent, Eq. 10, the flows and the modified flows for every eta, on one time grid.

    Args:
        problem: the problem.
        layers0: the initial layers (balanced for Theorem 1 to apply).
        etas: learning rates; each must divide ``t1 / (points - 1)``. They are sorted ascending.
        t1: the horizon (flow time).
        points: number of grid points.
        tol: the relative deviation that defines the breakdown eta (default 1%).
        orders: modified-flow orders to run (subset of ``(1, 2)``).
        solver: ODE solver of the flows.
        rtol: relative tolerance (tight default: the modified-flow errors are O(eta^3)).
        atol: absolute tolerance.
        max_steps: step budget of the flows.
        modified_max_steps: step budget of each modified flow.
        lanczos_iters: Lanczos steps for the Hessian extremes.
        central: run the central flow for the etas above the predicted threshold (networks of at most
            :data:`CENTRAL_MAX_PARAMS` parameters; otherwise recorded as skipped, with the reason).
        curvature: the sharpness and the first-order bound along the flow (Lanczos at every save), which the
            modified flows, the regimes and the central flow need. ``curvature=False, orders=(), central=False``
            is the plain side-by-side of the four runs (:func:`linflow.overview.overview`).
        progress: optional callable ``progress(label)`` called after each stage.

    Returns:
        An ``xarray.Dataset`` with dims ``(eta, t)`` (see ``summary`` for the derived numbers, which
        are also stored in its attributes). Relative deviations divide by the maximum over the horizon
        of the flow's norm (layers: ``sqrt(sum_j ||W_j||^2)``; end-to-end: ``||W_e||_F``).

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> layers = linflow.init.balanced((2, 2, 2), 0.3)
        >>> ds = linflow.compare(prob, layers, [0.05, 0.025], t1=2.0, points=21)  # doctest: +SKIP
        >>> linflow.comparison.summary(ds)["order_flow"]["order"]  # about 1  # doctest: +SKIP
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    t1, points, tol = _checks.positive("t1", t1), _checks.integer("points", points, minimum=2), _checks.positive("tol", tol)
    etas, orders = _checked_etas(etas), _checked_orders(orders, curvature, central)
    per_save = np.array([steps_per_save(e, t1, points) for e in etas], dtype=np.int64)
    tick = progress or (lambda label: None)
    ts = np.linspace(0.0, t1, points)
    flow_opts = dict(ts=ts, solver=solver, rtol=rtol, atol=atol)
    lf, ef, caught = _flows(problem, layers0, t1, flow_opts, max_steps)
    tick("flows")
    if curvature:
        data = _with_curvature(problem, layers0, etas, per_save, lf, ef, tick, t1=t1, points=points, orders=orders,
                               central=central, flow_opts=flow_opts, max_steps=max_steps,
                               modified_max_steps=modified_max_steps, lanczos_iters=lanczos_iters)
    else:
        data = _run_data(lf, ef, _plain_runs(problem, layers0, etas, per_save, t1, points, tick), {}, per_save, etas)
    ds = xr.Dataset(data, coords={"eta": etas, "t": ts})
    ds.attrs.update(_settings_attrs(problem, layers0, t1, points, tol, solver, rtol, atol, lf, ef, caught))
    ds.attrs.update(_flatten(summary(ds)))
    tick("summary")
    return ds


def _with_curvature(problem, layers0, etas, per_save, lf, ef, tick, *, t1, points, orders, central, flow_opts,
                    max_steps, modified_max_steps, lanczos_iters) -> dict:
    """The Dataset entries of the full comparison: the curvature along the flow, GD with its diagnostics and Eq. 10,
    the modified flows below the predicted threshold, GD's sharpness and the central flow above it, the regimes."""
    curv = _curvature(problem, lf, flow_opts["ts"], lanczos_iters)
    tick("curvature along the flow")
    runs = _discrete_runs(problem, layers0, etas, per_save, t1, points, tick)
    stable = etas < 2.0 / float(np.max(curv["sharpness"]))  # modified flows below the predicted threshold
    modified = {}
    for order in orders:
        modified[order] = _modified_flows(problem, layers0, etas, stable, order, t1,
                                          dict(flow_opts, max_steps=modified_max_steps))
        tick(f"modified flow, order {order}")
    data = _run_data(lf, ef, runs, modified, per_save, etas)
    data.update({name: (("t",), values) for name, values in curv.items() if name != "bound_unit"})
    data["eta_sharpness_half"] = (("eta", "t"), etas[:, None] * curv["sharpness"][None] / 2.0)
    data["bound"] = (("eta", "t"), etas[:, None] * curv["bound_unit"][None])
    data.update(_past_threshold(problem, layers0, etas, ~stable, t1, flow_opts, max_steps, runs, lf, central,
                                lanczos_iters))
    tick("central flows" if central else "regimes")
    data["regime"] = (("eta",), _regimes(etas, stable, data))
    return data


def _run_data(lf, ef, runs: dict, modified: dict, per_save, etas) -> dict:
    """The deviations of every run from its flow (per eta and save) and the per-eta outcomes and statuses."""
    data = _deviations(lf, ef, runs, modified, per_save)
    data.update(_per_eta(runs, etas, data, modified))
    return data


def _checked_orders(orders, curvature: bool, central: bool) -> tuple:
    """The modified-flow orders (a subset of (1, 2)); none, and no central flow, without the curvature."""
    orders = tuple(orders)
    if any(o not in MODIFIED_FIELDS for o in orders):
        raise ValueError(f"orders must be a subset of (1, 2), got {orders}")
    if not curvature and (orders or central):
        raise ValueError(f"curvature=False leaves out the sharpness that the modified flows (orders = {orders}) and "
                         f"the central flow (central = {central}) need: pass orders=() and central=False")
    return orders


def _checked_etas(etas) -> np.ndarray:
    """Distinct positive learning rates, sorted ascending."""
    etas = np.sort(np.array([_checks.positive(f"etas[{i}]", e) for i, e in enumerate(etas)], dtype=float))
    if len(etas) == 0:
        raise ValueError("etas must hold at least one learning rate")
    if len(np.unique(etas)) != len(etas):
        raise ValueError(f"etas must be distinct, got {etas}")
    return etas


def _flows(problem, layers0, t1, flow_opts, max_steps):
    """The layer flow (it must succeed) and the end-to-end flow from the product, with the warnings it raised."""
    lf = gradient_flow(problem, layers0, t1, max_steps=max_steps, **flow_opts)
    if not lf.ok:
        raise RuntimeError(f"the layer flow failed, nothing to compare against: {lf.message}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ef = end_to_end_flow(problem, layers0, None, t1, max_steps=max_steps, **flow_opts)
    return lf, ef, caught


def _curvature(problem, lf, ts, lanczos_iters) -> dict:
    """Sharpness, smallest Hessian eigenvalue, ``||H g||`` and the first-order bound's integral along the flow."""
    flow_layers = tuple(jnp.asarray(w) for w in lf.layers)
    s_max_t, lam_min_t = (np.asarray(x) for x in hessian_extremes(problem, flow_layers, iters=lanczos_iters))
    hg_norm = _tree_norm(_hessian_times_gradient(problem, flow_layers))
    return {"sharpness": s_max_t, "lambda_min": lam_min_t, "hg_norm": hg_norm,
            "bound_unit": _bound_integral(ts, lam_min_t, hg_norm)}


def _discrete_runs(problem, layers0, etas, per_save, t1, points, tick) -> dict:
    """GD (with its diagnostics) and Eq. 10 for every eta, one compiled call each, with their statuses and
    messages (``statuses``: from the step where each diverged, said as a Trajectory says it)."""
    eta_arr, every_arr = jnp.asarray(etas), jnp.asarray(per_save)
    pred0 = tuple(jnp.asarray(d) for d in balancedness(layers0))
    zeros = tuple(jnp.zeros_like(w) for w in layers0)
    gd_rule = _GDDiagnosticRule(problem)
    gd_obs, gd_bad = _descend_etas(gd_rule, gd_rule.observe, (layers0, pred0, zeros, jnp.asarray(0.0),
                                                              jnp.asarray(0.0)), eta_arr, every_arr, points - 1)
    tick("gradient descent")
    e2e_field = EndToEndFlow(problem, len(layers0))
    (eq_w, eq_loss, _), eq_bad = _descend_etas(EulerRule(e2e_field), e2e_field.observe, end_to_end(layers0), eta_arr,
                                               every_arr, points - 1)
    tick("end-to-end descent (Eq. 10)")
    return {"per_save": np.asarray(per_save), "gd_layers": tuple(np.asarray(w) for w in gd_obs.pop("layers")),
            "gd_last": tuple(np.asarray(w) for w in gd_obs.pop("last_update")),
            "gd": {k: np.asarray(v) for k, v in gd_obs.items()}, "gd_bad": np.asarray(gd_bad),
            "eq_w": np.asarray(eq_w), "eq_loss": np.asarray(eq_loss), "eq_bad": np.asarray(eq_bad),
            "statuses": {**_status("gradient_descent", np.asarray(gd_bad), etas, per_save, t1, points),
                         **_status("end_to_end_descent", np.asarray(eq_bad), etas, per_save, t1, points)}}


def _plain_runs(problem, layers0, etas, per_save, t1, points, tick) -> dict:
    """GD and Eq. 10 for every eta without GD's diagnostics (the plain configuration: one compiled call per run
    kind, each eta for its own number of steps, no balancedness prediction): the same entries as :func:`_discrete_runs`
    less ``gd_last`` and the diagnostics, plus each Trajectory's own status and message (``statuses``)."""
    gd_runs = descend_on_grid(EulerRule(LayerFlow(problem)), layers0, etas, t1, points)
    tick("gradient descent")
    eq_runs = descend_on_grid(EulerRule(EndToEndFlow(problem, len(layers0))), end_to_end(layers0), etas, t1, points)
    tick("end-to-end descent (Eq. 10)")
    stack = lambda runs, name: np.stack([np.asarray(getattr(r, name)) for r in runs])  # noqa: E731
    bad = lambda runs: np.array([int(r.stats["diverged_at"]) for r in runs])  # noqa: E731
    return {"per_save": np.asarray(per_save), "gd_layers": tuple(np.stack([np.asarray(r.layers[j]) for r in gd_runs])
                                                                 for j in range(len(layers0))),
            "gd": {"end_to_end": stack(gd_runs, "end_to_end"), "loss": stack(gd_runs, "loss"),
                   "imbalance": stack(gd_runs, "imbalance")}, "gd_bad": bad(gd_runs),
            "eq_w": stack(eq_runs, "end_to_end"), "eq_loss": stack(eq_runs, "loss"), "eq_bad": bad(eq_runs),
            "statuses": {**_trajectory_status("gd", gd_runs), **_trajectory_status("eq10", eq_runs)}}


def _trajectory_status(name: str, runs) -> dict:
    """``{name}_status`` and ``{name}_message`` per eta, as each run's Trajectory says them."""
    return {f"{name}_status": (("eta",), np.array([r.status for r in runs], dtype=str)),
            f"{name}_message": (("eta",), np.array([r.message for r in runs], dtype=str))}


def _modified_flows(problem, layers0, etas, stable, order, t1, options):
    """The modified flow of ``order`` for every stable eta (``jax.vmap``): layers (NaN after a stop), statuses."""
    points = len(options["ts"])
    mod_layers = tuple(np.full((len(etas), points, *w.shape), np.nan) for w in layers0)
    status = np.array(["skipped: eta above the predicted stability threshold"] * len(etas), dtype=object)
    if stable.any():
        runs = jax.vmap(lambda e: modified_flow(problem, layers0, e, t1, order=order, **options))(
            jnp.asarray(etas[stable])).unstack()
        for traj, idx in zip(runs, np.flatnonzero(stable)):
            for j, w in enumerate(traj.layers):
                mod_layers[j][idx] = traj.masked(w)
            status[idx] = traj.status if traj.ok else f"{traj.status}: {traj.message}"
    return mod_layers, status


def _past_threshold(problem, layers0, etas, unstable, t1, flow_opts, max_steps, runs, lf, central, iters) -> dict:
    """For each eta in ``unstable``: GD's sharpness at the mean of consecutive iterates and the central flow."""
    n_params = sum(int(np.size(w)) for w in layers0)
    shape = (len(etas), len(lf.ts))
    mid = tuple(np.asarray(w) - 0.5 * np.asarray(u) for w, u in zip(runs["gd_layers"], runs["gd_last"]))
    gd_s = np.full(shape, np.nan)
    for i in np.flatnonzero(unstable):  # below the threshold GD follows the flow: no Lanczos runs spent there
        if runs["gd_bad"][i] < 0:
            gd_s[i] = np.asarray(sharpness(problem, tuple(jnp.asarray(w[i]) for w in mid), iters=iters))
    cf_s, cf_s2, cf_dev = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    status = np.array(["not run: eta below the predicted threshold (the central flow is the gradient flow)"] * len(etas),
                      dtype=object)
    we_norm = float(np.max(frobenius(np.asarray(lf.end_to_end))))
    for i in np.flatnonzero(unstable):
        if not central:
            status[i] = "not run: central=False"
        elif n_params > CENTRAL_MAX_PARAMS:
            status[i] = f"not run: {n_params} parameters > {CENTRAL_MAX_PARAMS} (the central flow forms the Hessian densely)"
        else:
            try:
                cf = central_flow(problem, layers0, etas[i], t1, max_steps=max_steps, **flow_opts)
            except ValueError as exc:  # the start is already past the threshold
                status[i] = f"not run: {exc}"
                continue
            status[i] = cf.status if cf.ok else f"{cf.status}: {cf.message}"
            cf_s[i], cf_s2[i] = cf.masked(cf.extras["sharpness"]), cf.masked(cf.extras["sigma2"])
            if runs["gd_bad"][i] < 0:  # a diverged GD has no midpoint to compare
                mid_we = np.asarray(end_to_end(tuple(w[i] for w in mid)))
                cf_dev[i] = cf.masked(frobenius(mid_we - np.asarray(cf.end_to_end))) / we_norm
    return {
        "gd_midpoint_sharpness": (("eta", "t"), gd_s),
        "central_sharpness": (("eta", "t"), cf_s),
        "central_sigma2": (("eta", "t"), cf_s2),
        "central_deviation_rel": (("eta", "t"), cf_dev),
        "central_status": (("eta",), np.array(status, dtype=str)),
    }


def _regimes(etas, stable, data) -> np.ndarray:
    """One of :data:`REGIMES` per eta, by :data:`REGIME_RULE`."""
    outcome = data["gd_outcome"][1]
    s_ratio = data["gd_midpoint_sharpness"][1][:, -1] * etas / 2.0
    dev = data["central_deviation_rel"][1][:, -1]
    loss = data["gd_loss"][1]
    out = []
    for i in range(len(etas)):
        spiked = np.nanmax(loss[i]) > loss[i][0]
        off_central = np.isfinite(dev[i]) and dev[i] > EOS_TOL
        if outcome[i] == "diverged":
            out.append("diverged")
        elif stable[i] and outcome[i] == "ok":
            out.append("follows the flow")
        elif spiked and (s_ratio[i] < 1.0 - EOS_TOL or off_central):
            out.append("catapult")
        elif (np.isfinite(dev[i]) and dev[i] <= EOS_TOL) or (not np.isfinite(dev[i]) and abs(s_ratio[i] - 1) < EOS_TOL):
            out.append("edge of stability")
        else:
            out.append("unclassified")
    return np.array(out, dtype=str)


def _mask_after(bad, values, saved_steps) -> np.ndarray:
    """NaN on saved rows at or after a divergence step."""
    out = np.array(values, dtype=float, copy=True)
    for i, b in enumerate(bad):
        if b >= 0:
            out[i, saved_steps[i] >= b] = np.nan
    return out


def frobenius(a) -> np.ndarray:
    """Frobenius norms over the last two axes (inf, not a warning, for a run about to overflow)."""
    with np.errstate(over="ignore"):
        return np.sqrt(np.sum(np.asarray(a) ** 2, axis=(-2, -1)))


def _deviations(lf, ef, runs, modified, per_save) -> dict:
    """Losses, distances from the flows (absolute and relative) and imbalances on the ``(eta, t)`` grid."""
    gd, gd_bad, eq_bad = runs["gd"], runs["gd_bad"], runs["eq_bad"]
    saved_steps = per_save[:, None] * np.arange(len(lf.ts))[None]
    gd_mask = lambda v: _mask_after(gd_bad, v, saved_steps)  # noqa: E731
    eq_mask = lambda v: _mask_after(eq_bad, v, saved_steps)  # noqa: E731
    with np.errstate(invalid="ignore", over="ignore"):
        flow_norm = float(np.max(_tree_norm(lf.layers)))
        flow_we = np.asarray(lf.end_to_end)
        e2e_we = np.asarray(ef.end_to_end) if ef.ok else np.full_like(flow_we, np.nan)
        we_norm, e2e_norm = float(np.max(frobenius(flow_we))), float(np.nanmax(frobenius(e2e_we)))
        layer_dev = gd_mask(_tree_norm(tuple(g - np.asarray(f)[None] for g, f in zip(runs["gd_layers"], lf.layers))))
        we_dev, eq_dev = gd_mask(frobenius(gd["end_to_end"] - flow_we[None])), eq_mask(frobenius(runs["eq_w"] - e2e_we[None]))
        data = {
            "flow_loss": (("t",), np.asarray(lf.loss)),
            "e2e_flow_loss": (("t",), ef.masked(ef.loss)),
            "flow_end_to_end": (("t", "n_out", "n_in"), flow_we),
            "e2e_flow_end_to_end": (("t", "n_out", "n_in"), e2e_we),
            "flow_imbalance": (("t",), np.asarray(lf.imbalance)),
            "theorem1_gap": (("t",), frobenius(flow_we - e2e_we)),
            "gd_end_to_end": (("eta", "t", "n_out", "n_in"), gd_mask(gd["end_to_end"])),
            "gd_loss": (("eta", "t"), gd_mask(gd["loss"])),
            "eq10_loss": (("eta", "t"), eq_mask(runs["eq_loss"])),
            "gd_layer_deviation": (("eta", "t"), layer_dev),
            "gd_layer_deviation_rel": (("eta", "t"), layer_dev / flow_norm),
            "gd_deviation": (("eta", "t"), we_dev),
            "gd_deviation_rel": (("eta", "t"), we_dev / we_norm),
            "eq10_deviation": (("eta", "t"), eq_dev),
            "eq10_deviation_rel": (("eta", "t"), eq_dev / e2e_norm),
            "gd_loss_gap": (("eta", "t"), gd_mask(gd["loss"]) - np.asarray(lf.loss)[None]),
            "eq10_loss_gap": (("eta", "t"), eq_mask(runs["eq_loss"]) - ef.masked(ef.loss)[None]),
            "gd_imbalance": (("eta", "t"), gd_mask(gd["imbalance"])),
        }
        if "imbalance_predicted" in gd:  # GD's diagnostics (not in the plain configuration)
            data["gd_imbalance_predicted"] = (("eta", "t"), gd_mask(gd["imbalance_predicted"]))
            data["gd_imbalance_identity_error"] = (("eta", "t"), gd_mask(gd["imbalance_identity_error"]))
        for order, (mod_layers, status) in modified.items():
            dev = gd_mask(_tree_norm(tuple(g - m for g, m in zip(runs["gd_layers"], mod_layers))))
            data[f"mod{order}_deviation"] = (("eta", "t"), dev)
            data[f"mod{order}_deviation_rel"] = (("eta", "t"), dev / flow_norm)
            data[f"mod{order}_status"] = (("eta",), np.array(status, dtype=str))
    return data


def _status(kind: str, bad: np.ndarray, etas: np.ndarray, per_save: np.ndarray, t1: float, points: int) -> dict:
    """``{kind}_status`` (ok or diverged) and ``{kind}_message`` (where, as a Trajectory says it) per eta."""
    name = "gd" if kind == "gradient_descent" else "eq10"
    ts = np.linspace(0.0, t1, points)
    status, message = [], []
    for b, eta, every in zip(bad, etas, per_save):
        status.append("ok" if b < 0 else "diverged")
        keep = int(np.sum(every * np.arange(len(ts)) < b)) if b >= 0 else len(ts)
        message.append("" if b < 0 else descent_message(kind, float(eta), ts, keep, {"diverged_at": int(b)}))
    return {f"{name}_status": (("eta",), np.array(status, dtype=str)),
            f"{name}_message": (("eta",), np.array(message, dtype=str))}


def _per_eta(runs, etas, data, modified) -> dict:
    """GD's outcome per eta (diverged, oscillating: a period-2 orbit or its onset, ok), the statuses of GD and
    Eq. 10 with their messages, and the maxima over t."""
    gd, gd_bad, eq_bad = runs["gd"], runs["gd_bad"], runs["eq_bad"]
    last = {k: v[:, -1] for k, v in gd.items()}
    theta_norm = _tree_norm(tuple(w[:, -1] for w in runs["gd_layers"]))
    oscillating = np.zeros(len(etas), bool)  # needs GD's diagnostics: never said in the plain configuration
    if "update_cos" in last:
        oscillating = ((gd_bad < 0) & (last["update_cos"] < OSCILLATION_COS)
                       & (last["update_growth"] > OSCILLATION_GROWTH) & (last["update_norm"] > 1e-12 * (1.0 + theta_norm)))
    outcome = np.where(gd_bad >= 0, "diverged", np.where(oscillating, "oscillating", "ok"))
    out = {
        "gd_outcome": (("eta",), outcome.astype(str)),
        "gd_diverged_step": (("eta",), gd_bad.astype(np.int64)),
        "gd_diverged_time": (("eta",), np.where(gd_bad >= 0, gd_bad * etas, np.nan)),
        "eq10_diverged_step": (("eta",), eq_bad.astype(np.int64)),
        "max_deviation_rel": (("eta",), _nanmax_rows(data["gd_deviation_rel"][1])),
        "max_layer_deviation": (("eta",), _nanmax_rows(data["gd_layer_deviation"][1])),
        "max_eq10_deviation_rel": (("eta",), _nanmax_rows(data["eq10_deviation_rel"][1])),
        **runs["statuses"],
    }
    for order in modified:
        out[f"max_mod{order}_deviation"] = (("eta",), _nanmax_rows(data[f"mod{order}_deviation"][1]))
    return out


def _nanmax_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    out = np.full(a.shape[0], np.nan)
    for i, row in enumerate(a):
        if np.isfinite(row).any():
            out[i] = np.nanmax(row)
    return out


def _settings_attrs(problem, layers0, t1, points, tol, solver, rtol, atol, lf, ef, caught) -> dict:
    return {
        "depth": len(layers0),
        "dims": ",".join(str(n) for n in (problem.d, *(w.shape[0] for w in layers0))),
        "p": problem.p,
        "weight_decay": float(problem.weight_decay),
        "t1": t1,
        "points": points,
        "tol": tol,
        "solver": solver,
        "rtol": rtol,
        "atol": atol,
        "flow_status": lf.status,
        "flow_message": lf.message,
        "flow_num_steps": int(lf.stats["num_steps"]),
        "flow_nfev": int(lf.stats["nfev"]),
        "e2e_flow_status": ef.status,
        "e2e_flow_message": ef.message,
        "e2e_flow_num_steps": int(ef.stats["num_steps"]),
        "e2e_flow_nfev": int(ef.stats["nfev"]),
        "initial_imbalance": float(lf.imbalance[0]),
        "warnings": " | ".join(str(w.message) for w in caught),
        "time_convention": "flow time t; GD iterate k sits at t = k * eta",
        "relative_deviation": "distance / max over t of the flow's norm",
        "regime_rule": REGIME_RULE,
        "central_deviation": "||W_e(mean of GD's last two iterates) - W_e(central flow)|| / max_t ||W_e(flow)||",
    }


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fit_mask(ds: xr.Dataset, errors) -> np.ndarray:
    """The etas an order is fitted on: GD stable (outcome ok), relative deviation of W_e below
    :data:`ASYMPTOTIC`, and ``errors`` more than 1000 times the solver tolerance (above its floor)."""
    floor = 1e3 * max(float(ds.attrs["rtol"]), float(ds.attrs["atol"]))
    errors = np.asarray(errors, dtype=float)
    ok = np.asarray(ds.gd_outcome.values).astype(str) == "ok"
    return ok & (ds.max_deviation_rel.values < ASYMPTOTIC) & np.isfinite(errors) & (errors > floor)


def summary(ds: xr.Dataset) -> dict:
    """Derived numbers of a :func:`compare` Dataset: fitted orders, breakdown eta, stability thresholds."""
    etas = ds.eta.values
    rel = ds.max_deviation_rel.values
    ok = ds.gd_outcome.values == "ok"
    out = {}
    fits = {"flow": fit_order(etas, ds.max_layer_deviation.values, fit_mask(ds, ds.max_layer_deviation.values))}
    for order in (1, 2):
        name = f"max_mod{order}_deviation"
        if name in ds:
            err = ds[name].values
            fits[f"modified{order}"] = fit_order(etas, err, fit_mask(ds, err))
    for name, (order, lo, hi, n) in fits.items():
        status = "ok" if n >= 2 else (f"not fitted: {n} eta(s) with a stable run, relative deviation below "
                                       f"{ASYMPTOTIC:g} and error above 1000 x the solver tolerance (need 2)")
        out[f"order_{name}"] = {"order": order, "eta_low": lo, "eta_high": hi, "points": n, "status": status}
    grid_eta, interp_eta = _breakdown(etas, np.where(ok, rel, np.inf), float(ds.attrs["tol"]))
    out["breakdown_eta"] = grid_eta
    out["breakdown_eta_interpolated"] = interp_eta
    tol = float(ds.attrs["tol"])
    out["breakdown_status"] = (
        f"none: every eta of the grid is already above {tol:g} (or unstable), the smallest included"
        if not np.isfinite(grid_eta) else
        f"above the grid: every eta up to the largest, {grid_eta:.4g}, stays within {tol:g}; the breakdown eta is "
        "at least that" if grid_eta == etas[-1] else "ok")
    if "sharpness" in ds:
        out["sharpness_max"] = float(np.max(ds.sharpness.values))
        out["stability_eta_predicted"] = 2.0 / out["sharpness_max"]
    failed = ~ok
    out["stability_eta_observed"] = float(etas[failed].min()) if failed.any() else float("nan")
    out["stability_eta_observed_status"] = ("ok" if failed.any() else
                                            "none: GD neither diverged nor oscillated at any eta of the grid")
    catapults = etas[ds.regime.values == "catapult"] if "regime" in ds else etas[:0]
    if catapults.size and not failed.any():
        out["stability_eta_observed_status"] += ("; GD catapulted (its loss rose above L(0), then it converged) at eta "
                                                 + ", ".join(f"{e:.4g}" for e in catapults))
    below = ok & (etas < (out["stability_eta_observed"] if failed.any() else np.inf))
    out["largest_stable_eta_observed"] = float(etas[below].max()) if below.any() else float("nan")
    out["largest_stable_eta_observed_status"] = ("ok" if below.any() else
                                                 "none: GD diverged or oscillated already at the smallest eta")
    if "regime" in ds:
        out["regimes"] = "; ".join(f"eta {e:g}: {r}" for e, r in zip(etas, ds.regime.values))
        out["regime_rule"] = REGIME_RULE
    return out


def report(ds: xr.Dataset) -> dict:
    """The JSON document of a :func:`compare` Dataset: its settings, :func:`summary` and the outcome per eta."""
    per_eta = {"outcomes": [str(o) for o in ds.gd_outcome.values],
               # null for a diverged run (its maximum over the horizon is unbounded): its outcome says so
               "max_relative_deviation": [None if o == "diverged" else float(x)
                                          for o, x in zip(ds.gd_outcome.values, ds.max_deviation_rel.values)]}
    if "regime" in ds:
        per_eta["regime_per_eta"] = [str(r) for r in ds.regime.values]
    if "central_status" in ds:
        per_eta["central_flow_status"] = [str(c) for c in ds.central_status.values]
    settings = {k: ds.attrs[k] for k in ("problem", "init") if k in ds.attrs}
    return {**settings, "depth": int(ds.attrs["depth"]), "t1": float(ds.attrs["t1"]),
            "etas": [float(e) for e in ds.eta.values], **summary(ds), **per_eta}


def summary_text(ds: xr.Dataset) -> str:
    """The summary of a :func:`compare` Dataset as a short printed report."""
    s = summary(ds)
    lines = [f"etas: {', '.join(f'{e:.4g}' for e in ds.eta.values)}  (horizon t1 = {ds.attrs['t1']:g})", ""]
    expected = {"flow": 1, "modified1": 2, "modified2": 3}
    for name, label in (("flow", "GD vs gradient flow"), ("modified1", "GD vs 1st-order modified flow"),
                        ("modified2", "GD vs 2nd-order modified flow")):
        fit = s.get(f"order_{name}")
        if fit is None:
            continue
        lines.append(f"order of {label:<32} " + (
            f"{fit['order']:6.3f}  (theory {expected[name]}; fit on {fit['points']} etas in [{fit['eta_low']:.3g}, "
            f"{fit['eta_high']:.3g}])" if fit["status"] == "ok" else f"{fit['status']}"))
    breakdown = (f"{s['breakdown_eta']:.4g} (interpolated {s['breakdown_eta_interpolated']:.4g})"
                 if s["breakdown_status"] == "ok" else s["breakdown_status"])
    observed = (f"{s['stability_eta_observed']:.4g}" if s["stability_eta_observed_status"] == "ok"
                else s["stability_eta_observed_status"])
    lines += [
        "",
        f"breakdown eta (max relative deviation of W_e <= {ds.attrs['tol']:g}): {breakdown}",
        (f"stability threshold predicted from the flow, 2 / max_t S(t): {s['stability_eta_predicted']:.4g} "
         f"(max sharpness {s['sharpness_max']:.4g})" if "sharpness" in ds else
         "stability threshold predicted from the flow: not measured (curvature=False)"),
        f"stability threshold observed (smallest eta where GD diverged or oscillated): {observed}",
        "",
        f"{'eta':>10} {'outcome':>12} {'max rel dev':>12} {'eta S/2':>9} {'max |D| GD':>11} {'|D| identity err':>17}"
        + ("   regime (end: eta S_GD/2, rel. distance to the central flow)" if "regime" in ds else ""),
    ]
    for i, eta in enumerate(ds.eta.values):
        row = ds.isel(eta=i)
        diverged = str(row.gd_outcome.values) == "diverged"
        rel = np.nan if diverged else float(row.max_deviation_rel)
        line = (f"{eta:>10.4g} {str(row.gd_outcome.values):>12} "
                f"{cell(rel, '12.3e', 'diverged' if diverged else 'not measured')} "
                f"{cell(float(row.eta_sharpness_half.max()) if 'sharpness' in ds else np.nan, '9.3f', 'not measured')} "
                f"{cell(_max_reached(row.gd_imbalance.values), '11.3e', 'no save')} "
                f"{cell(_max_reached(row.gd_imbalance_identity_error.values), '17.2e', 'no save')}")
        if "regime" in ds:
            s_end, dev = float(row.gd_midpoint_sharpness[-1]) * eta / 2, float(row.central_deviation_rel[-1])
            line += f"   {str(row.regime.values)}"
            if np.isfinite(s_end):  # measured past the predicted threshold only
                line += f" ({s_end:.3f}, " + (f"{dev:.2e})" if np.isfinite(dev) else "no central flow)")
        lines.append(line)
    lines.append("(max rel dev: max over t of ||W_e^GD - W_e^flow||_F / max_t ||W_e^flow||_F; a diverged run has none; "
                 "max |D| GD: over the saves GD reached)")
    if "regime" in ds:
        lines += ["", f"regime rule: {REGIME_RULE}"]
    return "\n".join(lines)


def _max_reached(values: np.ndarray) -> float:
    """The maximum over the saves a run reached (the rows after a stop are NaN): nan only if it reached none."""
    values = np.asarray(values, float)
    return float(np.max(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")
