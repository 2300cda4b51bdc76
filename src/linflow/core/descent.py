"""Discrete runs: gradient descent on the layers, the end-to-end update of ACH18 Eq. 10, optax optimizers.

GD and Eq. 10 are forward Euler steps of the fields in :mod:`linflow.fields` with step ``eta``:

* ``W_j <- (1 - eta lambda) W_j - eta dL^N/dW_j``;
* ``W_e <- (1 - eta lambda N) W_e - eta sum_j [W_e W_e^T]^((j-1)/N) dL1/dW(W_e) [W_e^T W_e]^((N-j)/N)``.

:func:`iterate` is the one pure core: any step rule ``state, eta -> state`` (:class:`EulerRule`,
:class:`OptaxRule` for any optax transformation), compiled as ``lax.scan`` over saves with a fixed
number of steps between them. ``eta``, the data and the start are traced, so new values do not
recompile, and every public run works under ``jax.jit``, ``jax.vmap`` (e.g. over learning rates) and
``jax.grad`` (e.g. ``d L(after k steps) / d eta``); ``steps`` and ``save_every`` fix the shapes.

A step that produces a non-finite iterate stops the run: the iterate is frozen, the step is recorded
(``stats["diverged_at"]``), ``status == "diverged"``, ``stop`` counts the saved rows whose iterate,
``W_e`` and loss are all finite and the rows after it (times included) repeat the last of them, so
``ts[-1]`` is the last time reached; the message names the first non-finite step and the last row
reached. No array of a returned Trajectory holds NaN or inf.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import checks as _checks, runs as _runs
from .fields import AbstractField, EndToEndFlow, LayerFlow, network_gradient
from .measures import steps_per_save
from .parallel import spread_calls, spread_map
from .problems import Problem
from .trajectory import STATUSES, Trajectory

__all__ = [
    "gradient_descent",
    "gradient_descents",
    "end_to_end_descent",
    "optax_descent",
    "optax_descents",
    "OPTIMIZERS",
    "iterate",
    "descend",
    "descend_each",
    "iterate_each",
    "last",
    "descend_chunks",
    "AbstractRule",
    "all_finite",
    "EulerRule",
    "OptaxRule",
    "steps_per_save",
    "descend_on_grid",
]


def all_finite(tree) -> jax.Array:
    """Whether every leaf of ``tree`` is finite everywhere (a scalar bool)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


class AbstractRule(eqx.Module):
    r"""A discrete method as the engine (:func:`iterate`) runs it: a step $s_{k+1} = \Phi_\eta(s_k)$ on a state $s$
    that holds the parameters (and whatever the method carries: an optimizer's moments, a key, a tangent vector, an
    observer's running reductions).

    The engine calls ``init(y0, eta)`` once, ``rule(state, eta)`` per step, ``admissible(state)`` on every new state
    (``False``: the run diverged there and is frozen at the last admissible state; default: every leaf finite) and
    ``params(state)`` for the parameters of saved states. A rule that discretizes a field carries it as ``field``
    (an :class:`~linflow.fields.AbstractField`): :func:`descend` reads from it what a run records, its depth and name.
    """

    @abc.abstractmethod
    def __call__(self, state, eta):
        """One step: the next state."""

    def init(self, y0, eta):
        """The state at step 0 of a run started at parameters ``y0`` with step ``eta``."""
        return y0

    def params(self, state):
        """The parameters (the field's state) in ``state``."""
        return state

    def admissible(self, state) -> jax.Array:
        """Whether the run may go on from ``state`` (a scalar bool; default: every leaf finite)."""
        return all_finite(state)


class EulerRule(AbstractRule):
    r"""One forward Euler step of a field: $y \leftarrow y + \eta f(y)$ (GD, Eq. 10; docs/math.md (2.1), (2.2))."""

    field: AbstractField

    def __call__(self, state, eta):
        return jax.tree_util.tree_map(lambda a, b: a + eta * b, state, self.field(None, state, None))


