r"""Where the diffusion approximation breaks: the linear scaling rule and the noise-to-signal ratio (docs/math.md
section 12).

The first-order SME depends on $\eta$ and $B$ only through $\eta / B$ (its diffusion is $\sqrt{\eta f \Sigma / B}$),
so it predicts that SGD with $(k\eta, kB)$ follows SGD with $(\eta, B)$ in flow time: the linear scaling rule (LSR).
:func:`linear_scaling` measures it over $k$ (minibatches with replacement, so that $f = 1$ at every $k$). The
noise-to-signal ratio along the run,

$$
G_B(\theta) = \frac{f \operatorname{tr} \Sigma(\theta)}{B\, \lVert \nabla L(\theta) \rVert^2},
$$

compares the minibatch noise with the gradient it perturbs; after Li, Malladi & Arora (2021, section 5) the rule from
$B$ to $kB$ can hold only while the scaled run's ratio $G_B / k$ stays large, so the base run's smallest ratio along
the run predicts the scale $k^\ast$ at which it breaks (:data:`LSR_PREDICTION_RULE`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ...core import sgd, sme
from ...core.fields import network_gradient
from ...core.init import end_to_end
from ...core.problems import lp_derivative
from .weak import flow_values, run_values, save_times, sme_values, summarize

__all__ = ["LSR_HOLDS_RULE", "LSR_PREDICTION_RULE", "sigma_trace", "noise_to_signal", "scaling_grid", "linear_scaling",
           "scaling_summary", "scaling_text"]

LSR_RELATIVE = 0.2
LSR_RESOLVED_SE = 3.0
LSR_HOLDS_RULE = (f"the rule holds at k where, at every save time, |E L(k eta, k B) - E L(eta, B)| is at most "
                  f"{LSR_RELATIVE:g} x the base run's largest excess over the gradient flow, max_t |E L(eta, B) - "
                  f"L_GF|, or is within {LSR_RESOLVED_SE:g} standard errors; it breaks at the first k where neither "
                  f"holds at some save time (the worst time is reported)")
LSR_PREDICTION_RULE = ("predicted break k* = the smallest over the save times of the median over the base run's paths of "
                       "its noise-to-signal ratio G_B = f tr Sigma / (B |grad L|^2) (after Li, Malladi & Arora 2021, "
                       "section 5: the scaled run's ratio G_B / k must stay above 1 all along the run); the rule is "
                       "predicted to break at the first tested k above max(k*, 1)")


def sigma_trace(problem, layers) -> jax.Array:
    r"""$\operatorname{tr}\Sigma = \frac1m \sum_i \lVert \nabla\ell_i \rVert^2 - \lVert \nabla L \rVert^2$ without
    a per-sample gradient vector: layer $j$'s part of $\nabla \ell_i$ is the rank-one
    $(W_N \cdots W_{j+1})^\top \rho_i\, (W_{j-1} \cdots W_1 x_i)^\top$, $\rho_i = \ell'(W_e x_i - y_i)$, whose squared
    norm is the product of the two vectors' (the data term only: weight decay adds no noise)."""
    layers = tuple(layers)
    rho = lp_derivative(problem.X @ end_to_end(layers).T - problem.Y, problem.p)  # (m, k)
    total = 0.0
    for j in range(len(layers)):
        before = problem.X @ end_to_end(layers[:j]).T if j else problem.X  # rows W_{j-1} ... W_1 x_i
        after = rho @ end_to_end(layers[j + 1:]) if j + 1 < len(layers) else rho  # rows (W_N ... W_{j+1})^T rho_i
        total = total + jnp.sum(after * after, axis=1) * jnp.sum(before * before, axis=1)
    mean = jax.grad(lambda ws: problem.loss(end_to_end(ws)))(layers)
    return jnp.mean(total) - sum(jnp.sum(g * g) for g in mean)


def noise_to_signal(problem, layers, batch: int, sampling: str = "replacement") -> jax.Array:
    r"""$G_B = f \operatorname{tr}\Sigma / (B \lVert \nabla L \rVert^2)$ at ``layers`` (:func:`sigma_trace`; $\nabla L$
    the network loss's gradient, weight decay included: what SGD follows)."""
    g = jax.flatten_util.ravel_pytree(network_gradient(problem, layers))[0]
    f = sme.finite_population(problem.m, batch, sampling)
    return f * sigma_trace(problem, layers) / (batch * jnp.sum(g * g))


