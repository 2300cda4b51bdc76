import json
from pathlib import Path

import numpy as np
import pytest

from linflow import cli, reproduce
from conftest import strict_json

SHARED = next((p / "shared" / "data" / "gas_sensor" for p in Path(__file__).resolve().parents
               if (p / "shared" / "data" / "gas_sensor").is_dir()), None)
DATA = str(SHARED) if SHARED is not None else None


_QUICK = {}


def quick(name):
    """Each quick experiment runs once per session; the tests below check different things of it."""
    if name not in _QUICK:
        _QUICK[name] = reproduce.run(name, data=DATA, quick=True)
    return _QUICK[name]


@pytest.mark.parametrize("name", [n for n in reproduce.EXPERIMENTS if n != "section8"])  # section8: test_section8.py
def test_each_experiment_runs_quick_and_reports(name):
    ds, summary, figs = quick(name)
    assert {"experiment", "paper", "measured", "agrees", "data"} <= set(summary)
    assert isinstance(summary["measured"], str) and summary["measured"]
    assert figs and ds.data_vars
    json.dumps(summary)  # JSON-ready
    if DATA is None and name != "section6":
        assert "SYNTHETIC" in str(summary["data"])


def test_fig2_quantities():
    ds, s, _ = quick("fig2")
    for key in ("l2_depth2", "l2_depth3", "l4_depth2", "l4_depth3"):
        assert set(s[key]["final_loss_by_width"]) == {"1", "4"}
        d = s[key]["max_relative_distance_to_end_to_end_by_width"]
        assert all(np.isfinite(v) and 0 <= v < 1 for v in d.values())
        # width barely matters: GD on widths 1 and 4 is the same distance from the end-to-end rule
        assert d["1"] == pytest.approx(d["4"], rel=0.05)
    assert ds["gd_loss"].dims == ("p", "depth", "width", "iteration")


def test_fig3_reports_grid_and_speedups():
    _, s, _ = quick("fig3")
    assert len(s["eta_grid"]) >= 5
    for p in ("l2", "l4"):
        for N in s["depths"]:
            assert {"eta", "iterations_to_target", "speedup_vs_depth1"} <= set(s[p][f"depth{N}"])
            assert s[p][f"depth{N}"]["eta"] in s["eta_grid"]


def test_theorem2_loop_integrals():
    ds, s, _ = quick("theorem2")  # needs no data: the same with and without it
    c = s["constant_gradient"]
    assert abs(c["N1"]["finest"]) < 1e-12 and abs(c["N2"]["finest"]) < 1e-12
    for N in ("N3", "N4"):
        assert c[N]["finest"] == pytest.approx(c[N]["closed_form"], rel=1e-6)
    # the quadrature converges to the closed form as it is refined
    err = np.abs(ds.constant_gradient.sel(depth=3).values - float(ds.closed_form.sel(depth=3)))
    assert np.all(np.diff(err) < 0)
    assert abs(s["real_problem"]["N1"]["finest"]) < 1e-9  # N = 1: a gradient field for any loss


def test_loop_integral_of_a_gradient_field_is_zero_and_closed_form():
    import jax.numpy as jnp

    # N = 2 and a linear loss: F = grad(||W|| <g, W>), so the loop integral vanishes
    g = jnp.array([[0.3, -1.0, 2.0]])
    u, v = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    f2 = lambda W: reproduce._claim2_direction(W[None], g, 2)[0]  # noqa: E731
    assert abs(reproduce.loop_integral(f2, np.zeros(3), u, v, 2.0, 64)) < 1e-12
    assert reproduce.loop_integral_closed_form(1.0, 1.0, 3) == pytest.approx(2 * 2 * 1 / 7)


def test_section6_with_the_bound():
    _, s, _ = quick("section6")
    l4 = [r for r in s["runs"] if r["p"] == 4.0]
    assert [r["gd_eta_bound_paper"] for r in l4] == [2.0 / r["ratio"] ** 2 for r in l4]
    assert all(r["gd_iterations"] > 0 for r in s["runs"])


def test_cli_reproduce_writes_outputs(tmp_path, capsys):
    assert cli.main(["reproduce", "section6", "--quick", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["section6.json", "section6.nc", "section6.png"]
    assert strict_json(tmp_path / "section6.json")["experiment"] == "section6"
    assert "[section6]" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "fig9", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "fig2", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)])
