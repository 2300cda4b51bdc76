"""The one discrete engine (``core.descent.iterate``): every study's former loop, written here independently as it
was, against the engine's run of the same case, to the last bit; the written contracts (AbstractRule,
AbstractField); optax rules built once with the learning rate in the optimizer's state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import linflow
from linflow import init, problems
from linflow.core import attractors, descent
from linflow.core.fields import AbstractField, LayerFlow, network_gradient, network_loss
from linflow.studies import explorables
from linflow.studies.comparison.runs import GDDiagnosticRule
from linflow.studies.saddles.descent import PassageRule


def _same(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def _reference_scan(problem, layers0, eta, steps):
    """The explorables' former loop: a plain scan of ``w - eta * grad``, no freeze."""
    def step(layers, _):
        new = tuple(w - eta * g for w, g in zip(layers, network_gradient(problem, layers)))
        return new, new
    _, path = jax.lax.scan(step, tuple(layers0), None, length=steps)
    return tuple(jnp.concatenate([w0[None], w]) for w0, w in zip(layers0, path))


@pytest.mark.parametrize("eta", [0.05, 0.3, 0.9])
def test_explorables_path_is_the_former_scan_to_the_last_bit(eta):
    prob = explorables.plane_problem()
    layers0 = explorables.plane_start(prob)
    ref = jax.jit(_reference_scan, static_argnums=3)(prob, tuple(layers0), eta, 400)
    we, loss = explorables.gd_on_the_plane(prob, tuple(layers0), jnp.asarray(eta), 400)
    _same(we, init.end_to_end(ref))
    _same(loss, jax.vmap(lambda ls: network_loss(prob, ls))(ref))


def test_explorables_path_past_divergence_is_cut_where_the_former_scan_left_the_finite_numbers():
    prob = explorables.plane_problem()
    layers0 = explorables.plane_start(prob)
    ref = jax.jit(_reference_scan, static_argnums=3)(prob, tuple(layers0), 1.5, 2000)
    we, loss = explorables.gd_on_the_plane(prob, tuple(layers0), jnp.asarray(1.5), 2000)
    ref_we = np.asarray(init.end_to_end(ref))
    finite = np.all(np.isfinite(ref_we.reshape(len(ref_we), -1)), axis=1)
    n = int(np.argmin(finite))
    assert 0 < n < 2000  # it does diverge
    _same(np.asarray(we)[:n], ref_we[:n])
    assert not np.isfinite(np.asarray(we)[n:]).any()


def _reference_passages(problem, layers0, eta, levels, max_steps):
    """The saddle study's former while loop (GD with its passages, stopped at a non-finite step)."""
    r = levels.shape[0]
    loss0 = problem.loss(init.end_to_end(layers0))

    def values(y):
        return jnp.linalg.svd(init.end_to_end(y), compute_uv=False)[:r]

    def body(c):
        k, y, sv, times, _, below, unstable_at = c
        y1 = tuple(w - eta * g for w, g in zip(y, network_gradient(problem, y)))
        sv1 = values(y1)
        loss = problem.loss(init.end_to_end(y1))
        finite = jnp.all(jnp.isfinite(sv1)) & jnp.isfinite(loss)
        f = jnp.clip((levels - sv) / jnp.where(sv1 > sv, sv1 - sv, 1.0), 0.0, 1.0)
        times = jnp.where(jnp.isinf(times) & (sv1 >= levels) & finite, eta * (k + f), times)
        unstable_at = jnp.where((unstable_at < 0) & below & (loss > loss0), k + 1, unstable_at)
        y1 = jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), y1, y)
        return k + 1, y1, sv1, times, finite, below | (loss < loss0), unstable_at

    start = (jnp.asarray(0), tuple(layers0), values(layers0), jnp.full(r, jnp.inf), jnp.asarray(True),
             jnp.asarray(False), jnp.asarray(-1))
    k, y, _, times, finite, _, unstable_at = jax.lax.while_loop(lambda c: (c[0] < max_steps) & c[4], body, start)
    return times, k, finite, unstable_at, y