def scaling_grid(problem, eta: float, batch: int, ks: Sequence[int], t1: float, points: int,
                 substeps: int = 2) -> tuple[list[int], np.ndarray]:
    """The checked ``(ks, save times)`` of :func:`linear_scaling`: ``ks`` sorted, starting at 1, ``batch x max(ks)``
    within reach of the data, every save time a whole number of each scaled step and of the SME's steps; a clear
    error otherwise (callers check before running anything)."""
    ks = sorted(int(k) for k in ks)
    if not ks or ks[0] != 1:
        raise ValueError(f"ks must start at 1 (the base run) and list whole scale factors; got {ks}")
    if batch * ks[-1] > 10 * problem.m:
        raise ValueError(f"batch x max(ks) = {batch * ks[-1]} is far beyond the m = {problem.m} samples")
    return ks, save_times(t1, points, [k * eta for k in ks] + [eta / (2 * substeps)])


def linear_scaling(problem, layers0, eta: float, batch: int, ks: Sequence[int], t1: float, *, paths: int = 1000,
                   points: int = 5, seed: int = 0, nsr_paths: int = 16, substeps: int = 2,
                   progress: Callable[[str], None] | None = None) -> xr.Dataset:
    """SGD with ``(k eta, k batch)`` for every ``k`` of ``ks`` (with replacement), to flow time ``t1``: ``mean``/``se``
    of ``(loss, norm)`` at the save times, ``not_ok``; the first-order SME (the same for every ``k``) extrapolated in
    ``dt``; the gradient flow; the base run's noise-to-signal ratio ``nsr`` on its first ``nsr_paths`` paths."""
    ks, ts = scaling_grid(problem, eta, batch, ks, t1, points, substeps)
    shape = (len(ks) + 2, 2, len(ts))
    mean, se = np.full(shape, np.nan), np.full(shape, np.nan)
    not_ok = np.zeros(len(ks) + 2, dtype=int)
    base = jax.random.PRNGKey(seed)
    nsr = None
    for i, k in enumerate(ks):
        spacing = int(round((ts[1] - ts[0]) / (k * eta)))
        run = sgd.sgd_ensemble(problem, layers0, k * eta, spacing * (len(ts) - 1), batch=k * batch,
                               keys=jax.random.split(jax.random.fold_in(base, k), paths), sampling="replacement",
                               save_every=spacing)
        values, ok = run_values(run)
        mean[i], se[i], not_ok[i] = summarize(values, ok)
        if k == 1:
            n = min(nsr_paths, paths)
            layers = tuple(w[:n] for w in run.layers)
            ratio = jax.vmap(jax.vmap(lambda *ws: noise_to_signal(problem, ws, batch)))
            nsr = np.asarray(ratio(*layers))  # (paths, time)
            nsr = np.where(ok[:n, None], nsr, np.nan)
        if progress is not None:
            progress(f"sgd k={k}")
    mean[-2], se[-2], not_ok[-2] = summarize(*sme_values(problem, layers0, eta, t1, ts, batch=batch, order=1,
                                                         substeps=substeps,
                                                         keys=jax.random.split(jax.random.fold_in(base, 0), paths)))
    mean[-1], se[-1], not_ok[-1] = summarize(*flow_values(problem, layers0, t1, ts))
    if progress is not None:
        progress("sme1 and gradient flow")
    runs = [f"sgd_k{k}" for k in ks] + ["sme1", "gf"]
    ds = xr.Dataset({"mean": (("run", "observable", "time"), mean), "se": (("run", "observable", "time"), se),
                     "not_ok": (("run",), not_ok), "nsr": (("nsr_path", "time"), nsr)},
                    coords={"run": runs, "k": (("run",), ks + [0, 0]), "observable": ["loss", "norm"], "time": ts})
    ds.attrs.update(eta=float(eta), batch=int(batch), paths=int(paths), t1=float(t1), seed=seed,
                    holds_rule=LSR_HOLDS_RULE, prediction_rule=LSR_PREDICTION_RULE)
    return ds


