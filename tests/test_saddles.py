"""Learning from a small start (issue 27, part 2-3): escape times of both flows against a quadrature reference written
from the mode ODE, the root state of the end-to-end flow, the scaling exponents, plateaus, effective rank, and GD's
shifted escapes."""

import json

import jax
import numpy as np
import pytest
from scipy import integrate

import linflow
from linflow import init, problems
from linflow.core import fields, linalg
from linflow.core.passages import first_passages
from linflow.studies import saddles


def quadrature_time(sigma, s, alpha, N):
    """t(sigma) from sigma(0) = alpha under sigma' = N sigma^(2-2/N) (s - sigma), by quadrature in u = ln sigma."""
    f = lambda u: 1.0 / (N * np.exp(u * (1 - 2 / N)) * (s - np.exp(u)))  # noqa: E731
    return integrate.quad(f, np.log(alpha), np.log(sigma), epsabs=0, epsrel=1e-13, limit=500)[0]


@pytest.mark.slow
@pytest.mark.parametrize("N, alpha", [(2, 1e-3), (2, 1e-10), (3, 1e-6), (3, 1e-10), (4, 1e-6), (4, 1e-10)])
def test_escape_times_of_both_flows_equal_the_mode_ode(N, alpha):
    s = np.array([1.0, 0.5])
    prob = problems.whitened(s, seed=1)
    layers = init.aligned(prob, N, alpha)
    reference = np.array([quadrature_time(si / 2, si, alpha, N) for si in s])
    for flow in ("layers", "end_to_end"):
        out = saddles.escape_times(prob, layers, 1.2 * reference[-1], flow=flow)
        assert out["status"] == "ok", out["message"]
        np.testing.assert_allclose(out["times"], reference, rtol=1e-6, err_msg=flow)


def test_the_dense_end_to_end_state_misses_small_starts_and_the_root_state_does_not():
    # why the root state exists: from alpha = 1e-10 the dense W_e's entries sit below the solver's absolute tolerance
    # (and later a weak mode at the rounding level of the strong ones); the root state's are alpha^(1/N)
    s = np.array([3.0, 1.0, 0.3])
    prob = problems.whitened(s)
    W0 = linflow.end_to_end(init.aligned(prob, 2, 1e-10))
    reference = np.array([quadrature_time(x / 2, x, 1e-10, 2) for x in s])
    dense = first_passages(fields.EndToEndFlow(prob, 2), W0, s / 2, 1.2 * reference[-1])
    root_field = fields.EndToEndFlow(prob, 2, state="root")
    root = first_passages(root_field, root_field.start(W0), s / 2, 1.2 * reference[-1])
    np.testing.assert_allclose(root["times"], reference, rtol=1e-6)
    assert not np.all(np.abs(dense["times"] / reference - 1) < 1e-5)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (4, 2)])
