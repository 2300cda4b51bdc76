"""The flows from a small start: each mode's escape time along the layer flow and the end-to-end flow (root state),
against the closed form, the loss plateaus between escapes, and the curves (loss, singular values, effective rank)."""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from ...core import exact, init, problems
from ...core.fields import EndToEndFlow, LayerFlow
from ...core.integrate import gradient_flow
from ...core.linalg import effective_rank, matrix_root
from ...core.passages import first_passages
from ...core.settings import SolverSettings

__all__ = ["FLOWS", "STARTS", "escape_times", "start_layers", "exact_escape_times", "plateau_levels", "saddle_to_saddle",
           "ESCAPE_RULE", "PLATEAU_RULE", "EFFECTIVE_RANK_RULE"]

FLOWS = ("layers", "end_to_end")
STARTS = ("aligned", "random")
ESCAPE_RULE = ("mode i escapes at the first time the i-th largest singular value of W_e reaches s_i / 2 (half of the "
               "target's), located by a diffrax event (bisection on the solver's dense output)")
PLATEAU_RULE = ("plateau j (j modes learned) is read at the midpoint between the closed-form escapes j and j + 1 "
                "(escape 0 = time 0), against sum_{i > j} s_i^2 / 2")
EFFECTIVE_RANK_RULE = "effective rank (Roy & Vetterli 2007): exp(-sum p_i log p_i), p_i = sigma_i / sum_j sigma_j"
DEFAULT_SETTINGS = SolverSettings("tsit5", rtol=1e-10, atol=1e-12, max_steps=3_000_000)


def exact_escape_times(singular_values, alpha: float, depth: int) -> np.ndarray:
    """The closed-form escape times ``t(s_i / 2)`` from ``sigma_i(0) = alpha`` (docs/math.md section 4)."""
    return np.array([exact.time_to_reach(s / 2, s, alpha, depth) for s in singular_values])


def plateau_levels(singular_values) -> np.ndarray:
    """``sum_{i > j} s_i^2 / 2`` for ``j = 0 .. r - 1``: the loss while ``j`` modes are learned."""
    s2 = np.asarray(singular_values, dtype=float) ** 2
    return np.array([s2[j:].sum() / 2 for j in range(len(s2))])


def escape_times(problem, layers0, t1: float, *, flow: str = "layers", settings: SolverSettings | None = None,
                 levels=None) -> dict:
    """Each mode's escape time along ``flow`` (``'layers'``, or ``'end_to_end'``: Theorem 1 in the root state, whose
    weak modes keep their relative accuracy) from ``layers0`` on ``[0, t1]``: :func:`linflow.core.passages.first_passages`
    with ``levels`` (default: half the target's singular values). Returns its dict."""
    if flow not in FLOWS:
        raise ValueError(f"flow must be one of {', '.join(FLOWS)}, got {flow!r}")
    if levels is None:
        levels = np.linalg.svd(np.asarray(problem.target), compute_uv=False) / 2
    if flow == "layers":
        field, y0 = LayerFlow(problem), layers0
    else:
        field = EndToEndFlow(problem, len(layers0), state="root")
        y0 = matrix_root(init.end_to_end(layers0), len(layers0))
    return first_passages(field, y0, levels, t1, settings=settings or DEFAULT_SETTINGS)


def start_layers(problem, depth: int, alpha: float, start: str, seed: int):
    """The aligned start, or the random one: ``W_e(0) = alpha Q_1 Q_2^T`` with random orthogonal ``Q_1``, ``Q_2`` (every
    singular value ``alpha``, no relation to the target's vectors) and, for a square target, ``det(W_e(0))`` of the
    target's sign (a balanced flow keeps the sign of ``det(W_e)``: from the other sign the weakest mode never escapes,
    measured: depth 3, target (2, 0.5), its singular value falls to 1e-10 while the loss stays at ``s_2^2 / 2``),
    factorized into balanced layers."""
    if start == "aligned":
        return init.aligned(problem, depth, alpha)
    rng = np.random.default_rng([seed, 7])
    Q1, Q2 = problems.orthonormal(rng, problem.k, problem.k), problems.orthonormal(rng, problem.d, problem.k)
    W = alpha * Q1 @ Q2.T
    if problem.k == problem.d and np.linalg.det(W) * np.linalg.det(np.asarray(problem.target)) < 0:
        Q1[:, -1] = -Q1[:, -1]
        W = alpha * Q1 @ Q2.T
    return init.factorize(W, depth)


