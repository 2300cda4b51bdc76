"""Razin & Cohen (NeurIPS 2020): on a 2 x 2 matrix completion problem the implicit regularization of deep matrix
factorization drives every norm to infinity while the loss goes to zero; rank, not norm, is what is minimized
(docs/math.md section 10).

Their setting (their code, ``dmf_data_generator.py`` and ``dmf_multiple_experiments_runner.py``): observed
``w_12 = 1``, ``w_21 = 1``, ``w_22 = 0``; ``w_11`` unobserved. A zero-loss solution with ``det(W) > 0`` needs
``w_11 w_22 > 1`` with ``w_22 -> 0``, so ``|w_11| >= 1 / |w_22| -> infinity`` if the flow keeps ``det(W_e) > 0``. Their
start: every layer ``2 x 2`` with ``N(0, 8e-3^2)`` entries, resampled until ``det(W_e) > 0``, depths 2 to 4, GD with
step 5e-3 until the loss is below 1e-4. linflow's completion loss is ``(4/3) sum (1/2) r^2``, twice their mean
squared error: its flow time is half theirs.

Along the way ``sigma_2(W_e)`` falls like ``exp(-c t)`` while ``sigma_1`` grows like ``t^(1/3)``: after flow time ~60
``det(W_e)`` is below ``eps sigma_1^2`` and no state holding ``W_e`` or the layers in float64 can tell its sign (the
layer flow from their start flips it there and converges to a finite completion, which is the rounding, not the
flow). So the flow is followed in the polar state of a balanced network (:class:`PolarFlow`: ``W_e = R(phi)
diag(e^a, e^b) R(psi)^T``, Theorem 1 written for the angles and the logarithms of the singular values: ``det(W_e) =
e^(a + b) > 0`` by construction, ``b`` as negative as it gets), with Kvaerno5 (the flow is stiff: rates ~1e4 beside
~1e-11; its stages solved by Newton's method: diffrax's default chord iteration rejected half the steps, measured
9,528 steps to t = 1e9 against 240), from the balanced layers with their start's ``W_e(0)``, to flow time 1e15
(quick: 1e9). The layer flow from their own (unbalanced) start is run beside it and said where it loses the sign.
The GD steps the same path would need are bounded below by ``int S(t) / 2 dt`` (a stable step is at most
``2 / S``; ``S`` the sharpness of the balanced layers of ``W_e(t)``, by Lanczos).
"""

from __future__ import annotations

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from ..core import init
from ..core.curvature import sharpness
from ..core.fields import AbstractField
from ..core.integrate import gradient_flow
from ..core.linalg import effective_rank
from ..core.sensing import CompletionProblem
from ..core.settings import SolverSettings, flat_solve, result_code, with_newton
from ..core.trajectory import STATUSES
from .common import caption, verdict

__all__ = ["razin_cohen", "problem", "PolarFlow", "polar_state", "START_STD", "RULE", "NORMS"]

START_STD = 8e-3
STARTS = ("balanced", "their")
NORMS = ("frobenius", "nuclear", "spectral", "schatten_half")
LOSS_TARGET = {False: 1e-10, True: 1e-6}
GROWTH = 0.5  # of the growth sqrt(L_0 / L) that |w_11| >= 1 / |w_22|, L ~ (2/3) w_22^2 asks for
PAPER = ("on the 2 x 2 completion problem with det(W_e) > 0 the loss goes to zero while |w_11| and every (quasi-)norm "
         "grow to infinity and the effective rank goes to 1 (Razin & Cohen 2020, Theorem 1 and its experiments)")


def rule(target: float) -> str:
    return (f"agrees when for every depth the balanced flow (det(W_e) > 0 held exactly) reaches loss <= {target:g}, and "
            f"while the loss falls from 1e-3 to {target:g} |w_11| and every norm (Frobenius, nuclear, spectral, "
            f"Schatten-1/2 quasi-norm) increase at every save and by at least {GROWTH:g} sqrt(1e-3 / {target:g}) (half "
            f"of what |w_11| >= 1 / |w_22|, L ~ (2/3) w_22^2 asks for), and the effective rank ends "
            f"within 1e-3 of 1; partly when some depths do; differs when none does. The layer flow from their own "
            f"start is reported beside, not graded (float64 cannot hold the sign of det(W_e) once it is below "
            f"eps sigma_1^2)")


RULE = rule(LOSS_TARGET[False])


def problem() -> CompletionProblem:
    """Observed ``w_12 = 1``, ``w_21 = 1``, ``w_22 = 0`` of a 2 x 2 matrix (``w_11`` unobserved)."""
    return CompletionProblem([0, 1, 1], [1, 0, 1], [1.0, 1.0, 0.0], (2, 2))


