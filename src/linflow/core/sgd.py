r"""Stochastic gradient descent on the layers, on minibatches of a regression problem's samples
(docs/math.md section 12).

The loss is the finite sum $L^1(W) = \frac1m \sum_i \ell_i(W)$, $\ell_i = \frac1p \sum_c \lvert (W x_i - y_i)_c
\rvert^p$ (docs/math.md (1.1)); a step uses the mean over a minibatch $\mathcal B$ of $B$ samples:

$$
W_j \leftarrow (1 - \eta\lambda) W_j - \eta \frac{\partial}{\partial W_j} \frac1B \sum_{i \in \mathcal B}
\ell_i(W_N \cdots W_1).
$$

Three ways to draw $\mathcal B$ (:data:`SAMPLINGS`): ``"replacement"`` ($B$ indices drawn uniformly and
independently, the batches independent across steps: $\operatorname{Cov}[g_{\mathcal B}] = \Sigma / B$);
``"batch"`` ($B$ distinct indices, batches independent across steps: $\Sigma / B$ times $(m - B)/(m - 1)$);
``"epoch"`` (the samples reshuffled every epoch and taken $B$ at a time, the last $m \bmod B$ dropped: what
people run; consecutive batches are dependent). Iterate $k$ sits at flow time $t = k\eta$. :func:`sgd` runs one
key; :func:`sgd_ensemble` runs many keys in one compiled call (``jax.vmap``) and returns a Trajectory with a leading
ensemble axis.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from . import checks as _checks
from . import runs as _runs
from .descent import AbstractRule, descend
from .parallel import spread_calls
from .fields import LayerFlow
from .init import end_to_end
from .problems import Problem, lp_loss
from .trajectory import Trajectory

__all__ = ["SAMPLINGS", "SGDRule", "SVAGRule", "sgd", "sgd_ensemble", "svag", "svag_ensemble", "minibatch_indices",
           "check_inputs"]

SAMPLINGS = ("replacement", "batch", "epoch")


def minibatch_indices(key, step, m: int, batch: int, sampling: str) -> jax.Array:
    """The ``batch`` sample indices of step ``step`` (traced) under ``sampling``; ``key`` is the run's key."""
    k = jax.random.fold_in(key, step)
    if sampling == "replacement":
        return jax.random.randint(k, (batch,), 0, m)
    if sampling == "batch":
        return jax.random.choice(k, m, (batch,), replace=False)
    per_epoch = m // batch
    epochs = jax.random.fold_in(key, 0x7FFFFFFF)  # a stream of its own: one permutation per epoch
    perm = jax.random.permutation(jax.random.fold_in(epochs, step // per_epoch), m)
    return jax.lax.dynamic_slice(perm, ((step % per_epoch) * batch,), (batch,))


class SGDRule(AbstractRule):
    """One SGD step on a minibatch; the state is ``(layers, key, step)``."""

    field: LayerFlow
    batch: int = eqx.field(static=True)
    sampling: str = eqx.field(static=True)

    def init(self, y0, eta=None, key=None):
        return y0, key, jnp.asarray(0)

    def params(self, state):
        return state[0]

    def __call__(self, state, eta):
        layers, key, step = state
        problem = self.field.problem
        idx = minibatch_indices(key, step, problem.m, self.batch, self.sampling)
        grads = _batch_grads(problem, layers, idx, self.batch)
        return tuple(w - eta * g for w, g in zip(layers, grads)), key, step + 1


def _batch_grads(problem, layers, idx, batch: int):
    """The layers' gradient of the minibatch loss ``(1/B) sum_{i in idx} l_i`` (weight decay included)."""
    X, Y = problem.X[idx], problem.Y[idx]

    def batch_loss(ws):
        data = lp_loss(X @ end_to_end(ws).T - Y, problem.p) / batch
        return data + 0.5 * problem.weight_decay * sum(jnp.sum(w * w) for w in ws)

    return jax.grad(batch_loss)(tuple(layers))


class SVAGRule(SGDRule):
    r"""One SVAG step (Li, Malladi & Arora 2021) with parameter $l$ (``ell``): two independent minibatches $B_1, B_2$ and
    $W \leftarrow W - \frac{\eta}{l} \nabla\left(\frac{1 + \sqrt{2l - 1}}{2} L_{B_1} + \frac{1 - \sqrt{2l - 1}}{2}
    L_{B_2}\right)$; the gradient's mean is $\nabla L$ and its covariance $l$ times a minibatch's, so $l$ steps of
    $\eta / l$ carry SGD's noise per unit of flow time; as $l$ grows SVAG converges weakly to the first-order SME.
    ``l = 1`` is SGD. The state is ``(layers, key, step)``; the rule is called with the step ``eta / l``."""

    ell: int = eqx.field(static=True)

    def __call__(self, state, step_size):
        layers, key, step = state
        problem = self.field.problem
        root = (2 * self.ell - 1) ** 0.5
        g1 = _batch_grads(problem, layers, minibatch_indices(key, 2 * step, problem.m, self.batch, self.sampling),
                          self.batch)
        g2 = _batch_grads(problem, layers, minibatch_indices(key, 2 * step + 1, problem.m, self.batch, self.sampling),
                          self.batch)
        return tuple(w - step_size * ((1 + root) / 2 * a + (1 - root) / 2 * b)
                     for w, a, b in zip(layers, g1, g2)), key, step + 1


class _Keyed(AbstractRule):
    """An :class:`SGDRule` (or :class:`SVAGRule`) whose initial state carries its key (``descend`` calls
    ``init(y0, eta)``)."""

    field: LayerFlow
    rule: SGDRule
    key: jax.Array

    def __init__(self, rule: SGDRule, key: jax.Array):
        self.field, self.rule, self.key = rule.field, rule, key

    def init(self, y0, eta=None):
        return self.rule.init(y0, eta, self.key)

    def params(self, state):
        return state[0]

    def __call__(self, state, eta):
        return self.rule(state, eta)


def check_inputs(problem, layers0, batch: int, sampling: str):
    """The validated ``(problem, layers0, batch)`` of a minibatch run; a clear error naming what is wrong."""
    if not isinstance(problem, Problem):
        raise TypeError(f"sgd needs a regression Problem (samples to draw minibatches from); got {type(problem).__name__}")
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    batch = _checks.integer("batch", batch, minimum=1)
    if batch > problem.m:
        raise ValueError(f"batch must be at most the number of samples m = {problem.m}; got {batch}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}; got {sampling!r}")
    return problem, layers0, batch


def sgd(problem: Problem, layers0, eta, steps: int, *, batch: int, key, sampling: str = "epoch",
        save_every: int = 1) -> Trajectory:
    """SGD on the layers from ``layers0``: ``steps`` steps of step ``eta`` on minibatches of ``batch`` samples drawn
    by ``sampling`` with the random ``key`` (``jax.random.PRNGKey``); saved every ``save_every`` steps, the loss being
    the full-data ``L1(W_e)``. A Trajectory of kind ``"sgd"`` (``status == "diverged"`` where an iterate left the
    finite numbers)."""
    problem, layers0, batch = check_inputs(problem, layers0, batch, sampling)
    rule = _Keyed(SGDRule(LayerFlow(problem), batch, sampling), jnp.asarray(key))
    return descend(rule, tuple(layers0), eta, steps, save_every=save_every, kind="sgd")


def sgd_ensemble(problem: Problem, layers0, eta, steps: int, *, batch: int, keys, sampling: str = "epoch",
                 save_every: int = 1) -> Trajectory:
    """:func:`sgd` for every key of ``keys`` (shape ``(n, 2)``, e.g. ``jax.random.split(key, n)``) in one compiled,
    vmapped call spread over the cores (:func:`linflow.core.parallel.spread`): a Trajectory whose arrays have a
    leading ensemble axis of length ``n``."""
    problem, layers0, batch = check_inputs(problem, layers0, batch, sampling)
    _checks.positive("eta", eta)
    keys = jnp.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must have shape (n, 2) (jax.random.split(key, n)); got {keys.shape}")
    base = SGDRule(LayerFlow(problem), batch, sampling)
    return spread_calls(_keyed_member, keys, base, tuple(layers0), eta, steps, save_every, "sgd")


def _keyed_member(key, base, layers0, eta, steps, save_every, kind):
    return descend(_Keyed(base, key), layers0, eta, steps, save_every=save_every, kind=kind)


def svag(problem: Problem, layers0, eta, steps: int, *, batch: int, key, ell: int, sampling: str = "replacement",
         save_every: int = 1) -> Trajectory:
    """SVAG with parameter ``ell`` (the paper's l; :class:`SVAGRule`): ``steps`` steps of size ``eta / ell``, iterate
    ``k`` at flow time ``t = k eta / ell`` (``ell`` times as many steps as SGD cover the same flow time). ``ell = 1`` is
    SGD (two batches drawn per step, the second weighted 0)."""
    problem, layers0, batch = check_inputs(problem, layers0, batch, sampling)
    ell = _checks.integer("ell", ell, minimum=1)
    eta = float(_checks.positive("eta", eta))
    rule = _Keyed(SVAGRule(LayerFlow(problem), batch, sampling, ell), jnp.asarray(key))
    return descend(rule, tuple(layers0), eta / ell, steps, save_every=save_every, kind=f"svag{ell}")


def svag_ensemble(problem: Problem, layers0, eta, steps: int, *, batch: int, keys, ell: int,
                  sampling: str = "replacement", save_every: int = 1) -> Trajectory:
    """:func:`svag` for every key of ``keys`` (shape ``(n, 2)``) in one compiled, vmapped call."""
    problem, layers0, batch = check_inputs(problem, layers0, batch, sampling)
    ell = _checks.integer("ell", ell, minimum=1)
    eta = float(_checks.positive("eta", eta))
    keys = jnp.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must have shape (n, 2) (jax.random.split(key, n)); got {keys.shape}")
    base = SVAGRule(LayerFlow(problem), batch, sampling, ell)
    return spread_calls(_keyed_member, keys, base, tuple(layers0), eta / ell, steps, save_every, f"svag{ell}")
