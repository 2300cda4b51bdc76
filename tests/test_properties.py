"""Properties, not examples (issue 39): laws from the mathematics checked by hypothesis over random shapes (input and
output dimensions, depths 1-5, hidden widths with bottlenecks), losses (p in [1, 4], weight decay), starts (balanced,
near zero, random, aligned; scales over decades) and data. Each failure hypothesis found is kept as an explicit
``@example``.

The number of examples comes from the hypothesis profile (tests/conftest.py): ``fast`` by default (the README's test
command), ``long`` with ``--hypothesis-profile=long`` or ``LINFLOW_HYPOTHESIS_PROFILE=long``. The references are
independent of the code under test: NumPy eigendecompositions, finite differences, closed forms, identities.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import linflow
from linflow import exact, fields, init, linalg
from linflow import EndToEndFlow, LayerFlow

from conftest import budget

@pytest.fixture(autouse=True, scope="module")
def _no_persistent_cache():
    """Random shapes compile programs that no other test needs: they skip the suite's persistent compilation cache
    (a long-profile run, thousands of compilations in one process, once crashed inside XLA writing to it)."""
    import jax

    before = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    yield
    jax.config.update("jax_enable_compilation_cache", before)


_DRAWN = [0]


def _every_so_often_forget_compiled_code(every: int = 40) -> None:
    """A long search compiles thousands of distinct programs in one process; XLA has crashed inside compilation
    after a few hundred to a few thousand (segfault or abort, with and without the suite's XLA flags). Dropping
    JAX's caches every ``every`` drawn problems keeps one process from holding them all."""
    _DRAWN[0] += 1
    if _DRAWN[0] % every == 0:
        import jax

        jax.clear_caches()


def prop(n: int):
    """The settings of a property: ``budget(n)`` examples (tests/conftest.py), no deadline (XLA compiles each shape)."""
    return settings(max_examples=budget(n), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- strategies ----------------------------------------------------------------------------------------------------

def data(seed: int, m: int, d: int, k: int, p: float, weight_decay: float) -> linflow.Problem:
    rng = np.random.default_rng(seed)
    return linflow.Problem(rng.standard_normal((m, d)), rng.standard_normal((m, k)), p=p, weight_decay=weight_decay)


@st.composite
def problems(draw, max_dim: int = 3, p=None, weight_decay=None, smooth: bool = True):
    """Random lp regressions. ``smooth``: p in [1.5, 4]. Below, the field ``sign(r) |r|^(p-1)`` is far from Lipschitz
    where a residual crosses 0 (p = 1: it jumps, and the flow slides along the kink): an adaptive solver at a tight
    tolerance stalls there, which the Trajectory reports as ``max_steps`` (the long profile found p = 1.109 and
    p = 1.0 stalling after 100,000 steps; kept below as explicit examples)."""
    _every_so_often_forget_compiled_code()
    d, k = draw(st.integers(1, max_dim)), draw(st.integers(1, max_dim))
    p = draw(st.floats(1.5 if smooth else 1.0, 4.0) | st.just(2.0)) if p is None else p
    # p < 2 on data a linear map can fit exactly (m <= d) reaches L = 0 in finite time, where the field is not
    # Lipschitz: the solver stalls there (the long profile's p = 1.5, m = d = 2; kept below). Smooth: m > d.
    m = draw(st.integers(max(d + (2 if smooth and p < 2 else 0), 2), 8))
    lam = draw(st.just(0.0) | st.floats(0.0, 0.2)) if weight_decay is None else weight_decay
    return data(draw(st.integers(0, 2**16)), m, d, k, p, lam)


@st.composite
def widths(draw, depth: int, max_width: int = 3):
    """Hidden widths, bottlenecks (below min(d, k)) included."""
    return tuple(draw(st.integers(1, max_width)) for _ in range(depth - 1))


@st.composite
def balanced_starts(draw, problem, depth: int, low: float = -1.5, high: float = 0.3):
    hidden = draw(widths(depth))
    scale = 10.0 ** draw(st.floats(low, high))
    return init.balanced((problem.d, *hidden, problem.k), scale, seed=draw(st.integers(0, 2**16)))


def rel_gap(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    norms = np.linalg.norm(a.reshape(len(a), -1), axis=1)
    return float(np.max(np.linalg.norm((a - b).reshape(len(a), -1), axis=1)) / max(np.max(norms), 1e-300))


# ---- Theorem 1 and Claim 2 -----------------------------------------------------------------------------------------

@pytest.mark.slow
@prop(2)
@given(st.data())
def test_theorem1_layer_flow_product_is_the_end_to_end_flow_in_both_states(case):
    """ACH18 Theorem 1, docs/math.md (2.2): from a balanced start the layers' product follows the end-to-end flow.
    Bottlenecks included (a rank-deficient W_e: the issue-39 defect, kept below as an explicit example)."""
    prob = case.draw(problems())
    depth = case.draw(st.integers(2, 4))
    layers = case.draw(balanced_starts(prob, depth))
    ts = np.linspace(0.0, 1.5, 7)
    opts = dict(ts=ts, rtol=1e-11, atol=1e-14, max_steps=20_000)
    lf = linflow.gradient_flow(prob, layers, 1.5, **opts)
    assume(lf.ok)
    for state in ("dense", "root"):
        ef = linflow.end_to_end_flow(prob, layers, None, 1.5, state=state, form="general", **opts)
        assert ef.ok, ef.message
        # p < 2: where a residual crosses 0 the field is only Hoelder continuous (exponent p - 1), and the solvers'
        # error estimates are less sharp there: 2e-8 at rtol 1e-11 found by the long profile (p = 1.5, d = k = 1,
        # kept below). The issue-39 defect it must catch was 1e-7 to 1e-5.
        assert rel_gap(lf.end_to_end, ef.end_to_end) < (1e-8 if prob.p >= 2 else 5e-8), state
        if state == "dense":  # the steps are those of a smooth problem, comparable to the layer flow's
            assert int(ef.stats["num_steps"]) <= 4 * int(lf.stats["num_steps"]) + 20


@pytest.mark.slow
def test_theorem1_where_a_residual_crosses_zero_with_p_1_5():
    """The long profile's example (d = k = 1, width 2, p = 1.5): the flows agree to 2e-8, not 1e-10, at rtol 1e-11."""
    prob = linflow.Problem(np.array([[-0.95023245], [0.04366059], [2.52725509]]),
                           np.array([[1.47129296], [1.2169789], [1.59871014]]), p=1.5)
    layers = (np.array([[-0.14856044], [0.98890333]]), np.array([[-0.14856044, 0.98890333]]))
    ts = np.linspace(0.0, 1.5, 7)
    lf = linflow.gradient_flow(prob, layers, 1.5, ts=ts, rtol=1e-11, atol=1e-14)
    for state in ("dense", "root"):
        ef = linflow.end_to_end_flow(prob, layers, None, 1.5, ts=ts, rtol=1e-11, atol=1e-14, state=state,
                                     form="general")
        assert rel_gap(lf.end_to_end, ef.end_to_end) < 5e-8, state


def test_theorem1_on_the_issue_39_bottleneck_to_1e_9_at_rtol_1e_11():
    """The configuration of issue 39 at its tolerances: 1.3e-6 and 559 steps (layer flow 135) before the fix."""
    rng = np.random.default_rng(39)
    prob = linflow.Problem(rng.standard_normal((6, 2)), rng.standard_normal((6, 2)), p=1.5, weight_decay=0.05)
    layers = init.balanced((2, 2, 1, 2), 0.7, seed=0)
    ts = np.linspace(0.0, 2.0, 21)
    lf = linflow.gradient_flow(prob, layers, 2.0, ts=ts, rtol=1e-11, atol=1e-20)
    ef = linflow.end_to_end_flow(prob, layers, None, 2.0, ts=ts, rtol=1e-11, atol=1e-20)
    s = np.linalg.svd(np.asarray(lf.end_to_end[-1]), compute_uv=False)
    assert s[1] < 1e-15 * s[0]  # the exact flow keeps W_e at rank 1
    assert rel_gap(lf.end_to_end, ef.end_to_end) < 1e-9
    assert int(ef.stats["num_steps"]) < 2 * int(lf.stats["num_steps"])
    W0 = np.asarray(linflow.end_to_end(layers))  # the same through solve with the field built by hand
    direct = linflow.solve(EndToEndFlow(prob, 3), W0, 2.0, ts=ts, rtol=1e-11, atol=1e-20)
    assert rel_gap(lf.end_to_end, direct.end_to_end) < 1e-9


@prop(10)
@given(st.integers(1, 4), st.integers(2, 5), st.floats(1.0, 4.0), st.floats(-3, 1), st.integers(0, 2**16))
def test_claim2_is_theorem1_for_one_output(d, depth, p, log_scale, seed):
    """ACH18 Claim 2, docs/math.md (3.2): for k = 1 the O(d) form equals the general one."""
    prob = data(seed, 6, d, 1, p, 0.1)
    W = 10.0 ** log_scale * np.random.default_rng(seed + 1).standard_normal((1, d))
    np.testing.assert_allclose(fields.claim2_field(prob, W, depth), fields.end_to_end_field(prob, W, depth),
                               rtol=1e-9, atol=1e-12 * np.abs(W).max())


# ---- conservation and descent ---------------------------------------------------------------------------------------

@prop(2)
@given(st.data())
def test_layer_flow_conserves_the_imbalance_and_lowers_the_loss(case):
    """docs/math.md (2.5): without weight decay the layer flow conserves every D_j exactly; the loss of every flow
    (the network's objective, weight decay included) never increases."""
    prob = case.draw(problems(p=None, weight_decay=0.0))
    depth = case.draw(st.integers(1, 5))
    kind = case.draw(st.sampled_from(["near_zero", "random", "balanced"]))
    dims = (prob.d, *case.draw(widths(depth)), prob.k)
    scale = 10.0 ** case.draw(st.floats(-2.0, 0.0))
    seed = case.draw(st.integers(0, 2**16))
    layers = (init.balanced(dims, scale, seed=seed) if kind == "balanced" else
              init.near_zero(dims, scale, seed=seed) if kind == "near_zero" else
              tuple(w * 10 * scale for w in init.near_zero(dims, 1.0, seed=seed)))
    run = linflow.gradient_flow(prob, layers, 1.0, n_save=21, rtol=1e-10, atol=1e-13, max_steps=20_000)
    # a stiff start (the long profile: depth 5, weights of size 10, L = 2e8) may use the step budget before t = 1:
    # said as max_steps; the laws hold on every row reached
    assert run.status in ("ok", "max_steps"), run.message
    run = run.reached()
    D0 = [np.asarray(d) for d in init.balancedness(layers)]
    D1 = [np.asarray(d) for d in init.balancedness(tuple(w[-1] for w in run.layers))]
    size = max([float(np.sum(np.asarray(w) ** 2)) for w in layers] + [1e-300])
    for a, b in zip(D0, D1):
        assert np.abs(a - b).max() <= 1e-7 * max(size, np.abs(a).max())
    loss = np.asarray(run.loss)
    assert np.all(np.diff(loss) <= 1e-9 * max(loss[0], 1e-12))


@pytest.mark.slow
@prop(2)
@given(st.data())
def test_the_regularized_objective_never_increases_along_both_flows(case):
    """The layer flow is the gradient flow of L^N + (lambda / 2) sum_j ||W_j||_F^2; from a balanced start the
    end-to-end flow moves W_e as it does, so L^1(W_e) + (lambda N / 2) tr[(W_e^T W_e)^(1/N)] never increases."""
    prob = case.draw(problems(weight_decay=None))
    depth = case.draw(st.integers(2, 4))
    layers = case.draw(balanced_starts(prob, depth))
    lam = float(prob.weight_decay)
    for run in (linflow.gradient_flow(prob, layers, 1.0, n_save=21, rtol=1e-10, atol=1e-13),
                linflow.end_to_end_flow(prob, layers, None, 1.0, n_save=21, rtol=1e-10, atol=1e-13)):
        assert run.ok, run.message
        W = np.asarray(run.end_to_end)
        s = np.linalg.svd(W, compute_uv=False)
        objective = np.asarray(run.loss) + 0.5 * lam * depth * np.sum(s ** (2.0 / depth), axis=1)
        assert np.all(np.diff(objective) <= 1e-8 * max(objective[0], 1e-12)), run.kind


# ---- discrete against continuous -----------------------------------------------------------------------------------

@prop(3)
@given(st.data())
def test_one_euler_step_of_the_layer_flow_is_one_gd_step(case):
    """docs/math.md (2.1) and (2.3): the Euler method with step eta on the layer flow is gradient descent."""
    prob = case.draw(problems())
    depth = case.draw(st.integers(1, 5))
    dims = (prob.d, *case.draw(widths(depth)), prob.k)
    layers = init.near_zero(dims, 10.0 ** case.draw(st.floats(-2.0, 0.3)), seed=case.draw(st.integers(0, 99)))
    eta = 10.0 ** case.draw(st.floats(-3.0, -1.0))
    gd = linflow.gradient_descent(prob, layers, eta, 1)
    euler = linflow.solve(LayerFlow(prob), layers, eta, ts=np.array([0.0, eta]), solver="euler", dt0=eta)
    for a, b in zip(gd.layers, euler.layers):
        np.testing.assert_allclose(np.asarray(b)[-1], np.asarray(a)[-1], rtol=1e-12, atol=1e-15)


@pytest.mark.slow
@prop(1)
@given(st.data())
def test_gd_converges_to_the_flow_at_order_1_and_to_the_modified_flow_at_order_2(case):
    """docs/math.md (5.1)-(5.2): on a fixed horizon GD is O(eta) from the flow and O(eta^2) from the first-order
    modified flow; the order is read from eta and eta / 2 where the error is resolved (far above the solver's)."""
    prob = case.draw(problems(p=2.0, weight_decay=0.0))
    depth = case.draw(st.integers(2, 3))
    layers = case.draw(balanced_starts(prob, depth, low=-0.5, high=0.2))
    T, etas = 0.5, (0.02, 0.01)
    errors = {"flow": [], "modified": []}
    for eta in etas:
        steps = int(round(T / eta))
        gd = np.asarray(linflow.gradient_descent(prob, layers, eta, steps, save_every=steps).end_to_end)[-1]
        flow = linflow.gradient_flow(prob, layers, T, ts=np.array([0.0, T]), rtol=1e-12, atol=1e-14)
        mod = linflow.modified_flow(prob, layers, eta, T, order=1, ts=np.array([0.0, T]), rtol=1e-12, atol=1e-14)
        errors["flow"].append(np.linalg.norm(gd - np.asarray(flow.end_to_end)[-1]))
        errors["modified"].append(np.linalg.norm(gd - np.asarray(mod.end_to_end)[-1]))
    assume(min(errors["modified"]) > 1e-9 and errors["flow"][1] > 10 * errors["modified"][1])  # resolved
    order = {k: np.log2(v[0] / v[1]) for k, v in errors.items()}
    assert abs(order["flow"] - 1) < 0.15 and abs(order["modified"] - 2) < 0.3, order


# ---- closed forms ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
@prop(2)
@given(st.integers(1, 4), st.lists(st.floats(0.3, 3.0), min_size=1, max_size=3, unique=True),
       st.floats(-3.0, -0.5), st.integers(0, 99))
def test_both_flows_follow_the_closed_form_for_every_depth(depth, values, log_sigma0, seed):
    """docs/math.md section 4: whitened data and an aligned balanced start; each singular value solves (4.1)."""
    values = sorted(values, reverse=True)
    assume(min(np.diff(values[::-1]), default=1.0) > 0.05)
    prob = linflow.problems.whitened(values, seed=seed)
    sigma0 = 10.0 ** log_sigma0
    ts = np.linspace(0.0, 3.0, 7)
    closed = exact.end_to_end(prob, depth, sigma0, ts)
    layers = init.aligned(prob, depth, sigma0)
    for run in (linflow.gradient_flow(prob, layers, 3.0, ts=ts, rtol=1e-11, atol=1e-14),
                linflow.end_to_end_flow(prob, layers, None, 3.0, ts=ts, rtol=1e-11, atol=1e-14)):
        assert run.ok, run.message
        assert rel_gap(closed, run.end_to_end) < 1e-7, run.kind


# ---- the preconditioner ---------------------------------------------------------------------------------------------

def _power(A, q):
    lam, Q = np.linalg.eigh(0.5 * (A + A.T))
    lam = np.where(lam > A.shape[0] * 1e-15 * max(lam.max(), 0), lam, 0.0)
    return np.eye(len(A)) if q == 0 else (Q * lam ** q) @ Q.T


@prop(10)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**16), st.floats(-2.0, 1.0))
def test_the_preconditioners_action_is_the_explicit_sum_and_its_jvp_finite_differences(k, d, depth, seed, log_scale):
    """ACH18 Theorem 1: P_W(G) = sum_j [W W^T]^((j-1)/N) G [W^T W]^((N-j)/N), here with NumPy's eigh; its
    directional derivative against central differences (W of full rank with separated singular values)."""
    rng = np.random.default_rng(seed)
    W = 10.0 ** log_scale * rng.standard_normal((k, d))
    G, dW = rng.standard_normal((k, d)), rng.standard_normal((k, d))
    s = np.linalg.svd(W, compute_uv=False)
    assume(s.min() > 1e-2 * s.max() and (len(s) < 2 or np.min(np.abs(np.diff(s))) > 1e-2 * s.max()))
    want = sum(_power(W @ W.T, (j - 1) / depth) @ G @ _power(W.T @ W, (depth - j) / depth)
               for j in range(1, depth + 1))
    np.testing.assert_allclose(linalg.apply_preconditioner(W, G, depth), want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
    import jax

    _, tangent = jax.jvp(lambda w: linalg.apply_preconditioner(w, G, depth), (W,), (dW,))
    h = 1e-6 * np.abs(W).max()
    fd = (np.asarray(linalg.apply_preconditioner(W + h * dW, G, depth))
          - np.asarray(linalg.apply_preconditioner(W - h * dW, G, depth))) / (2 * h)
    np.testing.assert_allclose(tangent, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


@prop(10)
@given(st.integers(2, 4), st.integers(2, 4), st.integers(2, 5), st.integers(0, 2**16))
def test_a_known_rank_changes_nothing_on_matrices_of_that_rank(k, d, depth, seed):
    """The rank option (issue 39) only drops rounding: on a matrix of exact rank r the field is the same."""
    rng = np.random.default_rng(seed)
    r = int(rng.integers(1, min(k, d)))
    W = rng.standard_normal((k, r)) @ rng.standard_normal((r, d))
    G = rng.standard_normal((k, d))
    assert linalg.numerical_rank(W) == r
    np.testing.assert_allclose(linalg.apply_preconditioner(W, G, depth, r), linalg.apply_preconditioner(W, G, depth),
                               rtol=1e-9, atol=1e-12 * np.abs(G).max())
    assert EndToEndFlow(data(seed, 5, d, k, 2.0, 0.0), depth, "general").for_start(W).rank == r


# ---- SGD and the SME at their limits -------------------------------------------------------------------------------

@pytest.mark.slow
@prop(2)
@given(st.data())
def test_sgd_with_the_full_batch_is_gd_and_the_noiseless_sme_is_the_flow(case):
    """With B = m drawn without replacement every minibatch is the data: SGD is GD to round-off. Where every sample
    has the same gradient (one sample repeated) the SME's diffusion vanishes and Euler-Maruyama is Euler's method
    on the flow (docs/math.md section 12)."""
    import jax

    prob = case.draw(problems(p=2.0))
    depth = case.draw(st.integers(1, 3))
    dims = (prob.d, *case.draw(widths(depth)), prob.k)
    layers = init.balanced(dims, 10.0 ** case.draw(st.floats(-1.0, 0.2)), seed=case.draw(st.integers(0, 99)))
    eta, steps = 0.05, 10
    gd = linflow.gradient_descent(prob, layers, eta, steps)
    sgd = linflow.sgd(prob, layers, eta, steps, batch=prob.m, key=jax.random.PRNGKey(0), sampling="epoch")
    np.testing.assert_allclose(np.asarray(sgd.end_to_end), np.asarray(gd.end_to_end), rtol=1e-10, atol=1e-13)
    # one sample repeated m times: every per-sample gradient equals the full one, Sigma = 0
    X1, Y1 = np.repeat(np.asarray(prob.X)[:1], 4, axis=0), np.repeat(np.asarray(prob.Y)[:1], 4, axis=0)
    one = linflow.Problem(X1, Y1, p=2.0, weight_decay=float(prob.weight_decay))
    ts = np.linspace(0.0, 0.5, 6)
    sme = linflow.sme(one, layers, eta, 0.5, batch=2, key=jax.random.PRNGKey(1), ts=ts, dt=eta / 10, path="scan")
    euler = linflow.solve(LayerFlow(one), layers, 0.5, ts=ts, solver="euler", dt0=eta / 10)
    np.testing.assert_allclose(np.asarray(sme.end_to_end), np.asarray(euler.end_to_end), rtol=1e-9, atol=1e-12)


# ---- every Trajectory -----------------------------------------------------------------------------------------------

@pytest.mark.slow
@prop(3)
@given(st.data())
def test_every_trajectory_is_finite_and_says_what_happened(case):
    """No array of a Trajectory holds NaN or inf; ``status`` is ``ok`` exactly when every save was reached; the
    rows from ``stop`` on repeat the last reached row, and ``reached()`` ends there."""
    prob = case.draw(problems(p=None, smooth=False))
    depth = case.draw(st.integers(1, 3))
    dims = (prob.d, *case.draw(widths(depth)), prob.k)
    layers = init.balanced(dims, 10.0 ** case.draw(st.floats(-1.0, 1.0)), seed=case.draw(st.integers(0, 99)))
    eta = 10.0 ** case.draw(st.floats(-2.5, 0.5))  # large ones diverge
    runs = [linflow.gradient_descent(prob, layers, eta, 40, save_every=4),
            linflow.end_to_end_descent(prob, layers, None, eta, 40, save_every=4) if depth > 1 else None,
            linflow.gradient_flow(prob, layers, 1.0, n_save=11, max_steps=case.draw(st.sampled_from([8, 2_000])))]
    for run in (r for r in runs if r is not None):
        leaves = [run.ts, run.end_to_end, run.loss] + list(run.layers or ())
        assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves), run.kind
        stop, n = run.n_reached, len(run)
        assert (run.status == "ok") == (stop == n), (run.status, stop, n)
        assert run.status in ("ok", "diverged", "max_steps"), run.status
        cut = run.reached()
        assert len(cut.ts) == stop and np.array_equal(np.asarray(cut.ts), np.asarray(run.ts)[:stop])
        if 0 < stop < n:
            assert np.all(np.asarray(run.end_to_end)[stop:] == np.asarray(run.end_to_end)[stop - 1])
            assert run.message


def test_a_flow_that_fits_the_data_exactly_with_p_below_2_says_where_it_stalled():
    """The long profile's finding: p = 1.5 on two samples in d = 2 (a linear map fits them: L reaches 0 in finite
    time, where dr/dt ~ -|r|^(1/2) is not Lipschitz). The solver may stall there; the run must say so, finite."""
    prob = linflow.Problem(np.array([[0.34558419, 0.82161814], [0.33043708, -1.30315723]]),
                           np.array([[0.90535587], [0.44637457]]), p=1.5)
    layers = tuple(10 * w for w in init.near_zero((2, 1, 1), 1.0, seed=0))
    run = linflow.gradient_flow(prob, layers, 1.0, n_save=21, rtol=1e-10, atol=1e-13, max_steps=20_000)
    assert run.status in ("ok", "max_steps") and np.all(np.isfinite(np.asarray(run.loss)))
    assert run.ok or ("max steps" in run.message and float(run.reached().loss[-1]) < 1e-6 * float(run.loss[0]))


@pytest.mark.parametrize("p", [1.0, 1.109375])
def test_a_flow_that_stalls_at_a_kink_of_the_loss_says_so(p):
    """The long profile's finding: p near 1 on three samples (d = k = 1, depth 2, start W = (-1, -1)) stalls the
    adaptive solver where a residual crosses 0. The run must say so (status and message), finite, never NaN."""
    X = np.array([[0.34558419], [0.82161814], [0.33043708]])
    Y = np.array([[-1.30315723], [0.90535587], [0.44637457]])
    prob = linflow.Problem(X, Y, p=p)
    layers = (np.array([[-1.0]]), np.array([[-1.0]]))
    run = linflow.gradient_flow(prob, layers, 1.0, n_save=21, rtol=1e-10, atol=1e-13, max_steps=5_000)
    assert run.status in ("ok", "max_steps")
    assert all(np.all(np.isfinite(np.asarray(x))) for x in (run.ts, run.end_to_end, run.loss))
    if run.status == "max_steps":
        assert "max steps" in run.message and f"of {len(run)} saves" in run.message
    loss = np.asarray(run.reached().loss)
    assert np.all(np.diff(loss) <= 1e-9 * loss[0])  # what was reached still descends


@pytest.mark.slow
def test_a_stiff_start_is_integrated_and_a_run_cut_at_once_still_holds_its_start():
    """The long profile's finding: from weights (20.4, -25.6, 4.18) (depth 3, d = k = 1, p = 2) Tsit5's first trial
    step overflowed, its error estimate was NaN, and diffrax's controller rejected all 100,000 steps, saving
    nothing (0 of 21 rows, loss NaN). A NaN error now counts as infinite (the step shrinks), and a save at t = 0
    always holds the start. The reference: the same flow by SciPy's Radau."""
    from scipy.integrate import solve_ivp

    X, Y = np.array([[0.12573022], [-0.13210486]]), np.array([[0.64042265], [0.10490012]])
    prob = linflow.Problem(X, Y)
    w0 = np.array([20.40919121, -25.55665031, 4.18098847])
    layers = tuple(np.array([[w]]) for w in w0)
    run = linflow.gradient_flow(prob, layers, 1.0, n_save=21, rtol=1e-10, atol=1e-13)
    assert run.ok, run.message

    def field(t, w):  # -dL/dw_j of L = (1/2) sum_i (x_i w1 w2 w3 - y_i)^2
        g = (X[:, 0] * np.prod(w) - Y[:, 0]) @ X[:, 0]
        return -g * np.array([w[1] * w[2], w[0] * w[2], w[0] * w[1]])

    ref = solve_ivp(field, (0.0, 1.0), w0, method="Radau", t_eval=np.asarray(run.ts), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(run.end_to_end)[:, 0, 0], np.prod(ref.y, axis=0), rtol=1e-6)
    cut = linflow.gradient_flow(prob, layers, 1.0, n_save=21, max_steps=3)
    assert cut.status == "max_steps" and cut.n_reached >= 1 and "of 21 saves" in cut.message
    assert np.all(np.isfinite(np.asarray(cut.loss))) and float(cut.loss[0]) == pytest.approx(float(prob.loss(
        np.array([[np.prod(w0)]]))), rel=1e-12)
