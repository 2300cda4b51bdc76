"""Adam's continuous model (docs/math.md section 14) against optax's Adam and against what it must reduce to."""

import numpy as np
import optax
import pytest

import linflow
from linflow import init, problems
from linflow.core.measures import fit_order
from linflow.studies import momentum


@pytest.mark.slow
def test_optax_adam_leaves_its_model_at_order_1_when_the_averages_scale_with_eta():
    """1 - beta1 = 2 eta, 1 - beta2 = 4 eta, bias correction on (optax's adam): the largest deviation of W_e over
    [0, 1] falls at order 1 (within 0.15) on a depth-3 network, directly and as linflow.studies.momentum reads it."""
    prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
    layers = init.balanced((3, 3, 3, 3), 0.3, seed=1)
    etas, errors = [0.02, 0.01, 0.005, 0.0025], []
    for eta in etas:
        b1, b2 = 1 - 2 * eta, 1 - 4 * eta
        run = linflow.optax_descent(prob, layers, optax.adam(eta, b1, b2, eps=1e-8), eta, round(1 / eta),
                                    save_every=round(0.1 / eta))
        flow = linflow.adam_flow(prob, layers, eta, b1, b2, 1.0, ts=run.ts, rtol=1e-11, atol=1e-13)
        assert run.status == flow.status == "ok"
        errors.append(np.max(np.abs(np.asarray(flow.end_to_end) - np.asarray(run.end_to_end))))
    assert abs(fit_order(etas, errors).order - 1) <= 0.15, errors
    ds = momentum.adam_breakdown(prob, layers, etas, 2.0, 4.0, 1.0)
    (row,) = momentum.summary(ds)
    assert row["verdict"] == "order 1" and row["points"] == 4
    assert "adam (1 - beta1 = 2 eta, 1 - beta2 = 4 eta)" in momentum.summary_text(ds)
    with pytest.raises(ValueError, match="etas must stay below 1 / max"):
        momentum.adam_breakdown(prob, layers, [0.3], 2.0, 4.0, 0.6, points=3)


def test_on_a_scalar_quadratic_the_model_is_its_closed_form():
    """L = (1/2)(w - s)^2 from w0 < s, eps = 0: at t = 0 the model's velocity is the limit of the bias-corrected
    quotient, -g / |g| = +1 (Adam's first step, eta sign(-g)), and the moments leave 0 with slopes a g and b g^2
    (exact); over one step of flow time the model moves as far as that first step (to 0.5% of it)."""
    prob = problems.whitened([2.0])
    w0 = (np.array([[0.5]]),)
    eta, b1, b2 = 0.01, 0.98, 0.99
    field = linflow.AdamFlow(prob, (1 - b1) / eta, (1 - b2) / eta, 0.0, eta)
    zero = (np.zeros((1, 1)),)
    dw, dm, dv = field(0.0, (w0, zero, zero))
    g = 0.5 - 2.0
    np.testing.assert_allclose(float(dw[0][0, 0]), 1.0, rtol=1e-15)
    np.testing.assert_allclose(float(dm[0][0, 0]), (1 - b1) / eta * g, rtol=1e-15)
    np.testing.assert_allclose(float(dv[0][0, 0]), (1 - b2) / eta * g**2, rtol=1e-15)
    # and along the run it is the method's first steps: after one step Adam is at w0 + eta (sign descent)
    flow = linflow.adam_flow(prob, w0, eta, b1, b2, eta, eps=0.0, n_save=2, rtol=1e-12, atol=1e-14)
    run = linflow.optax_descent(prob, w0, optax.adam(eta, b1, b2, eps=0.0), eta, 1)
    np.testing.assert_allclose(float(run.end_to_end[-1, 0, 0]), 0.5 + eta, rtol=1e-14)
    assert abs(float(flow.end_to_end[-1, 0, 0]) - (0.5 + eta)) < 5e-3 * eta


@pytest.mark.parametrize("kw, match", [({"beta1": 1.0}, "beta1 must be in \\[0, 1\\)"),
                                       ({"beta2": -0.1}, "beta2 must be >= 0"), ({"eps": -1.0}, "eps must be >= 0")])