def _curves(problem, layers0, t_exact: np.ndarray, points: int, settings: SolverSettings) -> dict:
    """The layer flow on a log time grid from ``t_1 / 100`` to ``1.3 t_r``, and its loss at the plateaus' midpoints."""
    mids = (np.concatenate([[0.0], t_exact[:-1]]) + t_exact) / 2
    grid = np.concatenate([[0.0], np.geomspace(t_exact[0] / 100, 1.3 * t_exact[-1], points - 1)])
    ts = np.sort(np.concatenate([grid, mids]))
    traj = gradient_flow(problem, layers0, float(ts[-1]), ts=ts, settings=settings)
    W, loss = np.asarray(traj.masked(traj.end_to_end)), np.asarray(traj.masked(traj.loss))
    reached = ~np.isnan(W).any(axis=(1, 2))
    sigma = np.full((len(ts), min(W.shape[1:])), np.nan)
    erank = np.full(len(ts), np.nan)
    sigma[reached] = np.linalg.svd(W[reached], compute_uv=False)
    erank[reached] = np.asarray(effective_rank(W[reached]))
    on_grid = np.isin(ts, grid)
    return {"t": ts[on_grid], "loss": loss[on_grid], "sigma": sigma[on_grid], "effective_rank": erank[on_grid],
            "plateau_loss": loss[np.searchsorted(ts, mids)]}


def saddle_to_saddle(singular_values=(3.0, 1.0, 0.3), depths=(2, 3, 4), alphas=tuple(10.0 ** -np.arange(1, 11)), *,
                     starts=STARTS, flows=FLOWS, settings: SolverSettings | None = None, seed: int = 0,
                     curve_points: int = 81, progress=None) -> xr.Dataset:
    """Escape times of every mode, from every start scale ``alpha``, depth and flow, against the closed form.

    The problem is whitened regression (:func:`linflow.problems.whitened`, ``X^T X / m = I``) with a square target of
    the given distinct singular values. The aligned start has ``W_e(0) = U diag(alpha) V^T`` on the target's singular
    vectors (the closed form applies: ``sigma' = N sigma^(2-2/N) (s - sigma)``); the random start is balanced layers
    with ``W_e(0) = alpha Q_1 Q_2^T`` (random orthogonal ``Q``: every singular value ``alpha``, random orientation,
    ``det`` of the target's sign: :func:`start_layers`; no closed form: its escapes are compared with the aligned
    ones, within a horizon of 3 times the aligned start's last escape). Returns a Dataset (dims ``start, flow, depth,
    alpha, mode``; the aligned layer flow's curves over ``save`` and its plateau losses over ``plateau``) with the
    rules in its attributes; :func:`linflow.studies.saddles.summary` grades it.
    """
    s = np.sort(np.asarray(singular_values, dtype=float))[::-1]
    if len(np.unique(s)) != len(s) or np.any(s <= 0):
        raise ValueError(f"singular_values must be distinct and positive, got {singular_values}")
    depths, alphas = [int(n) for n in depths], [float(a) for a in alphas]
    if any(n < 2 for n in depths) or any(not 0 < a < s[-1] / 2 for a in alphas):
        raise ValueError(f"depths must be >= 2 and every alpha in (0, {s[-1] / 2:g}) (below the weakest escape level)")
    settings = settings or DEFAULT_SETTINGS
    problem = problems.whitened(s, seed=seed)
    tick = progress or (lambda label: None)
    shape = (len(starts), len(flows), len(depths), len(alphas))
    times, steps = np.full(shape + (len(s),), np.inf), np.zeros(shape, np.int64)
    status = np.full(shape, "", dtype=object)
    exact_t = np.array([[exact_escape_times(s, a, n) for a in alphas] for n in depths])
    curves = {}
    for (i, start), (j, flow), (k, N), (m, a) in _grid(starts, flows, depths, alphas):
        layers0 = start_layers(problem, N, a, start, seed)
        horizon = (1.2 if start == "aligned" else 3.0) * exact_t[k, m, -1]
        out = escape_times(problem, layers0, horizon, flow=flow, settings=settings)
        times[i, j, k, m], steps[i, j, k, m] = out["times"], out["num_steps"]
        status[i, j, k, m] = out["status"] if not out["message"] else f"{out['status']}: {out['message']}"
        if start == "aligned" and flow == "layers":
            curves[(k, m)] = _curves(problem, layers0, exact_t[k, m], curve_points, settings)
        tick(f"{start} {flow} N={N} alpha={a:g}")
    return _dataset(s, starts, flows, depths, alphas, times, steps, status, exact_t, curves, settings)