def _rotation(angle):
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.array([[c, -s], [s, c]])


class PolarFlow(AbstractField):
    """Theorem 1 for a ``2 x 2`` ``W_e`` with ``det(W_e) > 0`` in the state ``y = (phi, psi, a, b)``,
    ``W_e = R(phi) diag(e^a, e^b) R(psi)^T``. With ``Ghat = R(phi)^T (dL1/dW) R(psi)``, ``M = -C o Ghat`` (``C_ij =
    sum_j sigma_i^(2(j-1)/N) sigma_j^(2(N-j)/N)``, formed as exponentials of ``a``, ``b``):
    ``a' = -N e^((1-2/N) a) Ghat_11``, ``b' = -N e^((1-2/N) b) Ghat_22``,
    ``phi' = (sigma_2 M_12 + sigma_1 M_21) / (sigma_1^2 - sigma_2^2)``, ``psi' = (sigma_1 M_12 + sigma_2 M_21) /
    (sigma_1^2 - sigma_2^2)`` (no weight decay). Smooth however small ``e^b`` gets."""

    problem: CompletionProblem
    depth: int = eqx.field(static=True)
    kind: ClassVar[str] = "end_to_end_flow"

    def end_to_end(self, y):
        return _rotation(y[0]) @ jnp.diag(jnp.exp(y[2:])) @ _rotation(y[1]).T

    def __call__(self, t, y, args=None):
        N, (phi, psi, a, b) = self.depth, y
        Gh = _rotation(phi).T @ self.problem.grad(self.end_to_end(y)) @ _rotation(psi)
        x = y[2:]
        C = sum(jnp.exp(2 * (j - 1) / N * x[:, None] + 2 * (N - j) / N * x[None, :]) for j in range(1, N + 1))
        M = -C * Gh
        s1, s2 = jnp.exp(a), jnp.exp(b)
        gap = s1**2 - s2**2
        return jnp.array([(s2 * M[0, 1] + s1 * M[1, 0]) / gap, (s1 * M[0, 1] + s2 * M[1, 0]) / gap,
                          -N * jnp.exp((1 - 2 / N) * a) * Gh[0, 0], -N * jnp.exp((1 - 2 / N) * b) * Gh[1, 1]])

    def depth_of(self, y) -> int:
        return self.depth

    def observe(self, ys):
        w_e = jax.vmap(self.end_to_end)(ys)
        return w_e, jax.vmap(self.problem.loss)(w_e), None


def polar_state(W) -> np.ndarray:
    """``(phi, psi, log sigma_1, log sigma_2)`` of a ``2 x 2`` ``W`` with ``det(W) > 0`` and distinct singular values."""
    U, s, Vt = np.linalg.svd(np.asarray(W, dtype=float))
    if np.linalg.det(U) < 0:
        U[:, 1], Vt[1] = -U[:, 1], -Vt[1]
    return np.array([np.arctan2(U[1, 0], U[0, 0]), np.arctan2(Vt[0, 1], Vt[0, 0]), np.log(s[0]), np.log(s[1])])


def _their_start(depth: int, seed: int):
    """Their start: ``N(0, 8e-3^2)`` entries, the seed advanced until ``det(W_e) > 0``."""
    while True:
        layers = init.near_zero((2,) * (depth + 1), START_STD, seed)
        if np.linalg.det(np.asarray(init.end_to_end(layers))) > 0:
            return layers, seed
        seed += 1


def _norms(W: np.ndarray) -> dict:
    s = np.linalg.svd(W, compute_uv=False)
    return {"frobenius": np.sqrt((s**2).sum(-1)), "nuclear": s.sum(-1), "spectral": s[..., 0],
            "schatten_half": np.sqrt(s).sum(-1) ** 2}


@eqx.filter_jit
def _polar_solve(field: PolarFlow, y0, ts, settings: SolverSettings):
    """The polar flow saved at ``ts``: states, status code, steps (the one solve path)."""
    sol, _ = flat_solve(field, y0, 0.0, ts[-1], diffrax.SaveAt(ts=ts), settings)
    return sol.ys, result_code(sol.result), sol.stats["num_steps"]