class OptaxRule(AbstractRule):
    """One step of an optax transformation on the network loss (weight decay included) in the layers.

    ``make(learning_rate)`` builds the transformation (``optax.adam``, or a name of :data:`OPTIMIZERS`); it is
    wrapped once in ``optax.inject_hyperparams``, so the learning rate lives in the optimizer's state, set at
    ``init(y0, eta)`` (an optimizer whose state depends on it starts right) and traced (``jax.vmap``/``jax.grad``
    over it). The state is ``(layers, optimizer state)``. A built transformation (:class:`_Built`) keeps its own rate.
    """

    field: LayerFlow
    make: Callable = eqx.field(static=True)

    def _transformation(self, eta) -> optax.GradientTransformation:
        if isinstance(self.make, _Built):
            return self.make.transformation
        return optax.inject_hyperparams(self.make)(eta)

    def init(self, y0, eta):
        return y0, self._transformation(eta).init(y0)

    def params(self, state):
        return state[0]

    def __call__(self, state, eta):
        layers, opt_state = state
        # the learning rate is read from opt_state (set at init): the eta given here is the one it holds
        updates, opt_state = self._transformation(eta).update(network_gradient(self.field.problem, layers), opt_state,
                                                              layers)
        return optax.apply_updates(layers, updates), opt_state


def _steps(rule, eta, count, carry):
    """``count`` steps of ``rule`` on ``carry = (state, steps done, first inadmissible step or -1)``, freezing at the
    last admissible state. A Python-int ``count`` is a fixed-length loop (reverse-mode ``jax.grad`` works); a traced
    one a while loop that also stops at divergence (a diverged run costs nothing more)."""

    def body(c):
        y, k, bad_at = c
        new = rule(y, eta)
        fine = rule.admissible(new) & (bad_at < 0)
        bad_at = jnp.where((bad_at < 0) & ~fine, k + 1, bad_at)
        y = jax.tree_util.tree_map(lambda a, b: jnp.where(fine, a, b), new, y)
        return y, k + 1, bad_at

    if isinstance(count, int):
        return jax.lax.fori_loop(0, count, lambda _, c: body(c), carry)
    end = carry[1] + count
    return jax.lax.while_loop(lambda c: (c[1] < end) & (c[2] < 0), body, carry)


def iterate(rule, state0, eta, save_every, n_saves: int, rest: int = 0, *, keep=None, start: int = 0):
    """The discrete engine: ``n_saves`` chunks of ``save_every`` steps of ``rule`` from ``state0`` (then ``rest``
    more), saving ``keep(state)`` (default: the state itself) at the start and after each chunk.

    Returns ``(saves, diverged_at)``: what was kept at steps ``0, save_every, ..., n_saves * save_every`` (and the
    last step when ``rest > 0``) stacked on a leading axis, and the first step whose state was not
    ``rule.admissible`` (-1 if none); the state is frozen at the last admissible one, so every later save repeats
    it. ``keep`` is an observer of the step: a function of one state, evaluated inside the loop (a study keeps what
    it needs, not every state). ``start`` numbers the first step (a run continued from step ``start``). With
    ``save_every`` a Python int every loop has a fixed length, so reverse-mode ``jax.grad`` works; a traced
    ``save_every`` (e.g. ``jax.vmap`` over learning rates with their own chunks) runs forward only and stops
    stepping at divergence.
    """
    keep = keep or (lambda y: y)

    def chunk(carry, _):
        carry = _steps(rule, eta, save_every, carry)
        return carry, keep(carry[0])

    carry = (state0, jnp.asarray(start), jnp.asarray(-1))
    carry, ys = jax.lax.scan(chunk, carry, None, length=n_saves)
    parts = [jax.tree_util.tree_map(lambda a: a[None], keep(state0)), ys]
    if rest:
        carry = _steps(rule, eta, rest, carry)
        parts.append(jax.tree_util.tree_map(lambda a: a[None], keep(carry[0])))
    saves = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)
    return saves, carry[2]


def last(saves):
    """The last save of :func:`iterate`'s stacked saves (e.g. the state to continue a run from)."""
    return jax.tree_util.tree_map(lambda a: a[-1], saves)


