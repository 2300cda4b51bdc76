"""Discrete runs: gradient descent on the layers and the end-to-end update of ACH18 Eq. 10.

Both are forward Euler steps of the fields in :mod:`linflow.fields` with step ``eta``:

* ``W_j <- (1 - eta lambda) W_j - eta dL^N/dW_j``;
* ``W_e <- (1 - eta lambda N) W_e - eta sum_j [W_e W_e^T]^((j-1)/N) dL1/dW(W_e) [W_e^T W_e]^((N-j)/N)``.

Compiled loops (``lax.scan`` over saves, ``fori_loop`` between them). ``eta``, the data and the start
are traced, so new values do not recompile; ``steps`` and ``save_every`` fix the shapes. A step that
produces a non-finite iterate stops the run: the iterate is frozen, the step is recorded, and the
returned Trajectory ends at the last saved point whose iterate, ``W_e`` and loss are all finite, with
``status == "diverged"`` and a message naming the first non-finite step and the last kept one
(``ts[-1]``). No array of a returned Trajectory holds NaN or inf.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _checks, _runs
from .fields import layer_field
from .problems import Problem
from .trajectory import Trajectory

__all__ = [
    "gradient_descent",
    "gradient_descents",
    "optax_descents",
    "OPTIMIZERS",
    "end_to_end_descent",
    "descend",
    "EulerStep",
    "grid_chunks",
    "save_chunks",
]


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


@dataclasses.dataclass(frozen=True)
class EulerStep:
    """One forward Euler step of a field: ``y <- y + eta * field(args, y, depth)`` (hashable, for jit)."""

    field: Callable

    def __call__(self, args, y, eta, depth):
        return jax.tree_util.tree_map(lambda a, b: a + eta * b, y, self.field(args, y, depth))


def _descend_impl(step, observe, depth, args, y0, eta, chunks):
    """Run ``chunks[i]`` steps between saves ``i`` and ``i + 1``; returns saves, observables, divergence step.

    ``chunks`` is a traced integer array, so only the number of saves fixes the compiled shapes. A
    non-finite iterate freezes the state at the last finite one and records its step (else -1).
    """

    def body(_, c):
        y, k, bad_at = c
        new = step(args, y, eta, depth)
        fine = _all_finite(new) & (bad_at < 0)
        bad_at = jnp.where((bad_at < 0) & ~fine, k + 1, bad_at)
        y = jax.tree_util.tree_map(lambda a, b: jnp.where(fine, a, b), new, y)
        return y, k + 1, bad_at

    def run_chunk(carry, length):
        carry = jax.lax.fori_loop(0, length, body, carry)
        return carry, carry[0]

    carry, ys = jax.lax.scan(run_chunk, (y0, jnp.asarray(0), jnp.asarray(-1)), chunks)
    saves = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
    return saves, observe(args, saves), carry[2]


_descend = jax.jit(_descend_impl, static_argnums=(0, 1, 2))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _descend_many(step, observe, depth, args, y0, etas, chunks):
    """:func:`_descend_impl` for a batch of learning rates, each with its own chunk lengths (one computation)."""
    return jax.vmap(lambda e, c: _descend_impl(step, observe, depth, args, y0, e, c))(etas, chunks)


def grid_chunks(eta: float, t1: float, points: int) -> np.ndarray:
    """Steps between saves so that GD with step ``eta`` lands on every point of ``linspace(0, t1, points)``.

    ``eta`` must divide the spacing ``t1 / (points - 1)`` (iterate ``k`` sits at ``t = k eta``).
    """
    spacing = t1 / (points - 1)
    per_point = spacing / eta
    if not math.isclose(per_point, round(per_point), rel_tol=1e-9) or round(per_point) < 1:
        raise ValueError(
            f"eta = {eta:g} must divide the save spacing t1 / (points - 1) = {spacing:g} so that gradient descent "
            f"lands on the common time grid; pick eta = {spacing:g} / n or change t1 or points"
        )
    return np.full(points - 1, round(per_point), dtype=np.int64)


def save_chunks(steps: int, save_every: int) -> np.ndarray:
    """Steps between consecutive saves: ``save_every`` repeated, then the remainder (if any)."""
    full, rest = divmod(steps, save_every)
    return np.array((save_every,) * full + ((rest,) if rest else ()), dtype=np.int64)


def descend(kind: str, field, observe, problem: Problem, y0, depth: int, eta, steps, save_every) -> Trajectory:
    """``steps`` Euler steps ``y <- y + eta * field(problem, y, depth)`` saved every ``save_every``.

    The building block of :func:`gradient_descent` and :func:`end_to_end_descent`.
    """
    eta = _checks.positive("eta", eta)
    steps = _checks.integer("steps", steps, minimum=1)
    save_every = _checks.integer("save_every", save_every, minimum=1)
    chunks = save_chunks(steps, save_every)
    ys, observed, bad_at = _descend(EulerStep(field), observe, depth, problem, y0, jnp.asarray(eta, dtype=jnp.float64),
                                    jnp.asarray(chunks))
    return _finish_descent(kind, depth, _runs.as_numpy(ys), _runs.as_numpy(observed), int(bad_at), eta, steps, chunks)


def _finish_descent(kind, depth, ys, observed, bad_at: int, eta: float, steps: int, chunks) -> Trajectory:
    """A Trajectory of a discrete run: the saved rows before the first non-finite value, status and message.

    A run diverges when its iterate becomes non-finite (``bad_at``, found inside the compiled loop) or,
    earlier, when a saved ``W_e`` or loss overflows although the layers are still finite (a product of
    huge layers): nothing non-finite is ever returned.
    """
    saved_steps = np.concatenate([[0], np.cumsum(chunks)])
    ts = saved_steps * eta
    stats = {"num_steps": steps if bad_at < 0 else bad_at, "nfev": steps if bad_at < 0 else bad_at}
    keep = _runs.finite_prefix((ys, observed))
    if bad_at >= 0:
        keep = min(keep, int(np.searchsorted(saved_steps, bad_at)))  # saved rows strictly before the bad step
    status, message = "ok", ""
    if keep < len(saved_steps):
        status = "diverged"
        causes = []
        if bad_at < 0 or saved_steps[keep] < bad_at:
            causes.append(f"W_e or the loss overflowed by saved step {saved_steps[keep]} (t = {ts[keep]:.6g})")
        if bad_at >= 0:
            causes.append(f"the iterate became non-finite at step {bad_at} (t = {bad_at * eta:.6g})")
        kept = (f"the trajectory keeps the {keep} saved points up to step {saved_steps[keep - 1]} "
                f"(t = {ts[keep - 1]:.6g})" if keep else "no saved point is finite")
        message = f"{kind} diverged (eta = {eta:g}): {' and '.join(causes)}; {kept}"
    return _runs.build(kind, depth, ts, ys, observed, keep, stats=stats, status=status, message=message, eta=eta,
                       t1=steps * eta)


def gradient_descent(problem: Problem, layers0, eta, steps, *, save_every: int = 1) -> Trajectory:
    """Gradient descent on the layers: ``W_j <- (1 - eta lambda) W_j - eta dL^N/dW_j``.

    Iterate ``k`` is saved at flow time ``t = k * eta`` every ``save_every`` steps (and at the last step).

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> gd = linflow.gradient_descent(prob, linflow.init.balanced((2, 3, 2), 0.5), eta=0.05, steps=200)
        >>> gd.status, float(gd.ts[-1])
        ('ok', 10.0)
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    return descend("gradient_descent", layer_field, _runs.observe_layers, problem, layers0, len(layers0), eta, steps,
                   save_every)