def test_bad_input_is_named(kw, match):
    args = {"beta1": 0.9, "beta2": 0.99, **kw}
    eps = args.pop("eps", 1e-8)
    with pytest.raises(ValueError, match=match):
        linflow.adam_flow(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.5), 0.01, args["beta1"], args["beta2"],
                          1.0, eps=eps)


@pytest.mark.slow
@pytest.mark.parametrize("initial_scale, order", [(0.0, 0.5), (1.0, 1.0)])
def test_optax_rmsprop_leaves_its_model_at_order_one_half_from_zero_and_one_from_a_positive_start(initial_scale, order):
    """1 - decay = 4 eta (optax's rmsprop: no bias correction, eps inside the root): from v = 0 the method's first
    steps move by sqrt(eta / b) / sqrt(k) each (docs/math.md (14.4)), so it leaves the model at order 1/2; from
    v_0 > 0 there is no initial layer and the order is 1 (within 0.15, depth-3 network, T = 1)."""
    prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
    layers = init.balanced((3, 3, 3), 0.5, seed=1)
    etas, errors, relative = [0.02, 0.01, 0.005, 0.0025], [], []
    for eta in etas:
        decay = 1 - 4 * eta
        run = linflow.optax_descent(prob, layers, optax.rmsprop(eta, decay, eps=0.0, initial_scale=initial_scale), eta,
                                    round(1 / eta), save_every=round(0.1 / eta))
        flow = linflow.rmsprop_flow(prob, layers, eta, decay, 1.0, eps=0.0, initial_scale=initial_scale, ts=run.ts,
                                    rtol=1e-11, atol=1e-13)
        assert run.status == flow.status == "ok" and flow.kind == "rmsprop_flow"
        np.testing.assert_array_equal(np.asarray(flow.ts), np.asarray(run.ts))  # saved in flow time, not in sqrt(t)
        errors.append(np.max(np.abs(np.asarray(flow.end_to_end) - np.asarray(run.end_to_end))))
        relative.append(np.max(np.linalg.norm(np.asarray(flow.end_to_end) - np.asarray(run.end_to_end), axis=(1, 2))
                               ) / np.max(np.linalg.norm(np.asarray(run.end_to_end), axis=(1, 2))))
    assert abs(fit_order(etas, errors).order - order) <= 0.15, errors
    # the study reads the same deviations (relative to the run's largest norm) and states the theory's order
    ds = momentum.rmsprop_breakdown(prob, layers, etas, 4.0, 1.0, initial_scale=initial_scale, eps=0.0,
                                    rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ds.deviation_rel.values[0], relative[::-1], rtol=1e-6)  # the study sorts its etas
    (row,) = momentum.summary(ds)
    fitted = sum(r < 0.1 for r in relative)  # the rule fits where the deviation is below `asymptotic` (0.1)
    assert row["theory"] == order and row["verdict"] == f"order {order:g}" and row["points"] == fitted >= 2, row
    assert f"rmsprop (1 - decay = 4 eta, v from {initial_scale:g})" in momentum.summary_text(ds)


def test_rmsprop_model_at_its_singular_start_and_on_a_constant_gradient():
    """In the clock s = sqrt(t), from v = eps = 0 the velocity is its limit -2 sign(g) / sqrt(b) (v ~ b s^2 g^2),
    and with eps > 0 it is 0 at s = 0; along a run from v = 0 on a depth-1 problem far from its target (the gradient
    nearly constant over a short horizon) theta moves like the closed form of a constant gradient,
    theta_0 - sign(g) (2 / b) artanh(sqrt(1 - exp(-b t))) (docs/math.md (14.3))."""
    prob = problems.whitened([1.0])
    w0 = (np.array([[1000.0]]),)  # g = w - 1 = 999; over t <= 0.01 w moves by 0.1, g by 1e-4 relative
    b, eta = 4.0, 0.01
    zero = (np.zeros((1, 1)),)
    dw, dv = linflow.RMSPropFlow(prob, b, 0.0, eta)(0.0, (w0, zero))
    np.testing.assert_allclose(float(dw[0][0, 0]), -2 / np.sqrt(b), rtol=1e-15)
    assert float(dv[0][0, 0]) == 0.0
    dw, _ = linflow.RMSPropFlow(prob, b, 1e-8, eta)(0.0, (w0, zero))
    assert float(dw[0][0, 0]) == 0.0
    ts = np.linspace(0.0, 0.01, 5)
    flow = linflow.rmsprop_flow(prob, w0, eta, 1 - b * eta, 0.01, eps=0.0, ts=ts, rtol=1e-12, atol=1e-14)
    closed = 1000.0 - (2 / b) * np.arctanh(np.sqrt(-np.expm1(-b * ts)))
    assert closed[0] - closed[-1] > 0.09  # it moved: 0.1 at speed 1 / sqrt(b t)
    # the closed form holds to the change of g (1e-4 relative) times the distance moved (0.1): 1e-5
    np.testing.assert_allclose(np.asarray(flow.end_to_end)[:, 0, 0], closed, rtol=0, atol=1e-5)