@pytest.mark.parametrize("N", [2, 3, 4])
def test_root_state_moves_W_e_by_theorem_1(shape, N, rng):
    # d/dt root_power(Theta) along root_field is the end-to-end field at W_e, for square and rectangular Theta
    k, d = shape
    prob = linflow.Problem(rng.standard_normal((20, d)), rng.standard_normal((20, k)), p=3.0, weight_decay=0.1)
    Theta = rng.standard_normal(shape)
    W = linalg.root_power(Theta, N)
    _, dW = jax.jvp(lambda t: linalg.root_power(t, N), (Theta,), (fields.root_field(prob, Theta, N),))
    np.testing.assert_allclose(dW, fields.end_to_end_field(prob, W, N), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(linalg.matrix_root(W, N), Theta, atol=1e-12)
    # a rank-deficient Theta stays so: no velocity leaves its range on both sides
    Theta_low = np.outer(rng.standard_normal(k), rng.standard_normal(d))
    v = np.asarray(fields.root_field(prob, Theta_low, N))
    _, dW = jax.jvp(lambda t: linalg.root_power(t, N), (Theta_low,), (v,))
    np.testing.assert_allclose(dW, fields.end_to_end_field(prob, linalg.root_power(Theta_low, N), N), atol=1e-10)


def test_root_state_trajectory_equals_the_dense_one_from_a_moderate_start():
    prob = problems.whitened([2.0, 1.0], d=3, k=2, seed=2)
    W0 = linflow.end_to_end(init.balanced((3, 3, 3, 2), 0.7, seed=1))
    settings = linflow.SolverSettings("dopri8", rtol=1e-12, atol=1e-14)
    dense = linflow.end_to_end_flow(prob, W0, 3, 3.0, n_save=7, settings=settings)
    root = linflow.end_to_end_flow(prob, W0, 3, 3.0, n_save=7, state="root", settings=settings)
    np.testing.assert_allclose(root.end_to_end, dense.end_to_end, atol=1e-10)
    with pytest.raises(ValueError, match="state must be one of"):
        linflow.EndToEndFlow(prob, 3, state="sparse")


def test_effective_rank_and_factorize():
    assert float(linalg.effective_rank(np.diag([5.0, 0.0, 0.0]))) == pytest.approx(1.0)
    assert float(linalg.effective_rank(np.eye(3))) == pytest.approx(3.0)
    p = np.array([2.0, 1.0]) / 3
    assert float(linalg.effective_rank(np.diag([2.0, 1.0]))) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert float(linalg.effective_rank(np.zeros((2, 2)))) == 0.0
    W = np.array([[3.0, 1e-9, 0.0], [0.0, 2.0, 1.0]])
    layers = init.factorize(W, 3, seed=4)
    np.testing.assert_allclose(linflow.end_to_end(layers), W, atol=1e-14)
    assert float(linflow.imbalance(layers)) < 1e-14


@pytest.mark.slow  # a solve of seconds: the full command only (the fast tier's 3 minutes)
def test_saddle_to_saddle_study_grades_accuracy_scaling_and_plateaus():
    ds = saddles.saddle_to_saddle((2.0, 0.5), depths=(2, 3), alphas=(1e-4, 1e-6, 1e-8), curve_points=31)
    s = saddles.summary(ds)
    json.dumps(s, allow_nan=False)  # words, never nan or inf
    assert s["accuracy"]["layers"]["passes"] and s["accuracy"]["end_to_end"]["passes"], s["accuracy"]
    assert s["exponents_pass"], s["exponents"]
    for row in s["exponents"]:
        assert abs(row["exponent"] - row["theory"]) <= 0.05
    # plateaus at alpha = 1e-8: the loss sits at sum_{i>j} s_i^2 / 2 (to 1e-3 at depth 3)
    assert max(s["plateaus"]["relative_deviation"][3]) < 1e-3
    # between the escapes the network is rank one: the effective rank at the plateau after mode 1 is near 1
    c = ds.sel(depth=3, alpha=1e-8)
    t_mid = float(c.escape_time_exact.sel(mode=1) + c.escape_time_exact.sel(mode=2)) / 2
    i = int(np.nanargmin(np.abs(c.curve_t.values - t_mid)))
    assert 1.0 <= float(c.curve_effective_rank[i]) < 1.01
    assert float(c.curve_effective_rank[-1]) > 1.5  # both modes learned at the end
    assert s["not_ok"] == []


def test_gd_escapes_shift_at_first_order_and_the_solver_is_cheaper():
    g = saddles.gd_escapes((2.0, 0.5), depth=3, alpha=1e-6, etas=(0.04, 0.02, 0.01), solvers=("tsit5",))
    assert list(g.status.values) == ["ok"] * 3
    np.testing.assert_allclose(g.shift_order.values, 1.0, atol=0.1)  # GD's escapes move O(eta) from the flow's
    assert np.all(np.abs(g.relative_escape_shift.values) < 0.05)
    assert np.all(g.gd_steps.values >= g.flow_escape_time.values[-1] / g.eta.values)  # t = k eta
    assert float(g.cost_ratio.sel(eta=0.01, solver="tsit5")) > 5
    # far past 2 / S (S = N s_1^(2-2/N) = 4 at the end) GD leaves within the horizon, said in words
    bad = saddles.gd_escapes((2.0, 0.5), depth=2, alpha=1e-2, etas=(0.3, 1.5), solvers=())
    assert str(bad.status.sel(eta=0.3).values) == "ok"
    assert str(bad.status.sel(eta=1.5).values).startswith(("diverged at step", "unstable from step"))


def test_root_state_refuses_implicit_solvers_and_bad_study_input():
    prob = problems.whitened([2.0, 1.0])
    with pytest.raises(ValueError, match="needs an explicit solver; solver 'kvaerno5' is implicit"):
        linflow.end_to_end_flow(prob, 0.1 * np.eye(2), 2, 1.0, state="root", solver="kvaerno5")
    with pytest.raises(ValueError, match="distinct and positive"):
        saddles.saddle_to_saddle((1.0, 1.0), depths=(2,), alphas=(1e-3,))
    with pytest.raises(ValueError, match="every alpha in"):
        saddles.saddle_to_saddle((1.0, 0.5), depths=(2,), alphas=(0.5,))
    with pytest.raises(ValueError, match="flow must be one of"):
        saddles.escape_times(prob, init.aligned(prob, 2, 1e-3), 1.0, flow="modified")


@pytest.mark.parametrize("N", [2, 3, 4])
def test_polar_flow_moves_W_e_by_theorem_1(N, rng):
    # Razin & Cohen's 2 x 2 problem in the polar state: d/dt W_e(phi, psi, a, b) along the polar field equals the
    # end-to-end field (Theorem 1) at W_e; the state round-trips; det(W_e) = e^(a + b)
    from linflow.paper import razin_cohen as rc

    W = rng.standard_normal((2, 2))
    W = W if np.linalg.det(W) > 0 else W[::-1]
    y = rc.polar_state(W)
    field = rc.PolarFlow(rc.problem(), N)
    np.testing.assert_allclose(field.end_to_end(y), W, atol=1e-13)
    assert np.exp(y[2] + y[3]) == pytest.approx(np.linalg.det(W), rel=1e-12)
    _, dW = jax.jvp(field.end_to_end, (y,), (field(0.0, y),))
    np.testing.assert_allclose(dW, fields.end_to_end_field(rc.problem(), W, N), rtol=1e-9, atol=1e-12)



def test_gd_from_a_random_start_loses_balancedness_at_first_order():
    # the flow conserves D_j = 0; GD's drift over the same horizon falls like eta
    g = saddles.gd_escapes((2.0, 0.5), depth=3, alpha=1e-6, etas=(0.04, 0.02), solvers=(), start="random")
    assert list(g.status.values) == ["ok", "ok"] and g.attrs["flow_reference"].startswith("the layer flow")
    drift = g.imbalance.values
    assert np.all(drift > 1e-9) and drift[0] / drift[1] == pytest.approx(2.0, rel=0.1)
    np.testing.assert_allclose(g.shift_order.values, 1.0, atol=0.1)


def test_random_start_has_the_targets_determinant_sign():
    from linflow.studies.saddles.flows import start_layers

    prob = problems.whitened((2.0, 0.5), seed=0)
    for seed in range(6):
        W0 = np.asarray(linflow.end_to_end(start_layers(prob, 3, 1e-6, "random", seed)))
        np.testing.assert_allclose(np.linalg.svd(W0, compute_uv=False), 1e-6, rtol=1e-9)
        assert np.linalg.det(W0) * np.linalg.det(np.asarray(prob.target)) > 0


@pytest.mark.slow
def test_linflow_saddles_quick_writes_what_it_says_and_matches_the_quadrature(tmp_path, capsys):
    from linflow import cli
    import xarray as xr

    argv = ["saddles", "--quick", "--values", "2,0.5", "--alphas", "1e-4,1e-6,1e-8", "--gd-etas", "0.04,0.02",
            "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "passes" in text and "FAILS" not in text and "nan" not in text.lower()
    names = {"saddles.nc", "saddles_gd.nc", "saddle_curves.png", "escape_scaling.png", "gd_escape_shift.png",
             "saddles_summary.json"}
    assert names <= {p.name for p in tmp_path.iterdir()}
    summary = json.loads((tmp_path / "saddles_summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert summary["exponents_pass"] and summary["gd"]["runs"]["0.02"]["status"] == "ok"
    ds = xr.load_dataset(tmp_path / "saddles.nc")
    for N in (2, 3):  # the netCDF's escape times against a quadrature of the mode ODE written here
        t = ds.escape_time.sel(start="aligned", flow="end_to_end", depth=N, alpha=1e-8).values
        ref = [quadrature_time(s / 2, s, 1e-8, N) for s in (2.0, 0.5)]
        np.testing.assert_allclose(t, ref, rtol=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--depths", "1,2"], "argument --depths: expected comma-separated integers >= 2, got '1,2'"),
    (["--starts", "random"], "--starts must include 'aligned'"),
    (["--gd-alpha", "-1"], "--gd-alpha"),
    (["--values", "1,1"], "--values must be distinct singular values"),
])
def test_linflow_saddles_names_a_bad_option(tmp_path, capsys, argv, message):
    from linflow import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["saddles", "--quick", *argv, "--out", str(tmp_path)])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_sweep_task_saddles_against_the_quadrature_and_gd_at_first_order(tmp_path):
    from linflow import sweeps

    grid = {"depth": [2, 3], "eta": [0.04, 0.02]}
    ds = sweeps.sweep(grid, "saddles", tmp_path / "store", fixed={"scale": 1e-6, "singular_values": "2,0.5"})
    assert (ds.status.values == "ok").all(), ds.reason.values
    for N in (2, 3):
        for i, s in enumerate((2.0, 0.5), start=1):
            ref = quadrature_time(s / 2, s, 1e-6, N)
            np.testing.assert_allclose(ds[f"escape_{i}"].sel(depth=N).values, ref, rtol=1e-6)
    # GD's escape shift is first order in eta: halving eta halves it (to 10%)
    ratio = ds.gd_relative_shift_1.sel(eta=0.04) / ds.gd_relative_shift_1.sel(eta=0.02)
    np.testing.assert_allclose(ratio.values, 2.0, rtol=0.1)
    rnd = sweeps.sweep({"depth": [3]}, "saddles", tmp_path / "rnd", fixed={"start": "random", "scale": 1e-4,
                                                                            "singular_values": "2,0.5", "eta": 0.02})
    assert str(rnd.status.values[0]) == "ok" and float(rnd.escape_relative_error.values[0]) < 1e-6
    with pytest.raises(ValueError, match="'singular_values' must be distinct positive numbers"):
        sweeps.sweep({"depth": [2]}, "saddles", tmp_path / "bad", fixed={"singular_values": "1,1"})
    with pytest.raises(ValueError, match="'start' must be one of aligned, random"):
        sweeps.sweep({"depth": [2]}, "saddles", tmp_path / "bad2", fixed={"start": "zero"})
    failed = sweeps.sweep({"depth": [1]}, "saddles", tmp_path / "bad3")
    assert "needs depth >= 2" in str(failed.reason.values[0])
