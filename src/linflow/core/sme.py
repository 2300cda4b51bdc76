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
$m$-dimensional Brownian motion (:func:`noise_factor`). The product $D z$ needs no per-sample gradient:
$G_c^\top z = \nabla_\theta \sum_i (z_i - \bar z)\, \ell_i(\theta)$, one backward pass over the data
(:func:`noise_product`), so a step costs about two full gradients whatever $P$.

Solver: Euler-Maruyama (Itô), the one scheme whose assumptions hold for this noise: it is multiplicative and
non-commutative, so the higher-order schemes that need additive or commutative noise do not apply; its weak order is
1 in ``dt``. Three Brownian paths (:data:`PATHS`): ``"virtual"`` (diffrax's ``VirtualBrownianTree``, resolution
``dt / 2``: the same path at any step size), ``"unsafe"`` (diffrax's ``UnsafeBrownianPath``: exact for a fixed step,
a new path for each ``dt``) and ``"scan"`` (a plain ``lax.scan`` loop with Gaussian increments drawn on a grid of
spacing ``resolution``, so that runs whose ``dt`` are multiples of it share their path: what Richardson
extrapolation in ``dt`` needs; benchmarks/sde.py measures the three).
"""

from __future__ import annotations

import functools
import math

import diffrax
import jax
import lineax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from . import checks as _checks
from . import runs as _runs
from .fields import LayerFlow, hessian_vector_product, network_gradient
from .init import end_to_end
from .parallel import spread
from .problems import Problem, lp_loss
from .sgd import check_inputs
from .trajectory import STATUSES, Trajectory

__all__ = ["PATHS", "SME_SAMPLINGS", "finite_population", "noise_factor", "noise_product", "sme", "sme_ensemble",
           "sme_pair_ensemble"]

SME_SAMPLINGS = ("replacement", "batch")


def finite_population(m: int, batch: int, sampling: str) -> float:
    """``f`` of the minibatch covariance ``f Sigma / B``: 1 with replacement, ``(m - B) / (m - 1)`` without."""
    return 1.0 if sampling == "replacement" else (m - batch) / (m - 1) if m > 1 else 0.0


def noise_factor(problem: Problem, layers, batch: int, sampling: str = "replacement") -> jax.Array:
    r"""``D`` (``P x m``) with ``D D^T = f Sigma / B`` at ``layers`` (flattened as ``jax.flatten_util.ravel_pytree``
    orders them): $D = \sqrt{f / (m B)}\, G_c^\top$, $G_c$ the per-sample gradients of $\ell_i$ minus their mean."""
    flat, unravel = ravel_pytree(tuple(layers))
    G = jax.jacrev(lambda theta: _sample_losses(problem, unravel(theta)))(flat)  # m x P
    return _scale(problem, batch, sampling) * (G - jnp.mean(G, axis=0)).T


def noise_product(problem: Problem, layers, z, batch: int, sampling: str = "replacement"):
    r"""$D z$ for an $m$-vector $z$, as layers: $\sqrt{f / (m B)}\, \nabla_\theta \sum_i (z_i - \bar z)\,
    \ell_i(\theta)$, equal to ``noise_factor(...) @ z`` (flattened) at the cost of one backward pass."""
    zc = z - jnp.mean(z)
    grads = jax.grad(lambda ws: jnp.dot(_sample_losses(problem, ws), zc))(tuple(layers))
    return jax.tree_util.tree_map(lambda g: _scale(problem, batch, sampling) * g, grads)


def _sample_losses(problem: Problem, layers) -> jax.Array:
    r"""The per-sample losses $\ell_i = \frac1p \sum_c \lvert (W_e x_i - y_i)_c \rvert^p$, an $m$-vector."""
    residuals = problem.X @ end_to_end(layers).T - problem.Y
    return jax.vmap(lambda r: lp_loss(r, problem.p))(residuals)


def _scale(problem: Problem, batch: int, sampling: str) -> float:
    r"""$\sqrt{f / (m B)}$, the factor of the centred per-sample gradients in $D$."""
    return math.sqrt(finite_population(problem.m, batch, sampling) / (problem.m * batch))


def _drift(problem: Problem, unravel, eta, order: int):
    def drift(t, theta, args):
        layers = unravel(theta)
        g = network_gradient(problem, layers)
        if order == 2:
            hg = hessian_vector_product(problem, layers, g)
            g = jax.tree_util.tree_map(lambda a, b: a + 0.5 * eta * b, g, hg)
        return -ravel_pytree(g)[0]

    return drift


PATHS = ("virtual", "unsafe", "scan")


def _increment(key, step, substeps: int, m: int, resolution: float):
    """The Brownian increment over step ``step`` of ``substeps`` grid cells of width ``resolution``: the sum of
    their independent ``N(0, resolution)`` draws, cell ``j`` keyed by ``fold_in(key, j)`` (shared by every ``dt``)."""
    return _summed(_draws(key, step * substeps + jnp.arange(substeps), m), resolution)


def _draws(key, cells, m: int):
    """The standard normal draws (``m`` each) of the Brownian grid's ``cells``."""
    return jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(key, j), (m,)))(cells)