def test_rmsprops_modified_field_on_a_linear_model_is_its_closed_form():
    """Depth 1, whitened (g = W - Phi, H = I): written out by hand from (14.7), the corrected field is
    F_theta = -g / sqrt(v + eps) + eta [(1/4) g b (g^2 - v) / (v + eps)^(3/2) - (1/2) g / (v + eps)] and
    F_v = b (1 + eta b / 2) (g^2 - v) + eta b g^2 / sqrt(v + eps): the second moment's rate b (1 + eta b / 2) is
    -ln(1 - eta b) / eta, the average's exact rate, to first order."""
    rng = np.random.default_rng(2)
    prob = problems.whitened([2.0, 1.0], seed=1)
    W = rng.normal(size=(2, 2))
    v = rng.uniform(0.1, 2.0, size=(2, 2))
    b, eps, eta = 3.0, 1e-3, 0.02
    g = W - np.asarray(prob.whitened_target)
    dw, dv = linflow.RMSPropModifiedFlow(prob, b, eps, eta)(0.0, ((W,), (v,)))
    s = v + eps
    np.testing.assert_allclose(np.asarray(dw[0]), -g / np.sqrt(s) + eta * (0.25 * g * b * (g * g - v) / s ** 1.5
                                                                          - 0.5 * g / s), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(dv[0]), b * (1 + eta * b / 2) * (g * g - v) + eta * b * g * g / np.sqrt(s),
                               rtol=1e-12)


@pytest.mark.slow
def test_optax_rmsprop_leaves_its_modified_equation_at_order_2():
    """From v0 = 1 (no initial layer), 1 - decay = 4 eta: (14.2) is first order and the modified equation (14.7)
    second order (within 0.15) on a depth-3 network over T = 1, directly and as the study reads it."""
    prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
    layers = init.balanced((3, 3, 3, 3), 0.3, seed=1)
    etas, errors = [0.02, 0.01, 0.005, 0.0025], {"leading": [], "modified": []}
    for eta in etas:
        run = linflow.optax_descent(prob, layers, optax.rmsprop(eta, 1 - 4 * eta, eps=1e-8, initial_scale=1.0), eta,
                                    round(1 / eta), save_every=round(0.1 / eta))
        for model, out in errors.items():
            flow = linflow.rmsprop_flow(prob, layers, eta, 1 - 4 * eta, 1.0, initial_scale=1.0, model=model,
                                        ts=run.ts, rtol=1e-12, atol=1e-14)
            assert flow.status == "ok"
            out.append(np.max(np.linalg.norm(np.asarray(flow.end_to_end) - np.asarray(run.end_to_end), axis=(1, 2))))
    assert abs(fit_order(etas, errors["leading"]).order - 1) <= 0.15, errors
    assert abs(fit_order(etas, errors["modified"]).order - 2) <= 0.15, errors
    assert errors["modified"][-1] < errors["leading"][-1] / 20
    ds = momentum.rmsprop_breakdown(prob, layers, etas, 4.0, 1.0, initial_scale=1.0, model="modified")
    (row,) = momentum.summary(ds)
    assert row["theory"] == 2 and row["verdict"] == "order 2", row
    assert "rmsprop_flow, modified (14.7) (v from 1)" in row["pair"]