@pytest.mark.parametrize("eta", [0.05, 0.3, 0.7])
def test_saddle_passages_on_the_engine_are_the_former_loop_to_the_last_bit(eta):
    s = np.array([3.0, 1.0, 0.3])
    prob = problems.whitened(s)
    layers0 = init.aligned(prob, depth=3, sigma0=1e-3)
    levels = jnp.asarray(s / 2)
    ref = jax.jit(_reference_passages)(prob, tuple(layers0), eta, levels, 3000)
    rule = PassageRule(LayerFlow(prob), levels, prob.loss(init.end_to_end(layers0)))
    saves, bad_at = descent.iterate(rule, rule.init(layers0), eta, jnp.asarray(3000), 1)
    y, k, _, times, _, unstable_at, _ = descent.last(saves)
    _same(times, ref[0])
    assert int(jnp.where(bad_at >= 0, bad_at, k)) == int(ref[1])
    assert bool(bad_at < 0) == bool(ref[2])
    assert int(unstable_at) == int(ref[3])
    for a, b in zip(y, ref[4]):
        _same(a, b)


def _reference_orbits(step, y0, params, direction, transient, record, window, observe, bad):
    """The attractor map's former loop (its own scans with the tangent vector)."""
    def one(param):
        def advance(carry, k):
            y, v, logs, at = carry
            seen = observe(y)
            y_next, Jv = jax.jvp(lambda z: step(z, param), (y,), (v,))
            norm = jnp.linalg.norm(Jv)
            ok = (at < 0) & jnp.all(jnp.isfinite(y_next)) & jnp.isfinite(norm) & (norm > 0) & ~bad(y_next)
            at = jnp.where((at < 0) & ~ok, k, at)
            y = jnp.where(ok, y_next, y)
            v = jnp.where(ok, Jv / jnp.where(ok, norm, 1.0), v)
            logs = logs + jnp.where(ok & (k >= transient), jnp.log(jnp.where(ok, norm, 1.0)), 0.0)
            return (y, v, logs, at), (seen, y)

        carry = (y0, direction / jnp.linalg.norm(direction), jnp.asarray(0.0), jnp.asarray(-1))
        carry, _ = jax.lax.scan(advance, carry, jnp.arange(transient))
        carry, (seen, ys) = jax.lax.scan(advance, carry, jnp.arange(transient, transient + record))
        y, _, logs, at = carry
        return {"states": ys[-window:], "observed": seen, "lyapunov": logs / record, "diverged_at": at, "final": y}

    return jax.vmap(one)(params)


def test_attractor_orbits_on_the_engine_are_the_former_loop_to_the_last_bit():
    prob = problems.whitened([3.0, 1.0], seed=1)
    layers = init.balanced((2, 2, 2), 0.5, seed=0)
    flat0, unravel = ravel_pytree(tuple(layers))
    direction = jax.random.normal(jax.random.PRNGKey(0), flat0.shape)
    etas = jnp.asarray([0.1, 0.4, 0.55, 0.62, 0.66, 0.7, 1.2])  # fixed points, cycles and divergences
    scale = network_loss(prob, tuple(layers))

    def loss(y):
        return network_loss(prob, unravel(y))

    def gd(y, eta):
        return y - eta * ravel_pytree(network_gradient(prob, unravel(y)))[0]

    def bad(y):
        return ~(loss(y) <= attractors.BLOWUP * scale)

    ref = jax.jit(lambda e: _reference_orbits(gd, flat0, e, direction, 300, 200, 128, loss, bad))(etas)
    out = attractors.orbits(prob, layers, etas, direction, transient=300, record=200, window=128)
    assert np.asarray(out["diverged_at"]).tolist() == np.asarray(ref["diverged_at"]).tolist()
    assert (np.asarray(out["diverged_at"]) >= 0).sum() >= 3
    for key in ("states", "lyapunov", "final"):
        _same(out[key], ref[key])
    _same(out["loss"], ref["observed"])