def end_to_end_descent(problem: Problem, W_e0, depth: int | None, eta, steps, *, save_every: int = 1,
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
    field = _runs.end_to_end_form(problem, form)
    return descend("end_to_end_descent", field, _runs.observe_end_to_end, problem, W0, depth, eta, steps, save_every)


def gradient_descents(problem: Problem, layers0, etas, steps: int, *, save_every: int = 1) -> list[Trajectory]:
    """Gradient descent for a batch of learning rates in one compiled computation (same ``steps`` each).

    Returns one Trajectory per eta, each with its own divergence report.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.two_point(10.0, 1.0, p=4)
        >>> runs = linflow.gradient_descents(prob, linflow.init.balanced((2, 2, 1), 0.5), [0.001, 0.05], 300)
        >>> [r.status for r in runs]
        ['ok', 'diverged']
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    etas = [_checks.positive(f"etas[{i}]", e) for i, e in enumerate(etas)]
    if not etas:
        raise ValueError("etas must hold at least one learning rate")
    steps = _checks.integer("steps", steps, minimum=1)
    save_every = _checks.integer("save_every", save_every, minimum=1)
    chunks = save_chunks(steps, save_every)
    depth = len(layers0)
    ys, observed, bad = _descend_many(EulerStep(layer_field), _runs.observe_layers, depth, problem, layers0,
                                      jnp.asarray(etas), jnp.asarray(np.tile(chunks, (len(etas), 1))))
    ys, observed, bad = _runs.as_numpy(ys), _runs.as_numpy(observed), np.asarray(bad)
    return [_finish_descent("gradient_descent", depth, tuple(y[i] for y in ys), tuple(o[i] for o in observed),
                            int(bad[i]), eta, steps, chunks) for i, eta in enumerate(etas)]


def _textbook_adagrad(lr):
    # optax's default starts the accumulator at 0.1 with eps inside the root; the textbook rule
    # (Duchi et al. 2011) starts at 0 with no eps (REFERENCE.md section 7)
    return optax.adagrad(lr, initial_accumulator_value=0.0, eps=0.0)


OPTIMIZERS: dict[str, Callable] = {
    "sgd": lambda lr: optax.sgd(lr),
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
    "adagrad": _textbook_adagrad,
    # optax.adadelta's default learning_rate=None ascends: always pass one (1.0 is the textbook rule)
    "adadelta": lambda lr: optax.adadelta(learning_rate=lr),
    "adam": lambda lr: optax.adam(lr),
}


@dataclasses.dataclass(frozen=True)
class OptaxStep:
    """One step of an optax optimizer on the network loss (weight decay included) in the layers.

    State ``(layers, optimizer state)``; the learning rate arrives as the traced ``eta``.
    """

    name: str

    def __call__(self, problem, state, eta, depth):
        from .fields import network_gradient

        layers, opt_state = state
        opt = OPTIMIZERS[self.name](eta)
        updates, opt_state = opt.update(network_gradient(problem, layers), opt_state, layers)
        return optax.apply_updates(layers, updates), opt_state


def _observe_optax(problem, states):
    return _runs.observe_layers(problem, states[0])


def optax_descents(problem: Problem, layers0, optimizer: str, learning_rates, steps: int, *,
                   save_every: int = 1) -> list[Trajectory]:
    """An optax optimizer (``sgd``, ``momentum``, ``nesterov``, ``adagrad``, ``adadelta``, ``adam``) on
    the layers, for a batch of learning rates in one compiled computation; one Trajectory each.

    Depth 1 (one layer) is the linear model. ``adagrad`` is the textbook rule (accumulator from 0,
    no eps); ``adadelta`` always receives the learning rate (optax's default ``None`` ascends).

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([1.0], d=2, k=1)
        >>> runs = linflow.optax_descents(prob, linflow.init.near_zero((2, 1)), "adam", [0.01, 0.1], 100)
        >>> all(r.loss[-1] < r.loss[0] for r in runs)
        True
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}")
    lrs = [_checks.positive(f"learning_rates[{i}]", e) for i, e in enumerate(learning_rates)]
    if not lrs:
        raise ValueError("learning_rates must hold at least one value")
    steps = _checks.integer("steps", steps, minimum=1)
    chunks = save_chunks(steps, _checks.integer("save_every", save_every, minimum=1))
    depth = len(layers0)
    state0 = (layers0, OPTIMIZERS[optimizer](1.0).init(layers0))
    ys, observed, bad = _descend_many(OptaxStep(optimizer), _observe_optax, depth, problem, state0, jnp.asarray(lrs),
                                      jnp.asarray(np.tile(chunks, (len(lrs), 1))))
    layers_s, observed, bad = _runs.as_numpy(ys[0]), _runs.as_numpy(observed), np.asarray(bad)
    return [_finish_descent(optimizer, depth, tuple(y[i] for y in layers_s), tuple(o[i] for o in observed),
                            int(bad[i]), lr, steps, chunks) for i, lr in enumerate(lrs)]
