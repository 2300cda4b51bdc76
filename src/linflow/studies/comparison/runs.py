"""The runs of :func:`linflow.compare` (JAX): the flows, GD with its diagnostics and Eq. 10 over the etas, the
curvature along the flow, the modified flows, GD and the central flow past the threshold."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ...core.central import central_flow
from ...core.curvature import hessian_extremes, sharpness
from ...core.descent import AbstractRule, EulerRule, descend_each, iterate_each
from ...core.fields import EndToEndFlow, LayerFlow, hessian_vector_product, layer_gradients, network_gradient
from ...core.init import balancedness, end_to_end, imbalance
from ...core.integrate import end_to_end_flow, gradient_flow, modified_flow

from .dataset import bound_integral, frobenius, run_status, tree_norm


CENTRAL_MAX_PARAMS = 400  # the central flow forms the Hessian densely: run it only on networks this small




class GDDiagnosticRule(AbstractRule):
    """GD on the layers (the engine's forward Euler step of the layer flow) carrying the exact balancedness prediction
    and the last two updates: an observer of the step.

    State: ``(layers, predicted D_j, last update, cos(last two updates), |last| / |previous|)``; the prediction is
    ``D_j <- a^2 D_j + eta^2 (G_(j+1)^T G_(j+1) - G_j G_j^T)`` with ``a = 1 - eta lambda`` and ``G_j`` the data
    term's gradient (docs/math.md section 4).
    """

    field: LayerFlow

    def init(self, y0, eta=None):
        return (y0, tuple(jnp.asarray(d) for d in balancedness(y0)), tuple(jnp.zeros_like(w) for w in y0),
                jnp.asarray(0.0), jnp.asarray(0.0))

    def __call__(self, state, eta):
        problem = self.field.problem
        layers, pred, last, _, _ = state
        G = layer_gradients(problem, layers)
        a = 1.0 - eta * problem.weight_decay
        new = EulerRule(self.field)(layers, eta)
        update = tuple(n - w for n, w in zip(new, layers))
        gram = lambda x, y: sum(jnp.sum(u * v) for u, v in zip(x, y))  # noqa: E731
        n_new, n_last = jnp.sqrt(gram(update, update)), jnp.sqrt(gram(last, last))
        denom = jnp.where(n_new * n_last > 0, n_new * n_last, 1.0)
        cos = jnp.where(n_new * n_last > 0, gram(update, last) / denom, 0.0)
        growth = jnp.where(n_last > 0, n_new / jnp.where(n_last > 0, n_last, 1.0), 0.0)
        pred = tuple(a**2 * p + eta**2 * (G[j + 1].T @ G[j + 1] - G[j] @ G[j].T) for j, p in enumerate(pred))
        return new, pred, update, cos, growth

    def observe(self, states):
        problem = self.field.problem
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


@jax.jit
def _hessian_times_gradient(problem, layers):
    """``H g`` at every saved point of a layer run (batched; compiled once per shape, not per call)."""
    return jax.vmap(lambda ls: hessian_vector_product(problem, ls, network_gradient(problem, ls)))(layers)


def run_flows(problem, layers0, t1, flow_opts):
    """The layer flow (it must succeed) and the end-to-end flow from the product, with the warnings it raised."""
    lf = gradient_flow(problem, layers0, t1, **flow_opts)
    if not lf.ok:
        raise RuntimeError(f"the layer flow failed, nothing to compare against: {lf.message}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ef = end_to_end_flow(problem, layers0, None, t1, **flow_opts)
    return lf, ef, caught


def curvature_along_flow(problem, lf, ts, lanczos_iters) -> dict:
    """Sharpness, smallest Hessian eigenvalue, ``||H g||`` and the first-order bound's integral along the flow."""
    flow_layers = tuple(jnp.asarray(w) for w in lf.layers)
    s_max_t, lam_min_t = (np.asarray(x) for x in hessian_extremes(problem, flow_layers, iters=lanczos_iters))
    hg_norm = tree_norm(_hessian_times_gradient(problem, flow_layers))
    return {"sharpness": s_max_t, "lambda_min": lam_min_t, "hg_norm": hg_norm,
            "bound_unit": bound_integral(ts, lam_min_t, hg_norm)}


def discrete_runs(problem, layers0, etas, per_save, t1, points, tick) -> dict:
    """GD (with its diagnostics) and Eq. 10 for every eta, one compiled call each, with their statuses and
    messages (``statuses``: from the step where each diverged, said as a Trajectory says it)."""
    eta_arr, every_arr = jnp.asarray(etas), jnp.asarray(per_save)
    gd_rule = GDDiagnosticRule(LayerFlow(problem))
    gd_obs, gd_bad = iterate_each(gd_rule, gd_rule.init(layers0), eta_arr, every_arr, points - 1, gd_rule.observe)
    tick("gradient descent")
    e2e_field = EndToEndFlow(problem, len(layers0))
    (eq_w, eq_loss, _), eq_bad = iterate_each(EulerRule(e2e_field), end_to_end(layers0), eta_arr, every_arr, points - 1,
                                              e2e_field.observe)
    tick("end-to-end descent (Eq. 10)")
    return {"per_save": np.asarray(per_save), "gd_layers": tuple(np.asarray(w) for w in gd_obs.pop("layers")),
            "gd_last": tuple(np.asarray(w) for w in gd_obs.pop("last_update")),
            "gd": {k: np.asarray(v) for k, v in gd_obs.items()}, "gd_bad": np.asarray(gd_bad),
            "eq_w": np.asarray(eq_w), "eq_loss": np.asarray(eq_loss), "eq_bad": np.asarray(eq_bad),
            "statuses": {**run_status("gradient_descent", np.asarray(gd_bad), etas, per_save, t1, points),
                         **run_status("end_to_end_descent", np.asarray(eq_bad), etas, per_save, t1, points)}}


def plain_runs(problem, layers0, etas, per_save, t1, points, tick) -> dict:
    """GD and Eq. 10 for every eta without GD's diagnostics (the plain configuration: one compiled call per run
    kind, each eta for its own number of steps, no balancedness prediction): the same entries as :func:`discrete_runs`
    less ``gd_last`` and the diagnostics, plus each Trajectory's own status and message (``statuses``)."""
    gd = descend_each(EulerRule(LayerFlow(problem)), layers0, etas, per_save, points - 1)
    tick("gradient descent")
    eq = descend_each(EulerRule(EndToEndFlow(problem, len(layers0))), end_to_end(layers0), etas, per_save, points - 1)
    tick("end-to-end descent (Eq. 10)")
    return {"per_save": np.asarray(per_save), "gd_layers": tuple(np.asarray(w) for w in gd.layers),
            "gd": {"end_to_end": np.asarray(gd.end_to_end), "loss": np.asarray(gd.loss),
                   "imbalance": np.asarray(gd.imbalance)}, "gd_bad": np.asarray(gd.stats["diverged_at"]),
            "eq_w": np.asarray(eq.end_to_end), "eq_loss": np.asarray(eq.loss), "eq_bad": np.asarray(eq.stats["diverged_at"]),
            "statuses": {**_trajectory_status("gd", gd.unstack()), **_trajectory_status("eq10", eq.unstack())}}


def _trajectory_status(name: str, runs) -> dict:
    """``{name}_status`` and ``{name}_message`` per eta, as each run's Trajectory says them."""
    return {f"{name}_status": (("eta",), np.array([r.status for r in runs], dtype=str)),
            f"{name}_message": (("eta",), np.array([r.message for r in runs], dtype=str))}


def modified_flow_runs(problem, layers0, etas, stable, order, t1, options):
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


def past_threshold(problem, layers0, etas, unstable, t1, flow_opts, runs, lf, central, iters) -> dict:
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
                cf = central_flow(problem, layers0, etas[i], t1, **flow_opts)
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
