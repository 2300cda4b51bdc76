"""One settings object for the continuous runs (issue 26): :class:`linflow.SolverSettings` is built once and passed down
unchanged; it gives the same numbers as the keywords it replaces, refuses to be given twice, never recompiles for new
tolerances, and every continuous run (the flows, the central flow, the accuracy study's step record) solves through
the same path."""

import numpy as np
import pytest

import linflow
from linflow import init, problems
from linflow.core.settings import SolverSettings
from linflow.studies.accuracy import step_sizes
from linflow.studies import overview
from linflow.studies.comparison import side_by_side
from linflow.studies.sweeps import run_point
from linflow.studies.sweeps.config import defaults

from conftest import traces


PROB = problems.whitened([1.5, 0.5])
LAYERS = init.balanced((2, 2, 2), 0.3)


def test_defaults_are_the_documented_ones():
    s = SolverSettings()
    assert s.name == "tsit5" and s.max_steps == 100_000 and s.dt0 is None
    assert (float(s.rtol), float(s.atol)) == (1e-8, 1e-10)
    assert SolverSettings("euler", dt0=0.1).tolerances == (None, None)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rtol=0.0), "rtol must be > 0"),
    (dict(atol=-1e-3), "atol must be > 0"),
    (dict(solver="rk4"), "solver must be one of"),
    (dict(solver="heun"), "takes fixed steps: pass dt0"),
    (dict(max_steps=0), "max_steps must be >= 1"),
    (dict(rtol=1e-5, stepsize_controller=__import__("diffrax").ConstantStepSize()), "either to the stepsize_controller"),
])
def test_bad_settings_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SolverSettings(**kwargs)


@pytest.mark.slow
def test_settings_give_the_numbers_of_the_keywords():
    s = SolverSettings("dopri5", rtol=1e-9, atol=1e-12, max_steps=5_000)
    by_keywords = linflow.gradient_flow(PROB, LAYERS, 3.0, n_save=7, solver="dopri5", rtol=1e-9, atol=1e-12,
                                        max_steps=5_000)
    by_settings = linflow.gradient_flow(PROB, LAYERS, 3.0, n_save=7, settings=s)
    np.testing.assert_array_equal(by_keywords.end_to_end, by_settings.end_to_end)
    assert by_settings.solver == "dopri5" and int(by_settings.stats["num_steps"]) == int(by_keywords.stats["num_steps"])
    a = side_by_side(PROB, LAYERS, [0.05], 1.0, points=11, solver="dopri5", rtol=1e-9, atol=1e-12)
    b = side_by_side(PROB, LAYERS, [0.05], 1.0, points=11, settings=SolverSettings("dopri5", rtol=1e-9, atol=1e-12))
    assert a.identical(b)
    assert (b.attrs["solver"], b.attrs["rtol"], b.attrs["atol"]) == ("dopri5", 1e-9, 1e-12)


@pytest.mark.parametrize("run", ["flow", "central", "compare", "overview"])
def test_settings_and_keywords_together_are_refused(run):
    s = SolverSettings(rtol=1e-9)
    call = {
        "flow": lambda: linflow.gradient_flow(PROB, LAYERS, 1.0, settings=s, rtol=1e-6),
        "central": lambda: linflow.central_flow(PROB, LAYERS, 0.5, 1.0, settings=s, solver="dopri5"),
        "compare": lambda: linflow.compare(PROB, LAYERS, [0.05], 1.0, points=11, settings=s, max_steps=10),
        "overview": lambda: overview.overview(PROB, LAYERS, [0.05], 1.0, points=11, settings=s, atol=1e-3),
    }[run]
    with pytest.raises(ValueError, match="either in settings or as keywords, not both"):
        call()
    with pytest.raises(TypeError, match="settings must be a linflow.SolverSettings"):
        linflow.gradient_flow(PROB, LAYERS, 1.0, settings={"rtol": 1e-9})