def _measures(W: np.ndarray, n_ts: int, depth: int, log_abs_det: np.ndarray, det_sign: np.ndarray, status: str,
              num_steps: int) -> dict:
    """Loss, ``w_11``, ``det``'s sign and log, the norms, the effective rank and the sharpness of the balanced layers
    of ``W_e`` at the saves reached (the rows of ``W``; NaN after)."""
    n = len(W)
    pad = lambda v: np.concatenate([np.asarray(v, float), np.full(n_ts - n, np.nan)])  # noqa: E731
    layers = [init.factorize(w, depth) for w in W]
    S = np.asarray(sharpness(problem(), tuple(jnp.stack([ls[j] for ls in layers]) for j in range(depth)), iters=8))
    norms = _norms(W)
    return {"loss": pad(jax.vmap(problem().loss)(jnp.asarray(W))), "w11": pad(W[:, 0, 0]),
            "det_sign": pad(det_sign), "log_abs_det": pad(log_abs_det), "effective_rank": pad(effective_rank(W)),
            "sharpness": pad(S), **{k: pad(norms[k]) for k in NORMS}, "status": status, "num_steps": num_steps}


def _balanced_run(W0, depth: int, ts, settings) -> dict:
    field = PolarFlow(problem(), depth)
    ys, code, steps = _polar_solve(field, jnp.asarray(polar_state(W0)), jnp.asarray(ts), settings)
    ys = np.asarray(ys)
    n = int(np.argmin(np.all(np.isfinite(ys), axis=1))) if not np.all(np.isfinite(ys)) else len(ts)
    W = np.asarray(jax.vmap(field.end_to_end)(jnp.asarray(ys[:n])))
    status = STATUSES[int(code)]
    return _measures(W, len(ts), depth, ys[:n, 2] + ys[:n, 3], np.ones(n), status if status == "ok" else
                     f"{status} at t = {ts[n - 1]:.3g} after {int(steps)} steps", int(steps))


def _their_run(layers0, depth: int, ts, settings) -> dict:
    traj = gradient_flow(problem(), layers0, float(ts[-1]), ts=ts, settings=settings)
    W = np.asarray(traj.end_to_end)[: traj.n_reached]
    sign, logdet = np.linalg.slogdet(W)
    return _measures(W, len(ts), depth, logdet, sign, traj.status if traj.ok else f"{traj.status}: {traj.message}",
                     int(traj.stats["num_steps"]))