def scaling_summary(ds: xr.Dataset) -> dict:
    """Per ``k``: the gap of ``E L`` to the base run's at the save time where it is largest in standard errors, its
    standard error, whether the rule holds (:data:`LSR_HOLDS_RULE`); the measured break, the predicted one
    (:data:`LSR_PREDICTION_RULE`) and the ratio along the run."""
    loss, se = ds["mean"].sel(observable="loss"), ds["se"].sel(observable="loss")
    base, base_se = loss.sel(run="sgd_k1").values, se.sel(run="sgd_k1").values
    excess = float(np.max(np.abs(base - loss.sel(run="gf").values)))
    rows, broken = [], None
    for run in ds.run.values:
        if not str(run).startswith("sgd_k"):
            continue
        k = int(ds.k.sel(run=run))
        value, s = loss.sel(run=run).values, se.sel(run=run).values
        if not (np.all(np.isfinite(value)) and np.all(np.isfinite(base))):
            rows.append({"k": k, "eta": k * ds.attrs["eta"], "batch": k * ds.attrs["batch"],
                         "loss": "the ensemble left the finite numbers", "holds": False})
            broken = broken or k
            continue
        gap, gap_se = value - base, np.hypot(s, base_se)
        bad = (np.abs(gap) > LSR_RELATIVE * excess) & (np.abs(gap) > LSR_RESOLVED_SE * gap_se)
        worst = int(np.argmax(np.abs(gap) / np.where(gap_se > 0, gap_se, np.inf))) if k > 1 else len(gap) - 1
        holds = not bool(np.any(bad))
        rows.append({"k": k, "eta": k * ds.attrs["eta"], "batch": k * ds.attrs["batch"], "time": float(ds.time[worst]),
                     "loss": float(value[worst]), "se": float(s[worst]), "gap": float(gap[worst]),
                     "gap_se": float(gap_se[worst]), "holds": holds})
        if not holds and broken is None:
            broken = k
    nsr = ds.nsr.values
    medians = np.median(nsr, axis=0)
    predicted = float(np.min(medians)) if np.all(np.isfinite(nsr)) else "a base path left the finite numbers"
    nsr_t = {f"{t:g}": (float(medians[i]) if np.all(np.isfinite(nsr[:, i])) else "a base path left the finite numbers")
             for i, t in enumerate(ds.time.values)}
    above = [r["k"] for r in rows if isinstance(predicted, float) and r["k"] > max(predicted, 1.0)]
    last = ds.time.values[-1]
    return {"rules": {"holds": LSR_HOLDS_RULE, "prediction": LSR_PREDICTION_RULE}, "eta": ds.attrs["eta"],
            "batch": ds.attrs["batch"], "sme1_loss": float(loss.sel(run="sme1", time=last)),
            "gf_loss": float(loss.sel(run="gf", time=last)), "base_loss": float(base[-1]),
            "base_max_excess_over_gf": excess, "rows": rows,
            "measured_break_k": broken if broken is not None else f"holds up to k = {rows[-1]['k']}",
            "predicted_break_k": predicted,
            "predicted_first_break": above[0] if above else f"no tested k above k* (largest {rows[-1]['k']})",
            "below_one": ("k* < 1: the noise is smaller than the signal already at the base batch, where the SDE "
                          "approximation itself is in doubt" if isinstance(predicted, float) and predicted < 1 else ""),
            "nsr_median_over_time": nsr_t}


def scaling_text(s: dict) -> list[str]:
    """Lines of the linear-scaling summary."""
    lines = [f"linear scaling rule from eta = {s['eta']:g}, B = {s['batch']} (E L at the horizon: SGD {s['base_loss']:.5g}, "
             f"SME-1 {s['sme1_loss']:.5g}, gradient flow {s['gf_loss']:.5g}; per k the gap at its worst save time):"]
    for r in s["rows"]:
        if isinstance(r["loss"], str):
            lines.append(f"  k = {r['k']:3d} (eta {r['eta']:g}, B {r['batch']}): {r['loss']}: breaks")
        else:
            lines.append(f"  k = {r['k']:3d} (eta {r['eta']:g}, B {r['batch']}): at t = {r['time']:g} E L {r['loss']:.5g}, "
                         f"gap {r['gap']:+.2e} +- {r['gap_se']:.1e}: {'holds' if r['holds'] else 'breaks'}")
    pred = s["predicted_break_k"]
    lines.append(f"  measured break: {s['measured_break_k']}; predicted by the noise-to-signal ratio: "
                 f"{pred if isinstance(pred, str) else f'k* = {pred:.3g}, first tested k above it: '}"
                 f"{'' if isinstance(pred, str) else s['predicted_first_break']}")
    if s.get("below_one"):
        lines.append(f"  {s['below_one']}")
    lines.append(f"  rules: {s['rules']['holds']}; {s['rules']['prediction']}")
    return lines
