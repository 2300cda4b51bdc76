r"""Stochastic modified equations of SGD on the layers (Li, Tai & E 2017/2019; docs/math.md section 12), on
diffrax's SDE machinery.

With $\theta$ the layers flattened, $g = \nabla L^N(\theta)$, $H$ its Hessian and $\Sigma(\theta)$ the covariance of
one sample's gradient, $\Sigma = \frac1m \sum_i \nabla\ell_i \nabla\ell_i^\top - \nabla L \nabla L^\top$, SGD with step
$\eta$ and minibatches of $B$ is modelled in flow time $t = k\eta$ by

$$
d\theta = -\left(g + \tfrac{\eta}{2} [\text{order} = 2]\, H g\right) dt + \sqrt{\eta}\, D(\theta)\, dB_t, \qquad
D D^\top = \frac{f}{B} \Sigma,
$$

weak order 1 (the plain drift) or 2 (the drift of $L + \frac\eta4 \lVert g \rVert^2$, docs/math.md (5.1)). $f = 1$
for minibatches drawn with replacement, $f = (m - B)/(m - 1)$ without. The diffusion is never a $P \times P$ root:
$D = \sqrt{f / (m B)}\, G_c^\top$ with $G_c$ the centred per-sample gradients ($m \times P$), driven by an
$m$-dimensional Brownian motion (:func:`noise_factor`). Solver: Euler-Maruyama (``diffrax.Euler``, Itô), the one of
diffrax's SDE solvers whose assumptions hold for this noise: it is multiplicative and non-commutative, so the
higher-order schemes that need additive or commutative noise do not apply; its weak order is 1 in ``dt``. The
Brownian path is a ``VirtualBrownianTree`` (resolution ``dt / 2``), the same path at any step size.
"""

from __future__ import annotations

import math

import diffrax
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from . import checks as _checks
from . import runs as _runs
from .fields import LayerFlow, hessian_vector_product, network_gradient
from .init import end_to_end
from .problems import Problem, lp_loss
from .sgd import check_inputs
from .trajectory import STATUSES, Trajectory

__all__ = ["PATHS", "SME_SAMPLINGS", "finite_population", "noise_factor", "sme", "sme_ensemble"]

SME_SAMPLINGS = ("replacement", "batch")


def finite_population(m: int, batch: int, sampling: str) -> float:
    """``f`` of the minibatch covariance ``f Sigma / B``: 1 with replacement, ``(m - B) / (m - 1)`` without."""
    return 1.0 if sampling == "replacement" else (m - batch) / (m - 1) if m > 1 else 0.0


def noise_factor(problem: Problem, layers, batch: int, sampling: str = "replacement") -> jax.Array:
    r"""``D`` (``P x m``) with ``D D^T = f Sigma / B`` at ``layers`` (flattened as ``jax.flatten_util.ravel_pytree``
    orders them): $D = \sqrt{f / (m B)}\, G_c^\top$, $G_c$ the per-sample gradients of $\ell_i$ minus their mean."""
    flat, unravel = ravel_pytree(tuple(layers))

    def sample_loss(theta, x, y):
        return lp_loss(end_to_end(unravel(theta)) @ x - y, problem.p)

    G = jax.vmap(jax.grad(sample_loss), in_axes=(None, 0, 0))(flat, problem.X, problem.Y)
    Gc = G - jnp.mean(G, axis=0)
    f = finite_population(problem.m, batch, sampling)
    return jnp.sqrt(f / (problem.m * batch)) * Gc.T


def _drift(problem: Problem, unravel, eta, order: int):
    def drift(t, theta, args):
        layers = unravel(theta)
        g = network_gradient(problem, layers)
        if order == 2:
            hg = hessian_vector_product(problem, layers, g)
            g = jax.tree_util.tree_map(lambda a, b: a + 0.5 * eta * b, g, hg)
        return -ravel_pytree(g)[0]

    return drift


PATHS = ("virtual", "unsafe")