def test_rmsprops_modified_equation_is_refused_from_zero():
    with pytest.raises(ValueError, match="model='modified' needs initial_scale \\+ eps > 0"):
        linflow.rmsprop_flow(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.5), 0.01, 0.96, 1.0, eps=0.0,
                             model="modified")
    with pytest.raises(ValueError, match="model must be one of leading, modified"):
        linflow.rmsprop_flow(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.5), 0.01, 0.96, 1.0, model="x")
    with pytest.raises(ValueError, match="model='modified' needs initial_scale \\+ eps > 0"):
        momentum.rmsprop_breakdown(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.5), [0.05], 4.0, 0.6, points=3,
                                   eps=0.0, model="modified")


@pytest.mark.parametrize("kw, match", [({"decay": 1.0}, "decay must be in \\[0, 1\\)"),
                                       ({"eps": -1.0}, "eps must be >= 0"),
                                       ({"initial_scale": -0.5}, "initial_scale must be >= 0")])
def test_rmsprop_bad_input_is_named(kw, match):
    args = {"decay": 0.9, **kw}
    decay = args.pop("decay")
    with pytest.raises(ValueError, match=match):
        linflow.rmsprop_flow(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.5), 0.01, decay, 1.0, **args)


@pytest.mark.parametrize("kw, match", [({"b": -1.0}, "b must be"), ({"initial_scale": -1.0}, "initial_scale"),
                                       ({"etas": [0.3]}, r"etas must stay below 1 / max\(b\) = 0.25"),
                                       ({"t1": 0.0}, "t1 must be")])
def test_rmsprop_breakdown_names_bad_input_before_running(kw, match):
    args = {"etas": [0.05], "b": 4.0, "t1": 0.6, **kw}
    with pytest.raises(ValueError, match=match):
        momentum.rmsprop_breakdown(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.5), args["etas"], args["b"],
                                   args["t1"], points=3, initial_scale=kw.get("initial_scale", 0.0))


def test_adams_fixed_beta_fields_on_a_linear_model_are_their_closed_form():
    """Depth 1, whitened (g = W - Phi, H = I, so HF = F): written out by hand from (14.8), the memoryless field is
    -F = -g / (sqrt(g^2 + eps_root) + eps) and the modified one -F - eta c F with
    c = (beta1 / (1 - beta1) + 1/2) / D - (beta2 / (1 - beta2) + 1/2) g^2 / (D^2 r)."""
    rng = np.random.default_rng(4)
    prob = problems.whitened([2.0, 1.0], seed=1)
    W = rng.normal(size=(2, 2))
    b1, b2, eps, er, eta = 0.7, 0.95, 0.05, 0.3, 0.02
    g = W - np.asarray(prob.whitened_target)
    r = np.sqrt(g * g + er)
    d = r + eps
    F = g / d
    c = (b1 / (1 - b1) + 0.5) / d - (b2 / (1 - b2) + 0.5) * g * g / (d * d * r)
    (lead,) = linflow.AdamMemorylessFlow(prob, b1, b2, eps, er, eta)(0.0, (W,))
    (mod,) = linflow.AdamModifiedFlow(prob, b1, b2, eps, er, eta)(0.0, (W,))
    np.testing.assert_allclose(np.asarray(lead), -F, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(mod), -F - eta * c * F, rtol=1e-13)