@eqx.filter_jit
def _descend(rule, y0, eta, save_every, n_saves: int, rest: int, kind: str) -> Trajectory:
    """:func:`iterate` and the Trajectory of its saves (compiled): rows reached, status, stats."""
    saves, bad_at = iterate(rule, rule.init(y0, eta), eta, save_every, n_saves, rest)
    ys = rule.params(saves)
    observed = rule.field.observe(ys)
    steps = n_saves * save_every + rest
    saved_steps = save_every * jnp.arange(n_saves + 1)
    if rest:
        saved_steps = jnp.concatenate([saved_steps, jnp.asarray([steps])])
    stop = _runs.rows_reached((ys, observed))
    stop = jnp.where(bad_at >= 0, jnp.minimum(stop, jnp.sum(saved_steps < bad_at)), stop)
    code = jnp.where(stop < saved_steps.shape[0], STATUSES.index("diverged"), 0)
    done = jnp.where(bad_at < 0, steps, bad_at)
    unreached = jnp.where(stop < saved_steps.shape[0], saved_steps[jnp.minimum(stop, saved_steps.shape[0] - 1)], -1)
    stats = {"num_steps": done, "nfev": done, "diverged_at": bad_at, "first_unreached_step": unreached}
    return _runs.trajectory(kind, rule.field.depth_of(y0), saved_steps * eta, ys, observed, code, stop, stats=stats,
                            eta=eta, t1=steps * eta)


def _schedule(steps, save_every) -> tuple[int, int, int]:
    """``(save_every, n_saves, rest)``: ``steps`` as full chunks of ``save_every`` and a remainder."""
    steps = _checks.integer("steps", steps, minimum=1)
    save_every = _checks.integer("save_every", save_every, minimum=1)
    return save_every, *divmod(steps, save_every)


def descend(rule, y0, eta, steps: int, *, save_every: int = 1, kind: str | None = None) -> Trajectory:
    """``steps`` steps of ``rule`` from ``y0`` (:class:`EulerRule` of a field, :class:`OptaxRule`), saved every
    ``save_every`` steps and at the last one, as a Trajectory at flow times ``t = k * eta``.

    The building block of :func:`gradient_descent`, :func:`end_to_end_descent` and :func:`optax_descent`;
    ``y0`` is not validated here.
    """
    eta = _checks.f64(_checks.positive("eta", eta))
    save_every, n_saves, rest = _schedule(steps, save_every)
    return _descend(rule, y0, eta, save_every, n_saves, rest, kind or rule.field.discrete_kind)


def descend_on_grid(rule, y0, etas, t1: float, points: int, *, kind: str | None = None) -> list[Trajectory]:
    """``rule`` at every eta of ``etas``, each saved on ``linspace(0, t1, points)`` (``t = k * eta``): one
    Trajectory per eta.

    Each eta must divide the spacing ``t1 / (points - 1)`` (:func:`steps_per_save`). One compiled call
    for the whole batch (:func:`descend_each`). Forward only: reverse-mode ``jax.grad`` needs
    :func:`descend` (a fixed count).
    """
    etas = _batch("etas", etas)
    points = _checks.integer("points", points, minimum=2)
    per_save = np.array([steps_per_save(float(e), t1, points) for e in etas], dtype=np.int64)
    return descend_each(rule, y0, etas, per_save, points - 1, kind=kind).unstack()


def descend_each(rule, y0, etas, per_save, n_saves: int, *, kind: str | None = None) -> Trajectory:
    """``rule`` from ``y0`` at every ``(eta, steps per save)`` pair, ``n_saves`` saves each: a batched Trajectory.

    One compiled call for the whole batch, compiled once per number of etas: the etas run one after the other
    (``jax.lax.map``, the steps per save traced; dealt round-robin over the cores, :func:`linflow.core.parallel.
    spread_map`), each with its own number of steps (a ``jax.vmap`` over them would run every eta for the largest
    count). Forward only.
    """
    return _descend_each(rule, y0, jnp.asarray(etas, jnp.float64), jnp.asarray(per_save, jnp.int64), n_saves,
                         kind or rule.field.discrete_kind)


@eqx.filter_jit
def _descend_each(rule, y0, etas, per_save, n_saves: int, kind: str) -> Trajectory:
    return spread_map(lambda a: _descend(rule, y0, a[0], a[1], n_saves, 0, kind), (etas, per_save))