def _solve(problem, layers0, eta, t1, ts, dt, batch, sampling, order, key, path="virtual"):
    flat0, unravel = ravel_pytree(tuple(layers0))
    if path == "virtual":
        brownian = diffrax.VirtualBrownianTree(0.0, t1, tol=dt / 2, shape=(problem.m,), key=key)
    else:  # exact for a fixed step (each increment drawn once), about 10x faster; the path depends on dt
        brownian = diffrax.UnsafeBrownianPath(shape=(problem.m,), key=key)

    def diffusion(t, theta, args):
        return jnp.sqrt(eta) * noise_factor(problem, unravel(theta), batch, sampling)

    terms = diffrax.MultiTerm(diffrax.ODETerm(_drift(problem, unravel, eta, order)),
                              diffrax.ControlTerm(diffusion, brownian))
    adjoint = diffrax.RecursiveCheckpointAdjoint() if path == "virtual" else diffrax.ForwardMode()  # diffrax's rule
    sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, t1, dt, flat0, saveat=diffrax.SaveAt(ts=ts),
                              max_steps=int(math.ceil(t1 / dt)) + 2, throw=False, adjoint=adjoint)
    ys = jax.vmap(unravel)(sol.ys)
    field = LayerFlow(problem)
    observed = field.observe(ys)
    stop = _runs.rows_reached((ys, observed))
    code = jnp.where(stop < ts.shape[0], STATUSES.index("nonfinite"),
                     jnp.where(sol.result == diffrax.RESULTS.successful, 0, STATUSES.index("max_steps")))
    return _runs.trajectory(f"sme{order}", len(layers0), ts, ys, observed, code, stop,
                            stats={"num_steps": sol.stats["num_steps"]}, eta=eta, t1=t1)


def _prepare(problem, layers0, eta, t1, batch, sampling, order, dt, ts, path="virtual"):
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}; got {path!r}")
    problem, layers0, batch = check_inputs(problem, layers0, batch, sampling if sampling in SME_SAMPLINGS else "batch")
    if sampling not in SME_SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SME_SAMPLINGS)} (independent minibatches); got "
                         f"{sampling!r}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2; got {order!r}")
    eta = float(_checks.positive("eta", eta))
    t1 = float(_checks.positive("t1", t1))
    dt = float(_checks.positive("dt", eta if dt is None else dt))
    ts = jnp.linspace(0.0, t1, 101) if ts is None else jnp.asarray(ts, dtype=jnp.float64)
    return problem, tuple(layers0), batch, eta, t1, dt, ts


def sme(problem: Problem, layers0, eta, t1, *, batch: int, key, sampling: str = "replacement", order: int = 1,
        dt=None, ts=None, path: str = "virtual") -> Trajectory:
    """One path of the SME of order ``order`` from ``layers0`` to flow time ``t1`` (Euler-Maruyama, step ``dt``,
    default ``eta``), saved at ``ts`` (default 101 points); ``key`` drives the Brownian motion: a
    ``VirtualBrownianTree`` (``path="virtual"``: the same path at every ``dt``) or ``UnsafeBrownianPath``
    (``"unsafe"``: exact for a fixed step, faster, a new path for each ``dt``)."""
    problem, layers0, batch, eta, t1, dt, ts = _prepare(problem, layers0, eta, t1, batch, sampling, order, dt, ts, path)
    return jax.jit(lambda k: _solve(problem, layers0, eta, t1, ts, dt, batch, sampling, order, k, path))(
        jnp.asarray(key))


def sme_ensemble(problem: Problem, layers0, eta, t1, *, batch: int, keys, sampling: str = "replacement",
                 order: int = 1, dt=None, ts=None, path: str = "virtual") -> Trajectory:
    """:func:`sme` for every key of ``keys`` (shape ``(n, 2)``) in one compiled, vmapped call: a Trajectory with a
    leading ensemble axis."""
    problem, layers0, batch, eta, t1, dt, ts = _prepare(problem, layers0, eta, t1, batch, sampling, order, dt, ts, path)
    keys = jnp.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must have shape (n, 2) (jax.random.split(key, n)); got {keys.shape}")
    return jax.jit(jax.vmap(lambda k: _solve(problem, layers0, eta, t1, ts, dt, batch, sampling, order, k, path)))(keys)