def test_gd_diagnostics_step_is_the_engines_gradient_descent_to_the_last_bit():
    prob = problems.whitened([2.0, 1.0], weight_decay=0.01, seed=2)
    layers0 = init.balanced((2, 3, 2), 0.5, seed=1)
    etas, per_save = jnp.asarray([0.1, 0.05]), jnp.asarray([2, 4])
    rule = GDDiagnosticRule(LayerFlow(prob))
    saves, bad = descent.iterate_each(rule, rule.init(layers0), etas, per_save, 10)
    runs = descent.descend_on_grid(descent.EulerRule(LayerFlow(prob)), layers0, [0.1, 0.05], 2.0, 11)
    for i, run in enumerate(runs):
        for j in range(2):
            _same(saves[0][j][i], run.layers[j])
    assert np.asarray(bad).tolist() == [-1, -1]


def _lr_in_state(learning_rate):
    """An optimizer whose state depends on its learning rate: it steps by ``-state * g`` with state = lr at init."""
    def init_fn(params):
        return jax.tree_util.tree_map(lambda p: jnp.full_like(p, learning_rate), params)

    def update_fn(updates, state, params=None):
        return jax.tree_util.tree_map(lambda g, s: -s * g, updates, state), state

    return optax.GradientTransformation(init_fn, update_fn)


def test_optax_rule_starts_an_optimizer_whose_state_depends_on_its_learning_rate_at_that_rate():
    prob = problems.whitened([1.0, 0.5], seed=3)
    layers0 = init.balanced((2, 2, 2), 0.3, seed=0)
    run = linflow.optax_descent(prob, layers0, _lr_in_state, 0.05, 20)
    gd = linflow.gradient_descent(prob, layers0, 0.05, 20)
    for a, b in zip(run.layers, gd.layers):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13, atol=1e-15)


def test_optax_rule_equals_optax_driven_by_hand():
    prob = problems.whitened([1.0, 0.5], seed=3)
    layers0 = tuple(init.balanced((2, 2, 2), 0.3, seed=0))
    opt = optax.adam(0.02)
    state, ws = opt.init(layers0), layers0
    for _ in range(30):
        upd, state = opt.update(network_gradient(prob, ws), state, ws)
        ws = optax.apply_updates(ws, upd)
    run = linflow.optax_descent(prob, layers0, "adam", 0.02, 30)
    for a, b in zip(run.layers, ws):
        np.testing.assert_allclose(np.asarray(a)[-1], np.asarray(b), rtol=1e-13, atol=1e-15)


def test_gradient_of_the_loss_after_adam_steps_in_the_learning_rate_is_central_differences():
    prob = problems.whitened([1.0, 0.5], seed=3)
    layers0 = init.balanced((2, 2, 2), 0.3, seed=0)

    def final(lr):
        return linflow.optax_descent(prob, layers0, "adam", lr, 10).loss[-1]

    g = float(jax.grad(final)(0.02))
    h = 1e-6
    assert g == pytest.approx((float(final(0.02 + h)) - float(final(0.02 - h))) / (2 * h), rel=1e-6)


def test_the_engine_stops_and_freezes_where_the_rule_says_a_state_is_inadmissible():
    class Doubling(descent.AbstractRule):
        limit: float

        def __call__(self, state, eta):
            return state * 2.0

        def admissible(self, state):
            return state <= self.limit

    saves, bad = descent.iterate(Doubling(100.0), jnp.asarray(1.0), 1.0, 1, 10)
    assert np.asarray(saves).tolist() == [1, 2, 4, 8, 16, 32, 64, 64, 64, 64, 64]
    assert int(bad) == 7  # 128 at step 7 is refused
    saves, bad = descent.iterate(Doubling(100.0), jnp.asarray(1.0), 1.0, jnp.asarray(5), 2)
    assert np.asarray(saves).tolist() == [1, 32, 64] and int(bad) == 7


def test_contracts_are_abstract_and_the_solve_path_refuses_anything_else():
    with pytest.raises(TypeError):
        AbstractField()
    with pytest.raises(TypeError):
        descent.AbstractRule()
    prob = problems.whitened([1.0])
    with pytest.raises(TypeError, match="AbstractField"):
        linflow.solve(lambda t, y, a: y, init.balanced((1, 1), 0.5), 1.0)
    assert isinstance(LayerFlow(prob), AbstractField)
    assert isinstance(descent.EulerRule(LayerFlow(prob)), descent.AbstractRule)