@pytest.mark.parametrize("eps_root, sign", [(1e-8, 1.0), (1e4, -1.0)])
def test_the_correction_raises_the_perturbed_one_norm_early_and_lowers_it_late(eps_root, sign):
    """eps = 0, beta2 > beta1 (0.9, 0.999): the correction -eta c HF of (14.8) moves the state along (early,
    g^2 >> eps_root: c < 0) or against (late, g^2 << eps_root: c > 0) the gradient of the perturbed one-norm
    sum_i sqrt(g_i^2 + eps_root) of the loss gradient, computed here by jax.grad of that norm (independent of the
    field's Hessian-vector product): Cattaneo, Klusowski & Shigida's anti-penalization and penalization."""
    import jax
    import jax.numpy as jnp

    from linflow.core.fields import network_gradient

    prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
    layers = init.balanced((3, 3, 3, 3), 0.4, seed=2)
    args = (prob, 0.9, 0.999, 0.0, eps_root, 0.01)
    correction = jax.tree_util.tree_map(jnp.subtract, linflow.AdamModifiedFlow(*args)(0.0, layers),
                                        linflow.AdamMemorylessFlow(*args)(0.0, layers))

    def one_norm(ls):
        return sum(jnp.sum(jnp.sqrt(gi * gi + eps_root)) for gi in network_gradient(prob, ls))

    slope = sum(float(jnp.vdot(a, c)) for a, c in zip(jax.grad(one_norm)(layers), correction))
    assert sign * slope > 0, slope


@pytest.mark.slow
def test_optax_adam_at_fixed_betas_leaves_the_memoryless_flow_at_order_1_and_the_modified_equation_at_order_2():
    """beta1 = 0.5, beta2 = 0.8 fixed, eps_root = 1, eps = 0 (optax's adam, bias correction on): the memoryless flow
    is first order and (14.8) second order (within 0.15) on a depth-3 network over T = 1, directly and as the study
    reads it."""
    prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
    layers = init.balanced((3, 3, 3, 3), 0.3, seed=1)
    etas, errors = [0.01, 0.005, 0.0025, 0.00125], {"memoryless": [], "modified": []}
    for eta in etas:
        run = linflow.optax_descent(prob, layers, optax.adam(eta, 0.5, 0.8, eps=0.0, eps_root=1.0), eta,
                                    round(1 / eta), save_every=round(0.1 / eta))
        for model, out in errors.items():
            flow = linflow.adam_flow(prob, layers, eta, 0.5, 0.8, 1.0, eps=0.0, eps_root=1.0, model=model,
                                     ts=run.ts, rtol=1e-12, atol=1e-14)
            assert flow.status == "ok" and flow.kind == f"adam_{model}_flow"
            out.append(np.max(np.linalg.norm(np.asarray(flow.end_to_end) - np.asarray(run.end_to_end), axis=(1, 2))))
    assert abs(fit_order(etas, errors["memoryless"]).order - 1) <= 0.15, errors
    assert abs(fit_order(etas, errors["modified"]).order - 2) <= 0.15, errors
    assert errors["modified"][-1] < errors["memoryless"][-1] / 50
    ds = momentum.adam_fixed_breakdown(prob, layers, etas, 0.5, 0.8, 1.0)
    lead, mod = momentum.summary(ds)
    assert (lead["theory"], lead["verdict"]) == (1, "order 1") and (mod["theory"], mod["verdict"]) == (2, "order 2")
    np.testing.assert_allclose(ds.deviation_rel.sel(eta=etas[-1]).values[1],
                               errors["modified"][-1] / np.max(np.linalg.norm(np.asarray(run.end_to_end), axis=(1, 2))),
                               rtol=1e-6)
    assert "adam (beta1 = 0.5, beta2 = 0.8 fixed, eps_root = 1)" in momentum.summary_text(ds)


@pytest.mark.parametrize("kw, match", [({"model": "x"}, "model must be one of scaling, memoryless, modified"),
                                       ({"beta1": 1.0, "model": "modified"}, "beta1 must be in \\[0, 1\\)"),
                                       ({"eps_root": -1.0, "model": "memoryless"}, "eps_root must be >= 0")])
def test_adam_models_bad_input_is_named(kw, match):
    args = {"beta1": 0.9, "beta2": 0.99, **kw}
    b1, b2 = args.pop("beta1"), args.pop("beta2")
    with pytest.raises(ValueError, match=match):
        linflow.adam_flow(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.5), 0.01, b1, b2, 1.0, **args)
    if "model" in kw and kw["model"] == "x":
        with pytest.raises(ValueError, match="models must be some of memoryless, modified"):
            momentum.adam_fixed_breakdown(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.5), [0.05], 0.9,
                                          0.99, 0.6, points=3, models=("x",))