def _summed(draws, resolution: float):
    return jnp.sqrt(resolution) * jnp.sum(draws, axis=0)


def _scan_states(problem, layers0, eta, ts, dt, batch, sampling, order, key, resolution):
    """Euler-Maruyama in a plain loop: the flattened states at ``ts`` (multiples of ``dt``), NaN once non-finite."""
    flat0, unravel = ravel_pytree(tuple(layers0))
    step_of = _euler_maruyama(problem, unravel, eta, batch, sampling, order)
    substeps = int(round(dt / resolution))

    def step(k, theta):
        return step_of(theta, dt, _increment(key, k, substeps, problem.m, resolution))

    return _saved(step, flat0, ts, dt), unravel, jnp.asarray(jnp.round(ts[-1] / dt), dtype=jnp.int32)


def _scan_pair_states(problem, layers0, eta, ts, dt, batch, sampling, order, key):
    """:func:`_scan_states` at ``dt`` and at ``dt / 2`` on one grid of resolution ``dt / 2`` in one loop, each cell
    drawn once: ``(coarse states, fine states)``."""
    flat0, unravel = ravel_pytree(tuple(layers0))
    step_of = _euler_maruyama(problem, unravel, eta, batch, sampling, order)
    half = dt / 2

    def step(j, thetas):
        coarse, fine = thetas
        draws = _draws(key, 2 * j + jnp.arange(2), problem.m)
        fine = step_of(fine, half, _summed(draws[:1], half))
        fine = step_of(fine, half, _summed(draws[1:], half))
        return step_of(coarse, dt, _summed(draws, half)), fine

    return _saved(step, (flat0, flat0), ts, dt), unravel, jnp.asarray(jnp.round(ts[-1] / dt), dtype=jnp.int32)


def _euler_maruyama(problem, unravel, eta, batch, sampling, order):
    """One Euler-Maruyama step ``theta + h f(theta) + sqrt(eta) D(theta) dW`` on the flattened layers."""
    drift = _drift(problem, unravel, eta, order)

    def step(theta, h, dw):
        noise = ravel_pytree(noise_product(problem, unravel(theta), dw, batch, sampling))[0]
        return theta + h * drift(None, theta, None) + jnp.sqrt(eta) * noise

    return step


def _saved(step, state0, ts, dt):
    """``step(k, state)`` for ``k = 0, 1, ...``, the state kept at every save time of ``ts`` (multiples of ``dt``)."""
    marks = jnp.asarray(jnp.round(ts / dt), dtype=jnp.int32)

    def segment(carry, mark):
        state, k = carry
        state = jax.lax.fori_loop(k, mark, step, state)
        return (state, mark), state

    _, ys = jax.lax.scan(segment, (state0, jnp.asarray(0, dtype=jnp.int32)), marks)
    return ys


def _solve(problem, layers0, eta, t1, ts, dt, batch, sampling, order, key, path="virtual", resolution=None):
    if path == "scan":
        ys, unravel, steps = _scan_states(problem, layers0, eta, ts, dt, batch, sampling, order, key, resolution)
        result = diffrax.RESULTS.successful
    else:
        ys, unravel, steps, result = _diffrax_states(problem, layers0, eta, t1, ts, dt, batch, sampling, order, key,
                                                     path)
    return _trajectory(problem, layers0, eta, t1, ts, ys, unravel, steps, result, order)


def _trajectory(problem, layers0, eta, t1, ts, ys, unravel, steps, result, order) -> Trajectory:
    """The Trajectory of one path's flattened states ``ys`` at ``ts``."""
    ys = jax.vmap(unravel)(ys)
    field = LayerFlow(problem)
    observed = field.observe(ys)
    stop = _runs.rows_reached((ys, observed))
    code = jnp.where(stop < ts.shape[0], STATUSES.index("nonfinite"),
                     jnp.where(result == diffrax.RESULTS.successful, 0, STATUSES.index("max_steps")))
    return _runs.trajectory(f"sme{order}", len(layers0), ts, ys, observed, code, stop,
                            stats={"num_steps": steps}, eta=eta, t1=t1)