@eqx.filter_jit
def iterate_each(rule, state0, etas, per_save, n_saves: int, observe=None):
    """:func:`iterate` from ``state0`` at every ``(eta, steps per save)`` pair, one after the other
    (``jax.lax.map``, as :func:`descend_each`): ``(saves, diverged_at)`` with a leading eta axis; ``observe``
    (a function of the stacked saves of one eta, like a field's ``observe``) turns each eta's states into what a
    study keeps."""

    def one(a):
        saves, bad_at = iterate(rule, state0, a[0], a[1], n_saves)
        return (saves if observe is None else observe(saves)), bad_at

    return spread_map(one, (etas, per_save))


def descend_chunks(rule, y0, eta, save_every, n_saves: int, *, kind: str | None = None) -> Trajectory:
    """``n_saves`` chunks of ``save_every`` steps of ``rule`` from ``y0``, saved after each (and at the start).

    ``save_every`` is passed traced: runs with different chunk sizes but the same ``n_saves`` share one
    compiled computation (e.g. consecutive pieces of a run saved on a geometric grid of iterations,
    each piece started from the last state of the one before). Forward only, like :func:`descend_on_grid`.
    """
    n_saves = _checks.integer("n_saves", n_saves, minimum=1)
    every = jnp.asarray(save_every, dtype=jnp.int64)
    return _descend(rule, y0, jnp.asarray(eta, dtype=jnp.float64), every, n_saves, 0, kind or rule.field.discrete_kind)


def gradient_descent(problem: Problem, layers0, eta, steps: int, *, save_every: int = 1) -> Trajectory:
    """Gradient descent on the layers: ``W_j <- (1 - eta lambda) W_j - eta dL^N/dW_j``.

    Iterate ``k`` is saved at flow time ``t = k * eta`` every ``save_every`` steps (and at the last step).
    Works under ``jax.jit``, ``jax.vmap`` (over ``eta``, starts, data) and ``jax.grad``.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> gd = linflow.gradient_descent(prob, linflow.init.balanced((2, 3, 2), 0.5), eta=0.05, steps=200)
        >>> gd.status, float(gd.ts[-1])
        ('ok', 10.0)
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    return descend(EulerRule(LayerFlow(problem)), layers0, eta, steps, save_every=save_every)


def end_to_end_descent(problem: Problem, W_e0, depth: int | None, eta, steps: int, *, save_every: int = 1,
                       form: str = "auto") -> Trajectory:
    """ACH18 Eq. 10: ``W_e <- (1 - eta lambda N) W_e - eta sum_j [W_e W_e^T]^((j-1)/N) g [W_e^T W_e]^((N-j)/N)``.

    Claim 2's O(d) form when ``k = 1`` (``form='auto'``). ``W_e0`` is a matrix or layers, as in
    :func:`~linflow.end_to_end_flow`.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0], k=1, d=2)
        >>> run = linflow.end_to_end_descent(prob, [[0.1, 0.1]], 3, eta=0.05, steps=100, save_every=50)
        >>> run.status, run.iterations.tolist()
        ('ok', [0, 50, 100])
    """
    problem = _runs.check_problem(problem)
    W0, depth = _runs.check_end_to_end_start(problem, W_e0, depth)
    return descend(EulerRule(EndToEndFlow(problem, depth, form)), W0, eta, steps, save_every=save_every)


def gradient_descents(problem: Problem, layers0, etas, steps: int, *, save_every: int = 1) -> list[Trajectory]:
    """Gradient descent for a batch of learning rates: ``jax.vmap`` of :func:`gradient_descent` spread over the cores
    (:func:`linflow.core.parallel.spread`), one Trajectory each.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.two_point(10.0, 1.0, p=4)
        >>> runs = linflow.gradient_descents(prob, linflow.init.balanced((2, 2, 1), 0.5), [0.001, 0.05], 300)
        >>> [r.status for r in runs]
        ['ok', 'diverged']
    """
    etas = _batch("etas", etas)
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    return spread_calls(_gd_member, etas, problem, layers0, steps, save_every).unstack()


def _gd_member(eta, problem, layers0, steps, save_every):
    return gradient_descent(problem, layers0, eta, steps, save_every=save_every)


def _textbook_adagrad(lr):
    # optax's default starts the accumulator at 0.1 with eps inside the root; the textbook rule
    # (Duchi et al. 2011) starts at 0 with no eps (docs/math.md section 7)
    return optax.adagrad(lr, initial_accumulator_value=0.0, eps=0.0)


def _sgd(lr):
    return optax.sgd(lr)


def _momentum(lr):
    return optax.sgd(lr, momentum=0.9)


def _nesterov(lr):
    return optax.sgd(lr, momentum=0.9, nesterov=True)


def _adadelta(lr):
    # optax.adadelta's default learning_rate=None ascends: always pass one (1.0 is the textbook rule)
    return optax.adadelta(learning_rate=lr)


OPTIMIZERS: dict[str, Callable] = {
    "sgd": _sgd,
    "momentum": _momentum,
    "nesterov": _nesterov,
    "adagrad": _textbook_adagrad,
    "adadelta": _adadelta,
    "adam": optax.adam,
}


@dataclasses.dataclass(frozen=True)
class _Built:
    """A built ``optax.GradientTransformation`` as a rule's ``make`` (the learning rate is its own)."""

    transformation: optax.GradientTransformation

    def __call__(self, learning_rate) -> optax.GradientTransformation:
        return self.transformation


