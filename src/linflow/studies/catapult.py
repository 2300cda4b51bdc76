r"""The catapult phase of gradient descent on the two-layer linear "uv" model (Lewkowycz, Bahri, Dyer,
Sohl-Dickstein & Gur-Ari, 2020; docs/math.md section 8).

The model is the depth-2 linear network with one input and one output, ``f = W_2 W_1 x = b . a x``
(``a = W_1`` in ``R^(n x 1)``, ``b = W_2^T``), trained on one sample ``(x, y)`` with the loss
``L = (1/2) (f - y)^2``. Its tangent kernel is ``lambda = ||df/dtheta||^2 = (||a||^2 + ||b||^2) x^2`` and
one GD step with residual ``r = f - y`` gives exactly (``x = 1``)

    ``f' = f - eta r lambda + eta^2 r^2 f``,   ``lambda' = lambda - 4 eta r f + eta^2 r^2 lambda``,

so with ``y = 0``: ``lambda' = lambda + eta f^2 (eta lambda - 4)``. With ``lambda_0`` the kernel at the start:

* ``eta < 2 / lambda_0``: *lazy* (``|1 - eta lambda| < 1``: the loss falls from the first step, ``lambda``
  barely moves when the width is large);
* ``2 / lambda_0 < eta < 4 / lambda_0``: *catapult* (the loss first grows, ``lambda`` falls until
  ``eta lambda < 2``, then GD converges in a flatter region);
* ``eta > 4 / lambda_0``: *diverged* (``lambda`` grows with the loss).

The initialization is the NTK one written in linflow's parameterization: ``a = u / n^(1/4)``,
``b = v / n^(1/4)`` with ``u, v ~ N(0, I_n)``, so ``f_0 = v . u / sqrt(n)`` is O(1) and ``lambda_0``
about ``2 sqrt(n)``; the thresholds scale with it and the relative kernel change of a lazy run is O(1/n).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..core import checks as _checks
from ..core.descent import EulerRule, iterate
from ..core.fields import LayerFlow
from ..core.init import end_to_end
from ..core.problems import Problem

__all__ = ["uv_model", "tangent_kernel", "catapult_sweep", "REGIMES", "thresholds"]

REGIMES = ("lazy", "catapult", "diverged", "not converged")


def uv_model(width: int, *, y: float = 0.0, x: float = 1.0, seed: int = 0) -> tuple[Problem, tuple[jax.Array, jax.Array]]:
    """The uv model: the one-sample problem ``(x, y)`` and the layers ``(W_1, W_2) = (u, v^T) / width^(1/4)``.

    Examples:
        >>> prob, layers = uv_model(100)
        >>> [w.shape for w in layers], prob.m
        ([(100, 1), (1, 100)], 1)
    """
    width = _checks.integer("width", width, minimum=1)
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal((2, width))
    scale = width ** -0.25
    layers = (jnp.asarray(scale * u[:, None]), jnp.asarray(scale * v[None, :]))
    return Problem(np.array([[float(x)]]), np.array([float(y)])), layers


def tangent_kernel(problem: Problem, layers) -> jax.Array:
    """``lambda = sum_i ||d f(x_i) / d theta||^2 / m``: the top eigenvalue of the tangent kernel (one output, one sample:
    ``(||W_1||^2 + ||W_2||^2) x^2``), the curvature of ``L`` along the function when the residual is 0. Batched
    over a leading axis of the layers (a run's saves)."""
    def one(ls):
        jac = jax.jacrev(lambda theta: (problem.X @ (theta[1] @ theta[0]).T)[:, 0])(ls)
        return jnp.sum(sum(jnp.sum(j.reshape(j.shape[0], -1) ** 2, axis=1) for j in jac)) / problem.m
    if jnp.ndim(layers[0]) == 3:
        return jax.vmap(one)(tuple(layers))
    return one(tuple(layers))


@eqx.filter_jit
def _run(problem: Problem, layers0, eta, steps: int):
    """GD on the layers for ``steps`` steps: the loss and the tangent kernel after every step, and the first
    non-finite step (-1 if none). Only the layers are carried (no per-step imbalance matrices)."""
    saves, bad_at = iterate(EulerRule(LayerFlow(problem)), tuple(layers0), eta, 1, steps)
    loss = jax.vmap(problem.loss)(end_to_end(saves))
    return loss, tangent_kernel(problem, saves), bad_at


def catapult_sweep(problem: Problem, layers0, eta_lambda0, steps: int = 2000, *, converged: float = 1e-10) -> xr.Dataset:
    """GD on the uv model for each ``eta = eta_lambda0 / lambda_0``, every step read, classified into :data:`REGIMES`.

    Rule (stated in ``ds.attrs["rule"]``): *diverged* when the run does not stay finite or its final loss
    is above its initial loss; otherwise *not converged* when the final loss is above ``converged`` times
    the initial loss; otherwise *catapult* when the loss rose above its initial value at some step, and
    *lazy* when it never did.

    Returns an ``xarray.Dataset`` over ``eta_lambda0`` with ``eta``, ``regime``, ``max_loss_ratio``
    (max loss / initial loss), ``final_loss``, ``final_kernel`` (``lambda`` at the end),
    ``final_eta_lambda`` (``eta lambda`` at the end: below 2 for a converged run) and
    ``kernel_change`` (``max_k |lambda_k / lambda_0 - 1|``); attributes ``lambda0``, the thresholds
    ``2 / lambda0`` and ``4 / lambda0``, the rule.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"catapult_sweep needs a regression linflow.Problem (the uv model: uv_model()), got "
                        f"{type(problem).__name__}")
    etas_scaled = np.asarray(eta_lambda0, dtype=float)
    if etas_scaled.ndim != 1 or etas_scaled.size == 0 or np.any(~(etas_scaled > 0)):
        raise ValueError(f"eta_lambda0 must be a 1-d list of positive numbers (eta * lambda_0), got {eta_lambda0!r}")
    steps = _checks.integer("steps", steps, minimum=1)
    layers0 = tuple(jnp.asarray(w, jnp.float64) for w in layers0)
    lam0 = float(tangent_kernel(problem, layers0))
    # one eta after the other (one compilation: eta is traced); a vmapped batch would hold every eta's steps
    rows = [_classify(*(np.asarray(x) for x in _run(problem, layers0, jnp.float64(e / lam0), steps)), lam0, converged)
            for e in etas_scaled]
    names = ("regime", "max_loss_ratio", "final_loss", "final_kernel", "kernel_change")
    data = {name: ("eta_lambda0", np.array([r[i] for r in rows])) for i, name in enumerate(names)}
    data["eta"] = ("eta_lambda0", etas_scaled / lam0)
    data["final_eta_lambda"] = ("eta_lambda0", etas_scaled / lam0 * data["final_kernel"][1])
    rule = ("diverged: not finite to the end, or final loss > initial loss; not converged: final loss > "
            f"{converged:g} x initial; catapult: the loss rose above its initial value at some step; lazy: it never did")
    return xr.Dataset(data, coords={"eta_lambda0": etas_scaled},
                      attrs={"lambda0": lam0, "eta_lazy_max": 2.0 / lam0, "eta_catapult_max": 4.0 / lam0,
                             "steps": steps, "rule": rule, "width": int(layers0[0].shape[0])})


def _classify(loss, kernel, bad_at, lam0: float, converged: float) -> tuple[str, float, float, float, float]:
    reached = len(loss) if bad_at < 0 else int(bad_at)  # rows 0 .. bad_at - 1 are finite
    loss, kernel = loss[:max(reached, 1)], kernel[:max(reached, 1)]
    first, last = float(loss[0]), float(loss[-1])
    ratio, change = float(np.max(loss) / first), float(np.max(np.abs(kernel / lam0 - 1)))
    if bad_at >= 0 or not np.isfinite(last) or last > first:
        regime = "diverged"
    elif last > converged * first:
        regime = "not converged"
    else:
        regime = "catapult" if ratio > 1.0 else "lazy"
    return regime, ratio, last, float(kernel[-1]), change


def thresholds(ds: xr.Dataset) -> dict:
    """The measured boundaries in ``eta lambda_0``: the largest lazy value and smallest catapult value, the largest
    converged value and the smallest diverged value, beside the theory's 2 and 4."""
    x, regime = ds["eta_lambda0"].values, ds["regime"].values
    def edge(values, pick):
        return float(pick(values)) if len(values) else None
    return {
        "lazy_max": edge(x[regime == "lazy"], np.max), "catapult_min": edge(x[regime == "catapult"], np.min),
        "catapult_max": edge(x[regime == "catapult"], np.max), "diverged_min": edge(x[regime == "diverged"], np.min),
        "theory": {"lazy_to_catapult": 2.0, "catapult_to_divergence": 4.0},
    }
