"""The public runs compose with JAX: jit, vmap and grad through them, solver and controller objects,
Trajectory as a pytree of fixed-shape arrays. Derivatives are checked against central finite
differences of the same public function (an independent computation: no autodiff involved)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import linflow
from linflow import init, problems

from conftest import small_regression, traces

PROB = small_regression(m=30, d=3, k=2, p=4.0, seed=3)
LAYERS = init.balanced((3, 4, 2), 0.6, seed=1)


def central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.slow
def test_grad_of_the_final_loss_of_the_flow_in_the_init_scale_and_the_horizon():
    def final_loss(scale, t1=2.0):
        run = linflow.gradient_flow(PROB, tuple(scale * w for w in LAYERS), t1, n_save=3, rtol=1e-12, atol=1e-14)
        return run.loss[-1]

    g = jax.grad(final_loss)(1.0)
    fd = central_difference(lambda s: float(final_loss(s)), 1.0, 1e-5)
    assert abs(g) > 1e-3  # not trivially zero
    assert g == pytest.approx(fd, rel=1e-6)
    g_t1 = jax.grad(final_loss, argnums=1)(1.0, 2.0)
    fd_t1 = central_difference(lambda t: float(final_loss(1.0, t)), 2.0, 1e-5)
    assert g_t1 == pytest.approx(fd_t1, rel=1e-6)
    assert g_t1 < 0  # the loss decreases along the flow: dL/dt1 = -||grad||^2 < 0


def test_grad_of_the_loss_after_k_steps_in_eta_and_in_the_start():
    def loss_after(eta, layers=LAYERS):
        return linflow.gradient_descent(PROB, layers, eta, 25, save_every=5).loss[-1]

    g = jax.grad(loss_after)(0.02)
    fd = central_difference(lambda e: float(loss_after(e)), 0.02, 1e-7)
    assert abs(g) > 1e-3 and g == pytest.approx(fd, rel=1e-6)
    g_layers = jax.grad(lambda ls: loss_after(0.02, ls))(LAYERS)
    direction = tuple(np.sin(np.arange(w.size) + 1.0).reshape(w.shape) for w in LAYERS)
    along = sum(float(jnp.sum(a * b)) for a, b in zip(g_layers, direction))
    fd_dir = central_difference(lambda h: float(loss_after(0.02, tuple(w + h * v for w, v in zip(LAYERS, direction)))),
                                0.0, 1e-6)
    assert along == pytest.approx(fd_dir, rel=1e-6)


@pytest.mark.slow
def test_grad_through_the_end_to_end_flow_and_eq10():
    W0 = linflow.end_to_end(LAYERS)
    V = jnp.ones_like(W0)

    def flow_loss(h):
        return linflow.end_to_end_flow(PROB, W0 + h * V, 2, 1.5, n_save=2, rtol=1e-12, atol=1e-14).loss[-1]

    def eq10_loss(h):
        return linflow.end_to_end_descent(PROB, W0 + h * V, 2, 0.01, 30).loss[-1]

    for f in (flow_loss, eq10_loss):
        assert jax.grad(f)(0.0) == pytest.approx(central_difference(lambda h: float(f(h)), 0.0, 1e-6), rel=1e-6)


def test_vmap_over_learning_rates_equals_single_runs_with_their_own_status():
    prob = problems.two_point(10.0, 1.0, p=4)
    layers = init.balanced((2, 2, 1), 0.5)
    etas = jnp.array([0.001, 0.004, 0.05])
    batch = jax.vmap(lambda e: linflow.gradient_descent(prob, layers, e, 300, save_every=10))(etas)
    assert isinstance(batch, linflow.Trajectory) and batch.loss.shape == (3, 31)
    for run, eta in zip(batch.unstack(), etas):
        single = linflow.gradient_descent(prob, layers, float(eta), 300, save_every=10)
        assert run.status == single.status and run.n_reached == single.n_reached
        np.testing.assert_allclose(run.loss, single.loss, rtol=1e-13)
        assert run.message == single.message
    assert [r.status for r in batch.unstack()] == ["ok", "ok", "diverged"]
    iterations = batch.iterations  # k = t / eta with each run's own eta (the diverged run repeats its last row)
    np.testing.assert_array_equal(iterations[:2], np.tile(np.arange(0, 301, 10), (2, 1)))
    np.testing.assert_array_equal(iterations[2], batch.unstack()[2].iterations)
    for one_run_only in (lambda b: b.status, lambda b: b.final_loss, lambda b: b.to_xarray(), lambda b: b.reached()):
        with pytest.raises(ValueError, match=r"a batch of 3 runs .*unstack"):
            one_run_only(batch)


@pytest.mark.slow
def test_vmap_over_starts_keeps_each_solve_adaptive_and_equals_single_runs():
    starts = [init.balanced((3, 4, 2), s, seed=i) for i, s in enumerate((0.2, 0.9))]
    stacked = tuple(jnp.stack(ws) for ws in zip(*starts))
    batch = jax.vmap(lambda ls: linflow.gradient_flow(PROB, ls, 2.0, n_save=5))(stacked).unstack()
    for run, start in zip(batch, starts):
        single = linflow.gradient_flow(PROB, start, 2.0, n_save=5)
        np.testing.assert_allclose(run.end_to_end, single.end_to_end, rtol=1e-12, atol=1e-14)
        assert int(run.stats["num_steps"]) == int(single.stats["num_steps"])
    assert int(batch[0].stats["num_steps"]) != int(batch[1].stats["num_steps"])


@pytest.mark.slow
def test_jit_of_a_function_that_calls_public_runs():
    @jax.jit
    def gap(t1):
        flow = linflow.gradient_flow(PROB, LAYERS, t1, n_save=2)
        e2e = linflow.end_to_end_flow(PROB, linflow.end_to_end(LAYERS), 2, t1, n_save=2)
        return flow.loss[-1] - e2e.loss[-1], flow.result

    value, result = gap(1.0)
    eager = linflow.gradient_flow(PROB, LAYERS, 1.0, n_save=2).loss[-1] - linflow.end_to_end_flow(
        PROB, linflow.end_to_end(LAYERS), 2, 1.0, n_save=2).loss[-1]
    assert float(value) == pytest.approx(float(eager), abs=1e-12)
    assert linflow.STATUSES[int(result)] == "ok"


@pytest.mark.slow
def test_solver_and_controller_objects_equal_their_names():
    by_name = linflow.gradient_flow(PROB, LAYERS, 2.0, n_save=5, solver="dopri5", rtol=1e-7, atol=1e-9)
    by_object = linflow.gradient_flow(PROB, LAYERS, 2.0, n_save=5, solver=diffrax.Dopri5(),
                                      stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-9))
    np.testing.assert_array_equal(by_name.end_to_end, by_object.end_to_end)
    assert by_object.solver == "dopri5" and int(by_object.stats["nfev"]) == int(by_name.stats["nfev"]) > 0
    # a solver outside the registry works; its evaluation count is unknown (-1)
    other = linflow.gradient_flow(PROB, LAYERS, 2.0, n_save=5, solver=diffrax.ReversibleHeun(), dt0=1e-3)
    assert other.ok and other.solver == "ReversibleHeun" and int(other.stats["nfev"]) == -1
    np.testing.assert_allclose(other.end_to_end, by_name.end_to_end, atol=1e-5)
    # a constant-step controller object with an adaptive solver takes dt0 steps
    fixed = linflow.gradient_flow(PROB, LAYERS, 2.0, n_save=5, solver=diffrax.Tsit5(),
                                  stepsize_controller=diffrax.ConstantStepSize(), dt0=0.01)
    assert int(fixed.stats["num_steps"]) == 200


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(solver=diffrax.Tsit5(), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8), rtol=1e-3),
     ValueError, "either to the stepsize_controller or to the run"),
    (dict(solver=object()), TypeError, "solver must be a name"),
    (dict(solver="rk4"), ValueError, "solver must be one of"),
    (dict(stepsize_controller="pid"), TypeError, "stepsize_controller must be a diffrax"),
])
def test_bad_solver_options_are_named(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        linflow.gradient_flow(PROB, LAYERS, 1.0, **kwargs)


def test_trajectory_is_a_pytree_of_fixed_shape_arrays():
    prob = problems.two_point(10.0, 1.0, p=4)
    run = linflow.gradient_descent(prob, init.balanced((2, 2, 1), 0.5), 0.05, 300)
    assert isinstance(run, eqx.Module)
    leaves = jax.tree_util.tree_leaves(run)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)
    assert run.status == "diverged" and run.loss.shape == run.ts.shape == (301,)
    assert all(np.all(np.isfinite(x)) for x in leaves)
    rebuilt = jax.tree_util.tree_map(lambda x: x, run)
    assert rebuilt.message == run.message and repr(rebuilt) == repr(run)
    assert f"{run.n_reached} of 301 points reached" in repr(run)


def test_validation_inside_jit_checks_shapes_and_leaves_values_to_the_caller():
    bad = (jnp.ones((4, 3)), jnp.ones((3, 4)))  # dims (3, 4, 3): 3 outputs where the problem has k = 2
    with pytest.raises(ValueError, match="layers map 3 inputs to 3 outputs"):
        jax.jit(lambda ls: linflow.gradient_flow(PROB, ls, 1.0).loss)(bad)
    with pytest.raises(ValueError, match="eta must have 0 dimensions"):
        jax.jit(lambda e: linflow.gradient_descent(PROB, LAYERS, e, 3).loss)(jnp.ones(2))
    # values are checked on concrete inputs only
    with pytest.raises(ValueError, match="eta must be > 0"):
        linflow.gradient_descent(PROB, LAYERS, -0.1, 3)


def test_optax_descent_takes_any_optax_constructor_and_is_differentiable_in_the_learning_rate():
    by_name = linflow.optax_descent(PROB, LAYERS, "adam", 0.01, 40)
    by_function = linflow.optax_descent(PROB, LAYERS, optax.adam, 0.01, 40)
    np.testing.assert_array_equal(by_name.loss, by_function.loss)
    assert by_function.kind == "adam" and by_function.final_loss < float(by_function.loss[0])

    def after(lr):
        return linflow.optax_descent(PROB, LAYERS, "momentum", lr, 20).loss[-1]

    assert jax.grad(after)(0.01) == pytest.approx(central_difference(lambda e: float(after(e)), 0.01, 1e-7),
                                                  rel=1e-6)


def test_descend_on_grid_runs_every_eta_with_its_own_steps_in_one_compiled_call():
    from linflow import descent

    prob = problems.two_point(10.0, 1.0, p=4)
    layers = init.balanced((2, 2, 1), 0.5)
    t1, points = 0.6, 7
    etas = [0.1, 0.05, 0.0125]  # 1, 2 and 8 steps per save
    rule = descent.EulerRule(linflow.LayerFlow(prob))
    runs = descent.descend_on_grid(rule, layers, etas, t1, points)
    for run, eta in zip(runs, etas):
        steps = round(t1 / eta)
        single = linflow.gradient_descent(prob, layers, eta, steps, save_every=steps // (points - 1))
        np.testing.assert_allclose(run.ts, single.ts, rtol=1e-14)
        np.testing.assert_allclose(run.loss, single.loss, rtol=1e-12)
        assert run.status == single.status and run.message == single.message
    with traces() as traced:  # other etas: no new compilation
        descent.descend_on_grid(rule, layers, [0.025, 0.02, 0.1 / 3], t1, points)
    assert "_descend_each" not in traced
    with traces() as traced:  # another number of etas: exactly one
        descent.descend_on_grid(rule, layers, [0.025, 0.02], t1, points)
    assert traced.count("_descend_each") == 1
    with pytest.raises(ValueError, match="must divide the save spacing"):
        descent.descend_on_grid(rule, layers, [0.07], t1, points)


@pytest.mark.slow
def test_a_problem_built_inside_vmap_and_grad_varies_the_data_and_the_weight_decay():
    """Problem(X, Y, weight_decay=...) accepts tracers: a vmap over targets equals the runs one by one, and
    d L(t1) / d lambda matches central differences."""
    prob = problems.whitened([2.0, 1.0])
    layers = init.balanced((2, 3, 2), 0.3, 0)
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)

    def final(Y, lam=0.0):
        return linflow.gradient_flow(linflow.Problem(X, Y, weight_decay=lam), layers, 1.0, n_save=2).loss[-1]

    batch = jax.vmap(final)(jnp.stack([Y, 2.0 * Y]))
    np.testing.assert_allclose(batch, [float(final(Y)), float(final(2.0 * Y))], rtol=1e-12)
    assert batch[1] > 2.0 * batch[0]  # the targets really changed (the moments were rebuilt)
    assert jax.grad(lambda lam: final(Y, lam))(0.1) == pytest.approx(
        central_difference(lambda lam: float(final(Y, lam)), 0.1, 1e-6), rel=1e-6)