def optax_descent(problem: Problem, layers0, optimizer, learning_rate, steps: int, *,
                  save_every: int = 1) -> Trajectory:
    """An optax optimizer on the layers' network loss; iterate ``k`` saved at ``t = k * learning_rate``.

    ``optimizer`` is a name of :data:`OPTIMIZERS` (``sgd``, ``momentum``, ``nesterov``, ``adagrad``,
    ``adadelta``, ``adam``), any function ``learning_rate -> optax.GradientTransformation`` (e.g.
    ``optax.adam``; a module-level function is compiled once, a new lambda per call recompiles), or a
    built ``optax.GradientTransformation`` (e.g. ``optax.chain(optax.clip(1.0), optax.adam(0.1))``): its
    learning rate is its own, and ``learning_rate`` then only sets the time axis (pass the one it uses).
    Depth 1 (one layer) is the linear model. ``adagrad`` is the textbook rule (accumulator from 0,
    no eps); ``adadelta`` always receives the learning rate (optax's default ``None`` ascends).

    Examples:
        >>> import optax, linflow
        >>> prob = linflow.problems.whitened([1.0], d=2, k=1)
        >>> run = linflow.optax_descent(prob, linflow.init.near_zero((2, 1)), optax.adam, 0.1, 100)
        >>> run.final_loss < float(run.loss[0])
        True
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, a function learning_rate -> "
                             f"optax.GradientTransformation or an optax.GradientTransformation; got {optimizer!r}")
        kind, make = optimizer, OPTIMIZERS[optimizer]
    elif isinstance(optimizer, optax.GradientTransformation):
        kind, make = "optax", _Built(optimizer)
    elif callable(optimizer):
        kind, make = getattr(optimizer, "__name__", "optax"), optimizer
    else:
        raise TypeError(f"optimizer must be a name, a function learning_rate -> optax.GradientTransformation or an "
                        f"optax.GradientTransformation, got {type(optimizer).__name__}")
    eta = _checks.positive("learning_rate", learning_rate)
    return descend(OptaxRule(LayerFlow(problem), make), layers0, eta, steps, save_every=save_every, kind=kind)


def optax_descents(problem: Problem, layers0, optimizer, learning_rates, steps: int, *,
                   save_every: int = 1) -> list[Trajectory]:
    """:func:`optax_descent` for a batch of learning rates (``jax.vmap``); one Trajectory each.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([1.0], d=2, k=1)
        >>> runs = linflow.optax_descents(prob, linflow.init.near_zero((2, 1)), "adam", [0.01, 0.1], 100)
        >>> all(r.final_loss < r.loss[0] for r in runs)
        True
    """
    lrs = _batch("learning_rates", learning_rates)
    return spread_calls(_optax_member, lrs, problem, layers0, optimizer, steps, save_every).unstack()


def _optax_member(lr, problem, layers0, optimizer, steps, save_every):
    return optax_descent(problem, layers0, optimizer, lr, steps, save_every=save_every)


def _batch(name: str, values) -> jax.Array:
    """A non-empty 1-D array of positive numbers (each named in the error)."""
    values = [_checks.positive(f"{name}[{i}]", e) for i, e in enumerate(np.atleast_1d(np.asarray(values, float)))]
    if not values:
        raise ValueError(f"{name} must hold at least one value")
    return jnp.asarray(values, jnp.float64)