def _diffrax_states(problem, layers0, eta, t1, ts, dt, batch, sampling, order, key, path):
    """Euler-Maruyama on diffrax: ``MultiTerm(ODETerm(drift), ControlTerm(D as a lineax operator, Brownian path))``."""
    flat0, unravel = ravel_pytree(tuple(layers0))
    if path == "virtual":
        brownian = diffrax.VirtualBrownianTree(0.0, t1, tol=dt / 2, shape=(problem.m,), key=key)
    else:  # exact for a fixed step (each increment drawn once); the path depends on dt
        brownian = diffrax.UnsafeBrownianPath(shape=(problem.m,), key=key)
    noise = jax.ShapeDtypeStruct((problem.m,), flat0.dtype)

    def diffusion(t, theta, args):
        def apply(z):
            return jnp.sqrt(eta) * ravel_pytree(noise_product(problem, unravel(theta), z, batch, sampling))[0]
        return lineax.FunctionLinearOperator(apply, noise)

    terms = diffrax.MultiTerm(diffrax.ODETerm(_drift(problem, unravel, eta, order)),
                              diffrax.ControlTerm(diffusion, brownian))
    adjoint = diffrax.RecursiveCheckpointAdjoint() if path == "virtual" else diffrax.ForwardMode()  # diffrax's rule
    sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, t1, dt, flat0, saveat=diffrax.SaveAt(ts=ts),
                              max_steps=int(math.ceil(t1 / dt)) + 2, throw=False, adjoint=adjoint)
    return sol.ys, unravel, sol.stats["num_steps"], sol.result


def _prepare(problem, layers0, eta, t1, batch, sampling, order, dt, ts, path, resolution):
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
    if ts is None and path == "scan":  # the fixed-step loop saves at its steps: up to 101 of them, t1 included
        n = int(round(t1 / dt))
        if n < 1 or abs(n * dt - t1) > 1e-9 * t1:
            raise ValueError(f"t1 must be a whole multiple of dt for path='scan'; got t1 = {t1:g}, dt = {dt:g}")
        ts = dt * jnp.unique(jnp.round(jnp.linspace(0, n, min(n, 100) + 1)))
    ts = jnp.linspace(0.0, t1, 101) if ts is None else jnp.asarray(ts, dtype=jnp.float64)
    if ts.ndim != 1 or ts.shape[0] < 1 or bool(jnp.any(jnp.diff(ts) < 0)) or float(ts[0]) < 0 or float(ts[-1]) > t1:
        raise ValueError(f"ts must be increasing save times in [0, t1 = {t1:g}]; got {ts}")
    if path == "scan":
        resolution = float(_checks.positive("resolution", dt if resolution is None else resolution))
        if abs(dt / resolution - round(dt / resolution)) > 1e-9 * dt / resolution:
            raise ValueError(f"dt must be a whole multiple of resolution for path='scan'; got dt = {dt:g}, "
                             f"resolution = {resolution:g}")
        off = jnp.abs(ts / dt - jnp.round(ts / dt))
        if bool(jnp.any(off > 1e-9 * jnp.maximum(1.0, ts / dt))):
            bad = [float(t) for t in ts[off > 1e-9 * jnp.maximum(1.0, ts / dt)][:3]]
            raise ValueError(f"ts must be multiples of dt = {dt:g} for path='scan' (a fixed-step loop saves at its "
                             f"steps); {', '.join(f'{t:g}' for t in bad)} ... are not")
    elif resolution is not None:
        raise ValueError(f"resolution is the 'scan' path's Brownian grid; path={path!r} takes none")
    return problem, tuple(layers0), batch, eta, t1, dt, ts, resolution


@functools.partial(jax.jit, static_argnames=("t1", "dt", "resolution", "batch", "sampling", "order", "path"))
def _paths(problem, layers0, eta, ts, keys, *, t1, dt, resolution, batch, sampling, order, path):
    """Every key's path in one compiled call (cached across calls with the same shapes and static settings)."""
    run = lambda k: _solve(problem, layers0, eta, t1, ts, dt, batch, sampling, order, k, path, resolution)  # noqa: E731
    # the scan loop over the cores (1.28x on 250 paths); diffrax's loops do not trace under shard_map
    return spread(run, keys) if path == "scan" else jax.vmap(run)(keys)