def _grid(*axes):
    return itertools.product(*(list(enumerate(axis)) for axis in axes))


def _dataset(s, starts, flows, depths, alphas, times, steps, status, exact_t, curves, settings) -> xr.Dataset:
    n = max(len(c["t"]) for c in curves.values()) if curves else 1
    cshape = (len(depths), len(alphas))
    cv = {name: np.full(cshape + (n,), np.nan) for name in ("t", "loss", "effective_rank")}
    sig = np.full(cshape + (n, len(s)), np.nan)
    plateau = np.full(cshape + (len(s),), np.nan)
    for (k, m), c in curves.items():
        for name in cv:
            cv[name][k, m, : len(c[name])] = c[name]
        sig[k, m, : len(c["t"])] = c["sigma"][:, : len(s)]
        plateau[k, m] = c["plateau_loss"]
    with np.errstate(invalid="ignore"):
        error = np.abs(times / exact_t[None, None] - 1.0)
    dims = ("start", "flow", "depth", "alpha")
    return xr.Dataset(
        {"escape_time": (dims + ("mode",), times), "escape_time_exact": (("depth", "alpha", "mode"), exact_t),
         "escape_relative_error": (dims + ("mode",), error), "num_steps": (dims, steps),
         "status": (dims, status.astype(str)),
         "plateau_loss": (("depth", "alpha", "plateau"), plateau),
         "plateau_loss_theory": (("plateau",), plateau_levels(s)),
         "curve_t": (("depth", "alpha", "save"), cv["t"]), "curve_loss": (("depth", "alpha", "save"), cv["loss"]),
         "curve_effective_rank": (("depth", "alpha", "save"), cv["effective_rank"]),
         "curve_sigma": (("depth", "alpha", "save", "mode"), sig)},
        coords={"start": list(starts), "flow": list(flows), "depth": depths, "alpha": alphas,
                "mode": np.arange(1, len(s) + 1), "plateau": np.arange(len(s)),
                "singular_value": ("mode", s)},
        attrs={"escape_rule": ESCAPE_RULE, "plateau_rule": PLATEAU_RULE, "effective_rank_rule": EFFECTIVE_RANK_RULE,
               "problem": f"whitened regression, square target with singular values {', '.join(f'{v:g}' for v in s)}",
               "starts": "aligned: W_e(0) = U diag(alpha) V^T on the target's singular vectors (closed form); random: "
                         "balanced layers, random orientation, largest singular value alpha",
               "end_to_end_state": "root (Theta = U diag(s^(1/N)) V^T): the dense W_e state loses the weak modes",
               "solver": settings.name, "rtol": float(settings.rtol), "atol": float(settings.atol),
               "curves": "the aligned start's layer flow, on a log time grid from t_1 / 100 to 1.3 t_r"},
    )
