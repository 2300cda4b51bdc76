r"""The central flow of gradient descent at the edge of stability (Cohen, Damian, Talwalkar, Kolter & Lee,
ICLR 2025; docs/math.md section 8), on the layers of a deep linear network.

Gradient descent with step $\eta$ is stable near a point only while the sharpness $S$ (the largest
eigenvalue of the Hessian $H$ of the network loss $L = L^N$, weight decay included) is below
$2 / \eta$. Past it, GD oscillates along the top eigenvector $u$ while its time average follows,
in flow time $t = k\eta$ (docs/math.md (8.1)),

$$
\frac{dw}{dt} = -\left[\nabla L(w) + \frac12 \nabla \langle H(w), \Sigma(t) \rangle\right],
$$

with $\Sigma$ the covariance of the oscillation, supported on the eigenspace of $H$ at $2 / \eta$.
With one eigenvalue there, $\Sigma = \sigma^2 u u^\top$, $\langle H, \Sigma \rangle = \sigma^2 S(w)$ and
$\nabla S = D^3 L(w)[u, u]$, so (8.2)

$$
\frac{dw}{dt} = -\nabla L - \frac{\sigma^2}{2} \nabla S, \qquad
\sigma^2 = \frac{2 \langle -\nabla L, \nabla S \rangle}{\lVert \nabla S \rVert^2}
$$

(the multiplier that keeps $dS/dt = 0$). The constraint is a complementarity problem: it is
*inactive* ($\sigma = 0$: the central flow is the gradient flow) while $S < 2 / \eta$ or while the
gradient flow itself would lower $S$ ($\langle -\nabla L, \nabla S \rangle \le 0$), *active* otherwise. The
integration runs in phases: a gradient-flow phase ends at the event $S = 2 / \eta$ (located by a root
finder on the solver's dense output), an active phase ends when $\langle -\nabla L, \nabla S \rangle$ falls to 0
(the constraint lets go) or when a second eigenvalue reaches $2 / \eta$.

Several eigenvalues at $2 / \eta$ (the paper's semidefinite complementarity problem): with $U$ an
orthonormal basis of the $k$ held eigenvectors, $\Sigma = U X U^\top$ and $G_{ij} = D^3 L(w)[u_i, u_j]$ (8.3),

$$
\frac{dw}{dt} = -\left(\nabla L + \frac12 \sum_{ij} X_{ij} G_{ij}\right), \qquad X \succeq 0 \text{ minimizing }
\left\lVert \nabla L + \frac12 \sum_{ij} X_{ij} G_{ij} \right\rVert
$$

(the projection of $-\nabla L$ on the tangent cone $\{v : U^\top DH[v]\, U \preceq 0\}$; complementarity
$\langle X, \frac{d}{dt}(U^\top H U) \rangle = 0$). In a phase holding $k$ eigenvalues $X$ is positive definite and
solves the $k (k + 1) / 2$ linear equations $\frac{d}{dt}(U^\top H U) = 0$ (:func:`covariance`); the phase ends where
the smallest eigenvalue of $X$ falls to 0 ($k - 1$) or where $\lambda_{k+1}$ reaches $2 / \eta$ ($k + 1$).
``k = 1`` is the formula above. ``k >= 2`` uses the dense Hessian up to :data:`DENSE_MAX_PARAMS` parameters and
LOBPCG on Hessian-vector products with a block of ``k + 1`` vectors above (:func:`block_top`; Lanczos from one
start vector cannot resolve an eigenvalue held at multiplicity ``k``).

Numerics: ``S``, ``u`` and ``lambda_2`` come from a dense Hessian (``jax.hessian`` of the flattened
loss, ``eigh``) up to :data:`DENSE_MAX_PARAMS` parameters and from Lanczos on Hessian-vector products
above (the top Ritz pair after :data:`LANCZOS_ITERS` steps). ``grad S`` is the gradient of
``w -> u^T H(w) u`` at fixed ``u`` (a JVP nested in a gradient). In the active phase the multiplier
carries a restoring term, ``dS/dt = -(S - 2/eta) / eta``, which vanishes on the exact solution and
keeps the solver's round-off from drifting off ``S = 2 / eta`` (``d(U^T H U)/dt = -(U^T H U - 2/eta) / eta``
for several).
"""

from __future__ import annotations

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree

from . import checks as _checks, runs as _runs
from .catalog import FLOW_TOLERANCES
from .curvature import lanczos_top
from .fields import AbstractLayerField, observe_layers, network_gradient, network_loss
from .integrate import time_grid
from .settings import SolverSettings, flat_solve, require_adaptive, result_code, settings_from
from .problems import Problem
from .trajectory import STATUSES, Trajectory

__all__ = ["CentralFlow", "central_flow", "block_top", "sharpness_and_direction", "sharpness_gradient",
           "curvature_gradients", "multiplier", "covariance"]


def _flat_loss(problem: Problem, unravel):
    return lambda v: network_loss(problem, unravel(v))


DENSE_MAX_PARAMS = 256  # above this many parameters the top eigenpair comes from Lanczos, not a dense Hessian
LANCZOS_ITERS = 64
LOBPCG_ITERS = 200


def sharpness_and_direction(problem: Problem, layers) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(S, u, lambda_2)``: the largest Hessian eigenvalue of ``L^N`` in the layers, its unit eigenvector
    (flattened like ``jax.flatten_util.ravel_pytree(layers)``) and the second largest eigenvalue: a dense
    ``eigh`` up to :data:`DENSE_MAX_PARAMS` parameters, Lanczos (:data:`LANCZOS_ITERS` Hessian-vector products,
    full reorthogonalization, a fixed start) above."""
    flat, unravel = ravel_pytree(layers)
    if flat.size > DENSE_MAX_PARAMS:
        grad = jax.grad(_flat_loss(problem, unravel))
        hvp = lambda v: jax.jvp(grad, (flat,), (v,))[1]  # noqa: E731
        S, second, u = lanczos_top(hvp, flat.size, LANCZOS_ITERS, jax.random.PRNGKey(0))
        return S, u, second
    H = jax.hessian(_flat_loss(problem, unravel))(flat)
    lam, V = jnp.linalg.eigh(0.5 * (H + H.T))
    second = lam[-2] if lam.shape[0] > 1 else -jnp.inf
    return lam[-1], V[:, -1], second


def sharpness_gradient(problem: Problem, layers, u: jax.Array) -> jax.Array:
    """``grad S = D^3 L(w)[u, u]``: the gradient of ``w -> u^T H(w) u`` at fixed unit ``u`` (flattened)."""
    return curvature_gradients(problem, layers, jnp.asarray(u)[:, None])[0, 0]


def curvature_gradients(problem: Problem, layers, U: jax.Array) -> jax.Array:
    """``G[i, j] = grad_w (u_i^T H(w) u_j) = D^3 L(w)[u_i, u_j]`` at fixed orthonormal columns ``u_i`` of ``U``
    (flattened like the layers): shape ``(k, k, n)``, symmetric in ``i, j``."""
    flat, unravel = ravel_pytree(layers)
    U = jax.lax.stop_gradient(U)
    grad = jax.grad(_flat_loss(problem, unravel))

    def restricted_hessian(v):  # U^T H(v) U
        return jax.vmap(lambda u: jax.jvp(grad, (v,), (u,))[1])(U.T) @ U

    return jax.jacrev(restricted_hessian)(flat)


def multiplier(g: jax.Array, grad_s: jax.Array, excess=0.0, rate=0.0) -> jax.Array:
    """``sigma^2 = 2 (<-g, grad S> + rate * excess) / ||grad S||^2``: keeps ``dS/dt = -rate * excess``
    along ``dw/dt = -g - (sigma^2 / 2) grad S`` (``excess = S - 2/eta``)."""
    return 2.0 * (-jnp.vdot(g, grad_s) + rate * excess) / jnp.maximum(jnp.vdot(grad_s, grad_s), 1e-300)


def covariance(g: jax.Array, G: jax.Array, excess: jax.Array, rate=0.0) -> tuple[jax.Array, jax.Array]:
    """``(X, drift)`` on a ``k``-dimensional unstable eigenspace with orthonormal basis ``U`` (``Sigma = U X U^T``).

    Along ``dw/dt = -g - drift`` with ``drift = (1/2) grad <H, Sigma> = (1/2) sum_ij X_ij G[i, j]``, the
    restricted Hessian ``M = U^T H U`` moves as ``dM_ij/dt = <G[i, j], dw/dt>``; ``X`` (symmetric) solves the
    ``k (k + 1) / 2`` linear equations ``dM/dt = -rate * excess`` (``excess = M - (2 / eta) I``). With ``k = 1``
    this is :func:`multiplier`: ``X = sigma^2``, ``drift = (sigma^2 / 2) grad S``."""
    k = G.shape[0]
    iu, ju = np.triu_indices(k)
    Gp = G[iu, ju]  # (m, n): the distinct G[i, j], i <= j
    twice = np.where(iu == ju, 1.0, 2.0)  # X_ij and X_ji both appear in the sum
    A = 0.5 * (Gp @ Gp.T) * twice[None, :]
    x = jnp.linalg.solve(A, -(Gp @ g) + rate * excess[iu, ju])
    X = jnp.zeros((k, k), x.dtype).at[iu, ju].set(x).at[ju, iu].set(x)
    return X, 0.5 * (twice * x) @ Gp


def block_top(problem: Problem, layers, k: int, iters: int = LOBPCG_ITERS) -> tuple[jax.Array, jax.Array]:
    """``(lam, U)``: the ``k`` largest Hessian eigenvalues of ``L^N`` (descending) and their unit eigenvectors
    (columns, flattened like the layers), by LOBPCG (``jax.experimental.sparse.linalg.lobpcg_standard``) on
    Hessian-vector products with a block of ``k`` vectors from a fixed random start: a block resolves an eigenvalue
    of multiplicity up to ``k``, where Lanczos from one vector cannot. Needs ``5 k <`` the number of parameters."""
    from jax.experimental.sparse.linalg import lobpcg_standard

    flat, unravel = ravel_pytree(layers)
    grad = jax.grad(_flat_loss(problem, unravel))
    hvps = jax.vmap(lambda v: jax.jvp(grad, (flat,), (v,))[1], in_axes=1, out_axes=1)
    X0 = jax.random.normal(jax.random.PRNGKey(0), (flat.size, k), flat.dtype)
    lam, U, _ = lobpcg_standard(hvps, X0, m=iters)
    return lam, U


def top_eigenpairs(problem: Problem, layers, k: int) -> tuple[jax.Array, jax.Array]:
    """``(lam, U)``: the ``max(k + 1, 2)`` largest Hessian eigenvalues (descending) and the unit eigenvectors of the
    ``k`` largest (columns). ``k <= 1`` as :func:`sharpness_and_direction` (dense or Lanczos); ``k >= 2`` from the
    dense Hessian up to :data:`DENSE_MAX_PARAMS` parameters, by :func:`block_top` (LOBPCG, a block of ``k + 1``)
    above (Lanczos from one start vector cannot resolve an eigenvalue held at multiplicity ``k``)."""
    if k <= 1:
        S, u, second = sharpness_and_direction(problem, layers)
        return jnp.stack([S, second]), u[:, None][:, :k]
    flat, unravel = ravel_pytree(layers)
    if flat.size > DENSE_MAX_PARAMS:
        lam, U = block_top(problem, layers, k + 1)
        return lam, U[:, :k]
    lam, V = jnp.linalg.eigh(jax.hessian(_flat_loss(problem, unravel))(flat))
    lam = jnp.concatenate([lam[::-1], jnp.full(max(0, k + 1 - lam.shape[0]), -jnp.inf)])
    return lam[: k + 1], V[:, ::-1][:, :k]


class CentralFlow(AbstractLayerField):
    """The central flow's vector field on the layers, in one phase: ``unstable = 0`` is the gradient flow,
    ``unstable = k >= 1`` the flow constrained to hold the ``k`` largest Hessian eigenvalues at ``2 / eta``
    (``Sigma`` supported on their eigenspace; see the module docstring).

    ``__call__(t, y, args)`` as diffrax wants; ``parts(y)`` gives ``(lam, X, release, g, drift)``: the
    ``max(k + 1, 2)`` largest eigenvalues, ``X`` (``k x k``), the smallest eigenvalue of ``X`` without the restoring
    term (the constraint lets go where it falls to 0; ``2 <-grad L, grad S> / ||grad S||^2`` for ``k = 1``), the
    flattened gradient and ``(1/2) grad <H, Sigma>``.
    """

    problem: Problem
    eta: jax.Array
    unstable: int = eqx.field(static=True, default=0)
    kind: ClassVar[str] = "central_flow"
    discrete_kind: ClassVar[str] = "gradient_descent"

    def parts(self, y):
        k = int(self.unstable)
        lam, U = top_eigenpairs(self.problem, y, k)
        g = ravel_pytree(network_gradient(self.problem, y))[0]
        if k == 0:
            return lam, jnp.zeros((0, 0)), jnp.asarray(jnp.inf), g, jnp.zeros_like(g)
        G = curvature_gradients(self.problem, y, U)
        X, drift = covariance(g, G, jnp.diag(lam[:k] - 2.0 / self.eta), 1.0 / self.eta)
        X0 = covariance(g, G, jnp.zeros((k, k)))[0]
        return lam, X, jnp.linalg.eigvalsh(X0)[0], g, drift

    def __call__(self, t, y, args=None):
        if not self.unstable:
            return jax.tree_util.tree_map(jnp.negative, network_gradient(self.problem, y))
        _, unravel = ravel_pytree(y)
        _, _, _, g, drift = self.parts(y)
        return unravel(-(g + drift))

    @property
    def modelled_step(self):
        return self.eta

    def event(self, y) -> jax.Array:
        """The function of the layers whose sign change ends this phase: ``S - 2/eta`` (rising through 0) for the
        gradient flow; ``min(release, 2/eta - lambda_{k+1})`` (falling through 0: the constraint lets go, or one more
        eigenvalue reaches ``2 / eta``) for a constrained phase."""
        threshold = 2.0 / self.eta
        if not self.unstable:
            return sharpness_and_direction(self.problem, y)[0] - threshold
        lam, _, release = self.parts(y)[:3]
        return jnp.minimum(release, threshold - lam[self.unstable])


@eqx.filter_jit
def _phase(field: CentralFlow, y0, t0, t1, ts, settings: SolverSettings, root_tol):
    """One phase from layers ``y0`` at ``t0``: saves at ``ts`` (clipped to ``[t0, t1]``) and at its end; ends at
    ``t1`` or where ``field.event`` crosses 0. Returns ``(t_end, flat states at ts (inf after the end), flat state at
    the end, status code, events fired, stats)``."""
    unravel = ravel_pytree(y0)[1]
    event = diffrax.Event(lambda t, y, args, **kw: field.event(unravel(y)),
                          root_finder=optx.Bisection(rtol=root_tol, atol=root_tol), direction=not field.unstable)
    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=jnp.clip(ts, t0, t1)), diffrax.SubSaveAt(t1=True)])
    sol, _ = flat_solve(field, y0, t0, t1, saveat, settings, event=event)
    fired = jnp.asarray(sol.event_mask)
    stats = jnp.stack([jnp.asarray(sol.stats[k]) for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")])
    code = jnp.where(sol.result == diffrax.RESULTS.event_occurred, 0, result_code(sol.result))
    return sol.ts[1][-1], sol.ys[0], sol.ys[1][-1], code, fired, stats


@eqx.filter_jit
def _diagnose(problem: Problem, eta, layers, unstable: int = 1):
    """``(S, tr X, release, lambda_{k+1})`` at saved layers (leading axis: saves) in the phase holding ``unstable``
    eigenvalues (``lambda_2`` when ``unstable == 0``)."""
    def one(y):
        lam, X, release = CentralFlow(problem, eta, unstable).parts(y)[:3]
        return lam[0], jnp.trace(X), release, lam[max(unstable, 1)]
    return jax.vmap(one)(layers)


def _bucketed(rows: np.ndarray, fill) -> jax.Array:
    """``rows`` extended to a power of two (at least 64) by repeating ``fill`` (or the last row): runs with
    different numbers of saves then share one compiled phase."""
    size = max(64, 1 << (len(rows) - 1).bit_length())
    extra = np.repeat(rows[-1:] if fill is None else np.full((1, *rows.shape[1:]), fill), size - len(rows), axis=0)
    return jnp.asarray(np.concatenate([rows, extra]))


def _at(problem: Problem, eta, layers, k: int) -> tuple[float, float, float, float]:
    """:func:`_diagnose` at one state: ``(S, tr X, release, lambda_{k+1})``."""
    return tuple(float(x[0]) for x in _diagnose(problem, eta, tuple(w[None] for w in layers), k))


def _run_phases(problem, eta_a, layers0, k, ts, t1, settings: SolverSettings, max_switches) -> dict:
    """The phases from ``layers0`` holding ``k`` eigenvalues: the flat states at ``ts`` (``Y``, ``filled`` where
    reached), the number held at each (``phase_of``), step counts, switches, the status code, ``several`` (1
    where a second eigenvalue arrived and could not be followed: no longer happens, the block eigensolver follows
    it; kept in the stats), ``most`` (the largest number
    held) and ``activated_at``."""
    eta, (flat0, unravel), n = float(eta_a), ravel_pytree(layers0), len(ts)
    Y, phase_of, filled = np.zeros((n, flat0.size)), np.zeros(n, np.int64), np.zeros(n, bool)
    t, y, used, switches, code, several, most = 0.0, layers0, np.zeros(3, np.int64), 0, 0, 0, k
    activated_at = 0.0 if k else -1.0
    while True:
        t_end, ys, y_end, code, fired, stats = _phase(CentralFlow(problem, eta_a, k), y, _checks.f64(t),
                                               _checks.f64(t1), _bucketed(ts, t1), settings, 1e-12)
        t_end, code, fired, ys = float(t_end), int(code), bool(fired), np.asarray(ys)[:n]
        used += np.asarray(stats)
        inside = (ts >= t) & (ts <= t_end) & np.all(np.isfinite(ys), axis=1) & ~filled
        Y[inside], phase_of[inside], filled[inside] = ys[inside], k, True
        if code != 0 or not fired or t_end >= t1:
            break
        if used[0] >= settings.max_steps:  # the budget is shared by the phases (each phase may use all of it: one compilation)
            code = STATUSES.index("max_steps")
            break
        if switches >= max_switches:
            code = STATUSES.index("failed")
            break
        y = unravel(y_end)
        if k == 0:
            k = 1
        elif _at(problem, eta_a, y, k)[3] >= 2.0 / eta * (1 - 1e-6):  # one more eigenvalue reached 2 / eta
            k += 1  # (above DENSE_MAX_PARAMS the k + 1 largest come from LOBPCG: block_top)
        else:  # the constraint lets go of one direction
            k -= 1
        switches, t, most = switches + 1, t_end, max(most, k)
        if k and activated_at < 0:
            activated_at = t
    return {"Y": Y, "phase_of": phase_of, "filled": filled, "used": used, "switches": switches, "code": code,
            "several": several, "most": most, "activated_at": activated_at}


def _per_save(problem: Problem, eta_a, Y: np.ndarray, phase_of: np.ndarray, unravel) -> tuple[np.ndarray, np.ndarray]:
    """``S`` and ``tr Sigma`` at every save, each with the number of eigenvalues its phase held."""
    n = len(Y)
    S, s2 = np.zeros(n), np.zeros(n)
    for j in np.unique(phase_of):
        S_j, s2_j = (np.asarray(x)[:n] for x in _diagnose(problem, eta_a, jax.vmap(unravel)(_bucketed(Y, None)), int(j))[:2])
        S, s2 = np.where(phase_of == j, S_j, S), np.where(phase_of == j, s2_j, s2)
    return S, s2


def central_flow(
    problem: Problem,
    layers0,
    eta,
    t1,
    *,
    ts=None,
    n_save: int = 201,
    solver="tsit5",
    rtol: float = FLOW_TOLERANCES[0],
    atol: float = FLOW_TOLERANCES[1],
    max_steps: int = 100_000,
    max_switches: int = 50,
    settings: SolverSettings | None = None,
) -> Trajectory:
    """The central flow of gradient descent with step ``eta`` from ``layers0`` on ``[0, t1]`` (flow time ``t = k eta``).

    ``dw/dt = -grad L - (sigma^2 / 2) grad S`` with ``sigma^2 = 2 <-grad L, grad S> / ||grad S||^2`` while
    the constraint ``S <= 2 / eta`` is active, the gradient flow otherwise (module docstring). An adaptive
    diffrax solver with events switches the constraint on where ``S`` reaches ``2 / eta`` and off where the
    gradient flow would lower ``S``. A driver in Python runs the phases (each phase is one compiled solve;
    this run is not itself traceable by ``jax.jit``). The solver options (an adaptive solver) come as keywords or
    in one :class:`~linflow.SolverSettings`.

    Returns a :class:`~linflow.Trajectory` of kind ``central_flow`` whose ``extras`` hold, per save,
    ``sharpness`` (``S``), ``sigma2`` (``tr Sigma``: the multiplier ``sigma^2`` with one held eigenvalue, 0 where
    the constraint is off; the predicted variance of GD's oscillation), ``active`` (1.0 where the constraint is
    on) and ``unstable`` (the number ``k`` of eigenvalues held at ``2 / eta``); ``stats`` add ``switches``
    (phase changes), ``activated_at`` (first time the constraint switched on, -1.0 if never), ``max_unstable``
    (the largest ``k``) and ``several_unstable`` (0, kept for compatibility: it was 1 where a second eigenvalue
    reached ``2 / eta`` above :data:`DENSE_MAX_PARAMS` parameters, before :func:`block_top` followed it there).

    Raises ValueError when the start is already past the threshold (``S(w0) > 2 / eta``: GD is unstable
    from its first step; the catapult regime, see :mod:`linflow.catapult`).

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([1.5, 0.5])
        >>> layers = linflow.init.balanced((2, 2, 2), 0.3)
        >>> cf = linflow.central_flow(prob, layers, eta=0.72, t1=40.0, n_save=5)
        >>> round(float(cf.extras["sharpness"][-1]) * 0.72, 6)  # held at 2 / eta
        2.0
    """
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((problem, layers0, eta, t1, ts))):
        raise TypeError("central_flow runs its phases from Python (events switch the constraint on and off) and "
                        "cannot be traced by jax.jit, jax.vmap or jax.grad: call it with concrete values")
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    eta = _checks.positive("eta", eta)
    t1, ts = time_grid(t1, ts, n_save, "flow", None)
    t1, ts = float(t1), np.asarray(ts, dtype=float)
    max_switches = _checks.integer("max_switches", max_switches, minimum=0)
    who = "central_flow (it locates its events on the solver's dense output)"
    require_adaptive(who, solver if settings is None else settings.solver)
    settings = settings_from(settings, central_flow, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps)
    eta_a = _checks.f64(eta)
    S0, _, push0, _ = _at(problem, eta_a, layers0, 1)
    if S0 > 2.0 / eta * (1 + 1e-9):
        raise ValueError(f"the start is past the stability threshold: S(w0) = {S0:.6g} > 2 / eta = {2 / eta:.6g}; "
                         f"GD is unstable from its first step (catapult or divergence), where no central flow applies")
    k0 = int(S0 >= 2.0 / eta * (1 - 1e-9) and push0 > 0)  # eigenvalues held at 2 / eta at the start
    run = _run_phases(problem, eta_a, layers0, k0, ts, t1, settings, max_switches)
    return _trajectory(problem, eta_a, layers0, ts, t1, run, settings)


class CentralTrajectory(Trajectory):
    """The Trajectory of :func:`central_flow`: its message also says where a second eigenvalue reached ``2 / eta``
    on a network too large for the dense Hessian (``stats["several_unstable"]``)."""

    @property
    def message(self) -> str:
        message = super().message
        if message and int(self.stats.get("several_unstable", 0)):
            message += ("; a second Hessian eigenvalue reached 2 / eta there, and on a network this large (above "
                        f"{DENSE_MAX_PARAMS} parameters) the several-eigenvalue central flow is not followed: it "
                        "needs the dense Hessian")
        return message


def _trajectory(problem, eta_a, layers0, ts, t1, run: dict, settings: SolverSettings) -> Trajectory:
    """The Trajectory of the phases ``run`` (:func:`_run_phases`): saves, status, stats and the per-save extras."""
    n, unravel, phase_of, used = len(ts), ravel_pytree(layers0)[1], run["phase_of"], run["used"]
    stop = n if run["filled"].all() else int(np.argmin(run["filled"]))
    code = STATUSES.index("failed") if stop < n and run["code"] == 0 else run["code"]
    layers = jax.vmap(unravel)(jnp.asarray(run["Y"]))
    S, s2 = _per_save(problem, eta_a, run["Y"], phase_of, unravel)
    stats = {"num_steps": used[0], "num_accepted_steps": used[1], "num_rejected_steps": used[2],
             "nfev": -1 if settings.spec is None else settings.spec.nfev(int(used[0])), "switches": run["switches"],
             "several_unstable": run["several"], "max_unstable": run["most"],
             "activated_at": run["activated_at"]}
    return _runs.trajectory("central_flow", len(layers0), jnp.asarray(ts), layers, observe_layers(problem, layers),
                            code, stop, stats={k: jnp.asarray(v) for k, v in stats.items()}, eta=eta_a,
                            t1=jnp.asarray(t1), solver=settings.name, cls=CentralTrajectory,
                            extras={"sharpness": jnp.asarray(S), "sigma2": jnp.asarray(s2),
                                    "active": jnp.asarray(phase_of > 0, float), "unstable": jnp.asarray(phase_of, float)})