def _gd_steps(ts: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``int_0^t S / 2 dt`` at every save (trapezoid): GD with steps at most ``2 / S`` needs at least this many."""
    return np.concatenate([[0.0], np.cumsum(np.diff(ts) * (S[1:] + S[:-1]) / 4)])


def _passes(run: dict, ts: np.ndarray, target: float) -> tuple[bool, str]:
    loss = run["loss"]
    reached = np.isfinite(loss)
    if not np.all(run["det_sign"][reached] > 0):
        flip = int(np.argmax(run["det_sign"][reached] <= 0))
        return False, (f"det(W_e) changed sign in float64 by t = {ts[flip]:.3g}: the run then converged to a finite "
                       f"completion (|w_11| = {abs(run['w11'][reached][-1]):.3g})")
    if not np.nanmin(loss) <= target:
        return False, f"the loss did not reach {target:g} (lowest {np.nanmin(loss):.3g}; {run['status']})"
    window = (loss <= 1e-3) & (loss >= target)
    need = GROWTH * np.sqrt(1e-3 / target)
    for name in ("w11", *NORMS):
        values = np.abs(run[name][window])
        if len(values) < 2 or np.any(np.diff(values) <= 0) or values[-1] < need * values[0]:
            return False, f"{name} did not grow at every save by {need:.3g}x while the loss fell to {target:g}"
    if not abs(run["effective_rank"][reached][-1] - 1) < 1e-3:
        return False, "the effective rank did not end within 1e-3 of 1"
    return True, "passes"


def razin_cohen(data=None, quick: bool = False):
    """Depths 2 to 4, the balanced polar flow and the layer flow from their start, to flow time 1e15 (quick: depths 2
    and 3, 1e9): ``(dataset, summary, figures)``; ``data`` is not used (the problem is the 2 x 2 one)."""
    depths, target = ((2, 3), LOSS_TARGET[True]) if quick else ((2, 3, 4), LOSS_TARGET[False])
    ts = np.concatenate([[0.0], np.geomspace(1e-2, 1e9 if quick else 1e15, 56 if quick else 86)])
    settings = SolverSettings(with_newton("kvaerno5"), rtol=1e-8, atol=1e-10, max_steps=200_000)
    fields = ("loss", "w11", "det_sign", "log_abs_det", "effective_rank", "sharpness", *NORMS)
    values = {f: np.full((len(STARTS), len(depths), len(ts)), np.nan) for f in fields}
    runs = {}
    for j, N in enumerate(depths):
        theirs, seed = _their_start(N, 0)
        W0 = np.asarray(init.end_to_end(theirs))
        for i, name in enumerate(STARTS):
            run = _balanced_run(W0, N, ts, settings) if name == "balanced" else _their_run(theirs, N, ts, settings)
            for f in fields:
                values[f][i, j] = run[f]
            ok, why = _passes(run, ts, target)
            runs[f"{name}_depth{N}"] = {"graded": name == "balanced", "passes": ok, "reason": why,
                                        "status": run["status"], "solver_steps": run["num_steps"], "start_seed": seed}
    gd = np.stack([[_gd_steps(ts, np.nan_to_num(values["sharpness"][i, j])) for j in range(len(depths))]
                   for i in range(len(STARTS))])
    dims = ("start", "depth", "t")
    ds = xr.Dataset({f: (dims, values[f]) for f in fields} | {"gd_steps_lower_bound": (dims, gd)},
                    coords={"start": list(STARTS), "depth": list(depths), "t": ts},
                    attrs={"problem": "2 x 2 completion: w_12 = 1, w_21 = 1, w_22 = 0 observed, w_11 not",
                           "starts": f"their: N(0, {START_STD:g}^2) entries per layer, seed advanced until det(W_e) > 0, "
                                     "the layer flow; balanced: the same W_e(0) in balanced layers, the polar flow "
                                     "(Theorem 1 in (phi, psi, log sigma_1, log sigma_2))",
                           "solver": "kvaerno5 with Newton's method for its stages (rtol 1e-6, atol 1e-8), PID "
                                     "controller rtol 1e-8, atol 1e-10", "rule": rule(target),
                           "gd_steps_lower_bound": "int_0^t S(t) / 2 dt along the flow (S: sharpness of the balanced "
                                                   "layers of W_e)"})
    for key, r in runs.items():
        name, N = key.split("_depth")
        r.update(_at_target(ds.sel(start=name, depth=int(N)), target))
    passes = [r["passes"] for r in runs.values() if r["graded"]]
    summary = {**verdict("agrees" if all(passes) else "partly" if any(passes) else "differs", rule(target)),
               "paper": PAPER, "measured": _measured(runs), "runs": runs,
               "data": "the 2 x 2 completion problem (no data set)"}
    return ds, summary, {"razin-cohen": figure(ds)}


def _at_target(d: xr.Dataset, target: float) -> dict:
    """At the first save with loss <= target: the time, |w_11|, the GD steps bound (words when never reached)."""
    below = np.flatnonzero(d.loss.values <= target)
    if not len(below):
        return {"at_target": f"loss {target:g} not reached (lowest {np.nanmin(d.loss.values):.3g})"}
    k = below[0]
    return {"at_target": {"loss": float(d.loss[k]), "flow_time": float(d.t[k]), "abs_w11": float(abs(d.w11[k])),
                          "effective_rank": float(d.effective_rank[k]),
                          "gd_steps_lower_bound": float(d.gd_steps_lower_bound[k])}}


def _measured(runs: dict) -> str:
    parts = []
    for key, r in runs.items():
        at = r["at_target"]
        if isinstance(at, dict):
            parts.append(f"{key}: |w_11| = {at['abs_w11']:.3g} at loss {at['loss']:.2g} (flow time {at['flow_time']:.3g}; "
                         f"GD would need >= {at['gd_steps_lower_bound']:.2g} steps); {r['reason']}")
        else:
            parts.append(f"{key}: {at}; {r['reason']}")
    return "; ".join(parts)


def figure(ds: xr.Dataset):
    """|w_11|, the nuclear norm and the effective rank against the loss (the loss falls to the right)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, N in enumerate(ds.depth.values):
        for start, style in zip(ds.start.values, ("-", "--")):
            d = ds.sel(start=start, depth=N)
            label = f"depth {N}, {'balanced (polar flow)' if start == 'balanced' else 'their start (layer flow)'}"
            # the balanced depths lie on one law (|w_11| ~ sqrt(2 / (3 L))): markers keep each one visible
            marks = dict(marker="osD"[j % 3], ms=3, markevery=(j, 4)) if start == "balanced" else {}
            axes[0].loglog(d.loss, np.abs(d.w11), style, color=colors[j], label=label, **marks)
            axes[1].loglog(d.loss, d.nuclear, style, color=colors[j], label=label, **marks)
            axes[2].semilogx(d.loss, d.effective_rank, style, color=colors[j], label=label, **marks)
    for ax, ylabel in zip(axes, ("|w_11| (the unobserved entry)", "nuclear norm of W_e", "effective rank of W_e")):
        ax.set_xlabel("loss")
        ax.set_ylabel(ylabel)
        ax.invert_xaxis()
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=7)
    caption(fig, "Razin & Cohen 2x2 completion: the loss goes to 0 while the norms grow and the rank goes to 1",
            ds.attrs["problem"] + "; " + ds.attrs["starts"])
    return fig
