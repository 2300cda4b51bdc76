import numpy as np
import pytest

import linflow
from linflow import accuracy, init, problems


@pytest.fixture(scope="module")
def exact_wp():
    prob, layers, t1 = accuracy.case("exact")
    return accuracy.work_precision(prob, layers, t1, solvers=("bosh3", "tsit5", "dopri5", "dopri8", "kvaerno5"),
                                   scipy_solvers=("RK45", "DOP853", "LSODA", "Radau"), tolerances=(5, 7, 9, 11),
                                   repeats=1)


@pytest.mark.slow
def test_fixed_step_methods_converge_at_their_order():
    prob, layers, t1 = accuracy.case("exact")
    steps = [t1 / 200, t1 / 400, t1 / 800]
    ds = accuracy.work_precision(prob, layers, t1, solvers=("euler", "heun", "midpoint", "ralston"), scipy_solvers=(),
                                 tolerances=(1, 2, 3), fixed_steps=steps, repeats=1)
    for name, order in (("euler", 1), ("heun", 2), ("midpoint", 2), ("ralston", 2)):
        err = ds.final_error.sel(solver=name).values
        observed = np.polyfit(np.log(steps), np.log(err), 1)[0]
        assert observed == pytest.approx(order, abs=0.2), name
        np.testing.assert_array_equal(ds.nfev.sel(solver=name).values,
                                      [linflow.SOLVERS[name].evals_per_step * t1 / h for h in steps])


@pytest.mark.slow
def test_adaptive_errors_fall_as_the_tolerance_tightens(exact_wp):
    for name in ("bosh3", "tsit5", "dopri5", "dopri8", "kvaerno5", "scipy_RK45", "scipy_DOP853", "scipy_LSODA",
                 "scipy_Radau"):
        err = exact_wp.rms_error.sel(solver=name).values
        assert np.all(np.isfinite(err)), name
        assert np.all(err[2:] < err[:-2]), (name, err)  # two decades tighter is always more accurate
        assert err[-1] < 1e-8, name  # all reach the exact solution, the SciPy peers included


@pytest.mark.slow
def test_higher_order_needs_fewer_evaluations_at_tight_tolerance(exact_wp):
    tight = {name: float(exact_wp.nfev.sel(solver=name).values[-1]) for name in ("dopri8", "tsit5", "bosh3")}
    assert tight["dopri8"] < tight["tsit5"] < tight["bosh3"]


@pytest.mark.slow
def test_counted_evaluations_of_the_implicit_solver(exact_wp):
    nfev = exact_wp.nfev.sel(solver="kvaerno5").values
    steps = exact_wp.steps.sel(solver="kvaerno5").values
    assert np.all(nfev >= steps) and np.all(np.diff(nfev) > 0)


@pytest.mark.slow
def test_dataset_layout_and_reference(exact_wp):
    assert exact_wp.sizes == {"solver": 9, "tolerance": 4}
    assert exact_wp.attrs["reference"].startswith("exact") and exact_wp.attrs["reference_ok"] == 1
    assert np.all(exact_wp.wall_time.values > 0)
    assert set(np.unique(exact_wp.status.values)) == {"ok"}
    np.testing.assert_allclose(exact_wp.rtol.sel(solver="tsit5").values, [1e-5, 1e-7, 1e-9, 1e-11])
    np.testing.assert_allclose(exact_wp.atol.sel(solver="tsit5").values, [1e-8, 1e-10, 1e-12, 1e-14])


def test_numerical_reference_is_checked():
    prob = problems.synthetic(m=200, d=4, p=4)
    layers = init.balanced((4, 3, 1), 0.5)
    ds = accuracy.work_precision(prob, layers, 3.0, solvers=("tsit5",), scipy_solvers=("RK45",), tolerances=(4, 6),
                                 repeats=1)
    assert ds.attrs["reference"].startswith("dopri8")
    assert 0 < ds.attrs["reference_error_estimate"] < 1e-10
    assert ds.attrs["reference_ok"] == 1
    assert np.all(ds.rms_error.values > 100 * ds.attrs["reference_error_estimate"])


def test_end_to_end_flow_work_precision():
    prob, layers, t1 = accuracy.case("exact")
    ds = accuracy.work_precision(prob, layers, t1, flow="end_to_end", solvers=("tsit5",), scipy_solvers=("DOP853",),
                                 tolerances=(6, 10), repeats=1)
    assert ds.attrs["reference"].startswith("exact")
    assert np.all(ds.rms_error.values[:, -1] < 1e-8)


def test_stability_limited_steps():
    # long horizon: the step settles near 3.5 / sharpness, so the step count grows like t1 * sharpness
    prob, layers, _ = accuracy.case("long_horizon")
    ss = accuracy.step_sizes(prob, layers, 200.0)
    prod = (ss.dt * ss.sharpness).values
    late = prod[np.isfinite(prod)][len(prod[np.isfinite(prod)]) // 2: -1]
    assert 3.0 < np.mean(late) < 4.2
    s_late = float(ss.sharpness.values[np.isfinite(ss.sharpness.values)][-1])
    a = linflow.gradient_flow(prob, layers, 200.0, n_save=3, atol=1e-11)
    b = linflow.gradient_flow(prob, layers, 400.0, n_save=3, atol=1e-11)
    extra = b.stats["num_accepted_steps"] - a.stats["num_accepted_steps"]
    assert extra == pytest.approx(200.0 * s_late / 3.5, rel=0.15)


def test_bad_input():
    prob, layers, t1 = accuracy.case("exact")
    with pytest.raises(ValueError, match="solvers must be among"):
        accuracy.work_precision(prob, layers, t1, solvers=("rk4",))
    with pytest.raises(ValueError, match="scipy_solvers must be solve_ivp methods"):
        accuracy.work_precision(prob, layers, t1, scipy_solvers=("Euler",))
    with pytest.raises(ValueError, match="reference='exact' needs"):
        accuracy.work_precision(problems.synthetic(m=50, d=3), init.balanced((3, 2, 1), 0.3), 1.0, reference="exact")
    with pytest.raises(ValueError, match="case must be one of"):
        accuracy.case("nope")


def test_table_says_in_words_why_a_solve_has_no_error():
    import re

    import linflow
    from linflow import accuracy

    prob, layers, t1 = accuracy.case("exact")
    wp = linflow.work_precision(prob, layers, t1, solvers=("tsit5",), scipy_solvers=(), tolerances=(4,), repeats=1,
                                max_steps=20)
    text = accuracy.table(wp)
    assert str(wp.status.values[0, 0]) == "max_steps" and "max_steps" in text.splitlines()[2]
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