def test_new_tolerances_in_settings_never_recompile():
    linflow.gradient_flow(PROB, LAYERS, 1.0, n_save=5, settings=SolverSettings(rtol=1e-6, atol=1e-9))
    with traces() as traced:
        linflow.gradient_flow(PROB, LAYERS, 1.0, n_save=5, settings=SolverSettings(rtol=1e-9, atol=1e-13))
        linflow.gradient_flow(PROB, LAYERS, 1.0, n_save=5)  # the defaults are arrays too: the same program
    assert "_solve" not in traced


@pytest.mark.slow
def test_central_flow_with_settings_matches_keywords():
    a = linflow.central_flow(PROB, LAYERS, 0.72, 20.0, n_save=5, rtol=1e-9, atol=1e-11)
    b = linflow.central_flow(PROB, LAYERS, 0.72, 20.0, n_save=5, settings=SolverSettings(rtol=1e-9, atol=1e-11))
    np.testing.assert_array_equal(a.end_to_end, b.end_to_end)
    np.testing.assert_array_equal(a.extras["sharpness"], b.extras["sharpness"])
    with pytest.raises(ValueError, match="needs an adaptive solver; solver 'euler' takes fixed steps"):
        linflow.central_flow(PROB, LAYERS, 0.72, 20.0, settings=SolverSettings("euler", dt0=0.1))


@pytest.mark.slow
def test_step_record_takes_the_flows_solve_path():
    # the accuracy study's record of every step and the layer flow, solved by the same call with the same settings,
    # take the same steps: same count, and the recorded steps add up to the horizon
    steps = step_sizes(PROB, LAYERS, 6.0, rtol=1e-7, atol=1e-10, max_steps=2_000)
    flow = linflow.gradient_flow(PROB, LAYERS, 6.0, n_save=3, rtol=1e-7, atol=1e-10, max_steps=2_000)
    assert steps.attrs["status"] == "ok"
    assert steps.sizes["step"] == int(flow.stats["num_accepted_steps"])
    assert steps.dt.sum() == pytest.approx(6.0, rel=1e-12)
    with pytest.raises(ValueError, match="step_sizes needs an adaptive solver"):
        step_sizes(PROB, LAYERS, 6.0, solver="euler")


@pytest.mark.slow
def test_sweep_compare_task_defaults_to_compares_tolerances_and_a_typed_value_wins():
    assert (defaults("compare")["rtol"], defaults("compare")["atol"]) == (1e-10, 1e-12)
    assert (defaults("run")["rtol"], defaults("run")["atol"]) == (1e-8, 1e-10)
    point = dict(problem="whitened", d=2, depth=2, width=2, t1=1.0, points=5, eta_divisors=[1, 2], scale=0.3)
    tight = run_point("compare", point)
    loose = run_point("compare", point | {"rtol": 1e-4, "atol": 1e-6})
    assert tight["status"] == loose["status"] == "ok", (tight, loose)
    assert tight["results"] != loose["results"]  # the TOML's rtol was used, not clamped to compare's


@pytest.mark.slow
def test_with_newton_gives_an_implicit_solver_newton_stages():
    import diffrax
    import optimistix as optx

    from linflow.core.settings import with_newton

    solver = with_newton("kvaerno5", rtol=1e-6, atol=1e-8)
    assert isinstance(solver, diffrax.Kvaerno5) and isinstance(solver.root_finder, optx.Newton)
    assert SolverSettings(solver).name == "kvaerno5"
    with pytest.raises(ValueError, match="with_newton needs an implicit solver; 'tsit5' is explicit"):
        with_newton("tsit5")
    # the same flow, the same end point, whichever stage solver
    a = linflow.gradient_flow(PROB, LAYERS, 2.0, n_save=3, solver="kvaerno5", rtol=1e-9, atol=1e-11)
    b = linflow.gradient_flow(PROB, LAYERS, 2.0, n_save=3, settings=SolverSettings(solver, rtol=1e-9, atol=1e-11))
    np.testing.assert_allclose(a.end_to_end[-1], b.end_to_end[-1], atol=1e-7)