def sme(problem: Problem, layers0, eta, t1, *, batch: int, key, sampling: str = "replacement", order: int = 1,
        dt=None, ts=None, path: str = "virtual", resolution=None) -> Trajectory:
    """One path of the SME of order ``order`` from ``layers0`` to flow time ``t1`` (Euler-Maruyama, step ``dt``,
    default ``eta``), saved at ``ts`` (default 101 points; with ``path="scan"`` up to 101 of its steps, ``t1`` a
    multiple of ``dt``); ``key`` drives the Brownian motion: a
    ``VirtualBrownianTree`` (``path="virtual"``: the same path at every ``dt``), ``UnsafeBrownianPath``
    (``"unsafe"``: exact for a fixed step, a new path for each ``dt``) or a ``lax.scan`` loop (``"scan"``: the
    path drawn on a grid of spacing ``resolution``, default ``dt``, shared by every ``dt`` that is a multiple of it;
    ``ts`` must be multiples of ``dt``)."""
    runs = sme_ensemble(problem, layers0, eta, t1, batch=batch, keys=jnp.asarray(key)[None], sampling=sampling,
                        order=order, dt=dt, ts=ts, path=path, resolution=resolution)
    return jax.tree_util.tree_map(lambda x: x[0], runs)


def sme_ensemble(problem: Problem, layers0, eta, t1, *, batch: int, keys, sampling: str = "replacement",
                 order: int = 1, dt=None, ts=None, path: str = "virtual", resolution=None) -> Trajectory:
    """:func:`sme` for every key of ``keys`` (shape ``(n, 2)``) in one compiled, vmapped call: a Trajectory with a
    leading ensemble axis. The compiled call is reused by later calls with the same shapes, ``t1``, ``dt``,
    ``resolution``, ``batch``, ``sampling``, ``order`` and ``path`` (``eta``, the data and the start are traced)."""
    problem, layers0, batch, eta, t1, dt, ts, resolution = _prepare(problem, layers0, eta, t1, batch, sampling, order,
                                                                    dt, ts, path, resolution)
    keys = jnp.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must have shape (n, 2) (jax.random.split(key, n)); got {keys.shape}")
    return _paths(problem, layers0, jnp.asarray(eta), ts, keys, t1=t1, dt=dt, resolution=resolution, batch=batch,
                  sampling=sampling, order=order, path=path)


def sme_pair_ensemble(problem: Problem, layers0, eta, t1, *, batch: int, keys, dt, ts,
                      sampling: str = "replacement", order: int = 1) -> tuple[Trajectory, Trajectory]:
    """:func:`sme_ensemble` with ``path="scan"`` at step ``dt`` and at ``dt / 2``, both on the Brownian grid of
    resolution ``dt / 2`` (what Richardson extrapolation in ``dt`` needs): ``(coarse, fine)``, the same paths as the
    two calls (the coarse run equal to the last bit, the fine one to rounding: 3e-16 relative measured, XLA arranging
    the arithmetic of two fine steps in one loop body its own way), each Gaussian cell (``m`` draws, the largest part
    of a step's work) drawn once for both instead of twice: 1.15-1.24x the two calls (benchmarks/sde.py). ``ts`` must
    be multiples of ``dt``."""
    coarse = _prepare(problem, layers0, eta, t1, batch, sampling, order, dt, ts, "scan", dt / 2)
    problem, layers0, batch, eta, t1, dt, ts, _ = coarse
    _prepare(problem, layers0, eta, t1, batch, sampling, order, dt / 2, ts, "scan", dt / 2)
    keys = jnp.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must have shape (n, 2) (jax.random.split(key, n)); got {keys.shape}")
    return _pairs(problem, layers0, jnp.asarray(eta), ts, keys, t1=t1, dt=dt, batch=batch, sampling=sampling,
                  order=order)


@functools.partial(jax.jit, static_argnames=("t1", "dt", "batch", "sampling", "order"))
def _pairs(problem, layers0, eta, ts, keys, *, t1, dt, batch, sampling, order):
    def pair(key):
        (coarse, fine), unravel, steps = _scan_pair_states(problem, layers0, eta, ts, dt, batch, sampling, order, key)
        ok = diffrax.RESULTS.successful
        return (_trajectory(problem, layers0, eta, t1, ts, coarse, unravel, steps, ok, order),
                _trajectory(problem, layers0, eta, t1, ts, fine, unravel, 2 * steps, ok, order))

    return spread(pair, keys)
