"""Past the threshold, the whole map (issue 28): the GFS sharpness against closed forms, GD's attractor and Lyapunov
exponent against exact maps, the period rule, the CLI and the sweep task."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import linflow
from linflow.core.gfs import gfs_limit, gfs_sharpness
from linflow.studies import atlas


def scalar_problem(y=1.0, a=1.0):
    """``L = (a/2) (w_N ... w_1 - y)^2``: one sample ``x = sqrt(a)``, target ``sqrt(a) y``."""
    return linflow.Problem(np.array([[np.sqrt(a)]]), np.array([np.sqrt(a) * y]))


@pytest.mark.slow  # seconds (measured 3.4-7.7 s): the full command only (the fast tier's 3 minutes)
def test_gfs_sharpness_of_uv_equals_its_closed_form_batched():
    rng = np.random.default_rng(0)
    a, y = 1.7, 0.8
    U, V = rng.normal(size=(40, 1, 1)), rng.normal(size=(40, 1, 1))
    U[0], V[0] = 0.0, 0.0  # the saddle at the origin: the flow stays there, a gradient of zero
    s = np.asarray(gfs_sharpness(scalar_problem(y, a), (U[1:], V[1:]), gtol=1e-10))
    c = U[1:, 0, 0] ** 2 - V[1:, 0, 0] ** 2  # conserved by the flow; the limit has u v = y
    np.testing.assert_allclose(s, a * np.sqrt(c ** 2 + 4 * y ** 2), rtol=1e-8)
    one = gfs_sharpness(scalar_problem(y, a), (U[1], V[1]), gtol=1e-10)  # unbatched
    np.testing.assert_allclose(float(one), s[0], rtol=1e-12)
    loose = np.asarray(gfs_sharpness(scalar_problem(y, a), (U[1:], V[1:])))  # the default gtol 1e-8
    np.testing.assert_allclose(loose, a * np.sqrt(c ** 2 + 4 * y ** 2), rtol=1e-6)


def test_gfs_sharpness_of_a_depth_3_scalar_network_against_its_conservation_laws():
    y = 1.3
    w0 = np.array([0.4, -0.7, 0.9])
    c1, c2 = w0[0] ** 2 - w0[1] ** 2, w0[1] ** 2 - w0[2] ** 2  # conserved: w_j^2 - w_(j+1)^2

    def eqs(w):
        return [w[0] ** 2 - w[1] ** 2 - c1, w[1] ** 2 - w[2] ** 2 - c2, w[0] * w[1] * w[2] - y]

    limit = optimize.fsolve(eqs, np.sign(w0) * np.abs(y) ** (1 / 3) + 0.3 * np.sign(w0), xtol=1e-14)
    assert np.allclose(eqs(limit), 0, atol=1e-12)
    g = np.array([limit[1] * limit[2], limit[0] * limit[2], limit[0] * limit[1]])  # H = g g^T at a zero-loss limit
    layers = tuple(np.array([[w]]) for w in w0)
    out = gfs_limit(scalar_problem(y), layers)
    assert out["status"] == "ok"
    np.testing.assert_allclose(np.abs([float(w[0, 0]) for w in out["layers"]]), np.abs(limit), rtol=1e-7)
    np.testing.assert_allclose(float(gfs_sharpness(scalar_problem(y), layers)), g @ g, rtol=1e-7)


def test_gfs_sharpness_says_which_point_did_not_converge():
    prob = scalar_problem()
    start = (np.array([0.3, 1.0])[:, None, None], np.array([0.2, 1.0])[:, None, None])  # the second: a minimum
    with pytest.raises(RuntimeError, match=r"from 1 point\(s\): 0 \(not converged by t1\); raise t1"):
        gfs_sharpness(prob, start, t1=0.01)
    with pytest.raises(ValueError, match="gtol and t1 must be positive"):
        gfs_limit(prob, (np.ones((1, 1)), np.ones((1, 1))), gtol=0.0)


@pytest.mark.slow  # seconds (measured 3.4-7.7 s): the full command only (the fast tier's 3 minutes)
def test_lyapunov_exponent_of_linear_regression_is_log_of_its_contraction():
    """Depth 1: GD is the affine map ``w <- w - eta a (w - y)``; its Lyapunov exponent is ``log|1 - eta a|``."""
    a = 2.0
    prob = scalar_problem(0.7, a)
    ratios = np.array([0.3, 0.6, 0.9, 0.99])  # eta_crit = 2 / a
    ds = atlas.atlas(prob, (np.array([[0.1]]),), ratios=ratios, transient=50, record=400, central_points=0)
    assert float(ds.attrs["eta_crit"]) == pytest.approx(2 / a, rel=1e-10)
    np.testing.assert_allclose(ds.lyapunov.values, np.log(np.abs(1 - ds.eta.values * a)), rtol=1e-9)
    # at 0.99 the contraction 0.98 per step leaves 0.98^450 ~ 1e-4 of the start: not settled, and said so
    assert list(ds.attractor.values) == ["fixed point"] * 3 + ["unsettled"]
    past = atlas.atlas(prob, (np.array([[0.1]]),), ratios=[1.2], transient=10, record=400, central_points=0)
    assert str(past.attractor.values[0]) == "diverged" and int(past.diverged_at.values[0]) > 0
    assert int(past.period.values[0]) == 0 and np.isnan(past.lyapunov.values[0])


@pytest.mark.slow
def test_scalar_uv_map_doubles_its_period_into_chaos():
    prob = scalar_problem()
    w0 = (jnp.array([[0.5]]), jnp.array([[0.3]]))
    ratios = [0.95, 1.1, 1.26, 1.6, 2.05]
    ds = atlas.atlas(prob, w0, ratios=ratios, transient=20_000, record=2_000, central_points=2)
    # eta_crit = 2 / S(phi(w0)) with S = sqrt(c^2 + 4) (c = u0^2 - v0^2 = 0.16)
    assert float(ds.attrs["eta_crit"]) == pytest.approx(2 / np.hypot(0.16, 2.0), rel=1e-7)
    assert list(ds.attractor.values) == ["fixed point", "period 2", "period 4", "chaotic", "diverged"]
    lyap = ds.lyapunov.values
    assert abs(lyap[0]) < 1e-3  # a fixed point on the manifold of minima: one neutral direction
    assert lyap[1] < -1e-3 and lyap[2] < -1e-3 and lyap[3] > 0.1
    # on the period-2 orbit GD's sharpness straddles 2 / eta; the central flow predicts its midpoint
    s = ds.sharpness.sel(eta=ds.eta[1]).values * float(ds.eta[1]) / 2
    assert s.min() < 1 < s.max()
    assert str(ds.central_reason.values[1]) == "predicts GD"
    summary = atlas.summary(ds)
    json.dumps(summary, allow_nan=False)
    assert summary["cascade"]["first_eta_of_period"]["4"] == pytest.approx(float(ds.eta[2]))
    assert "period 4" in atlas.summary_text(summary)


@pytest.mark.parametrize("sequence, period", [
    ([1.0] * 20, 1), ([1.0, 2.0] * 10, 2), ([1.0, 2.0, 3.0] * 10, 3), ([0.1, 0.5, 0.2, 0.9] * 8, 4),
    (list(np.random.default_rng(0).normal(size=80)), 0),
])
def test_period_rule(sequence, period):
    states = np.asarray(sequence)[:, None] * np.array([1.0, -2.0])
    assert atlas.period_of(states) == period
    noisy = states + 1e-9 * np.random.default_rng(1).normal(size=states.shape)  # below the stated tolerance
    assert atlas.period_of(noisy) == period


def test_atlas_rejects_bad_input():
    prob, w0 = scalar_problem(), (jnp.array([[0.5]]), jnp.array([[0.3]]))
    with pytest.raises(ValueError, match="give etas or ratios, not both"):
        atlas.atlas(prob, w0, etas=[0.5], ratios=[1.0])
    with pytest.raises(ValueError, match="etas must be a non-empty list of positive"):
        atlas.atlas(prob, w0, etas=[0.5, -1.0])
    with pytest.raises(ValueError, match="record >= window"):
        atlas.atlas(prob, w0, ratios=[1.0], record=64)


@pytest.mark.slow
def test_linflow_atlas_quick_writes_period_and_lyapunov_over_eta(tmp_path, capsys):
    import xarray as xr

    from linflow import cli

    assert cli.main(["atlas", "--quick", "--points", "25", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "period 2" in text and "nan" not in text.lower()
    ds = xr.load_dataset(tmp_path / "atlas.nc")
    assert {"period", "lyapunov", "attractor"} <= set(ds.data_vars) and ds.period.dims == ("eta",)
    assert ds.sizes["eta"] == 25 and (tmp_path / "bifurcation.png").stat().st_size > 10_000
    s = json.loads((tmp_path / "atlas_summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert s["segments"][0]["attractor"] == "fixed point" and s["segments"][-1]["attractor"] == "diverged"
    with pytest.raises(SystemExit):
        cli.main(["atlas", "--quick", "--ratios", "2,1", "--out", str(tmp_path)])
    assert "--ratios must be two numbers" in capsys.readouterr().err


def test_sweep_task_atlas_is_the_study_point_by_point(tmp_path):
    from linflow import sweeps
    from linflow.core import specs

    fixed = {"problem": "whitened", "d": 1, "depth": 2, "width": 1, "init": "near_zero", "scale": 0.5,
             "transient": 3000, "record": 500}
    ratios = [0.95, 1.1, 1.6, 2.2]
    ds = sweeps.sweep({"eta_ratio": ratios}, "atlas", tmp_path / "s", fixed=fixed)
    prob = specs.problem("whitened", m=500, d=1)
    direct = atlas.atlas(prob, specs.start(prob, 2, [1], "near_zero", 0.5, 0), ratios=ratios, transient=3000,
                         record=500, central_points=0)
    ok = ds.status.values == "ok"
    assert list(ok) == [True, True, True, False] and "diverged at step" in str(ds.reason.values[-1])
    np.testing.assert_array_equal(ds.period.values[ok], direct.period.values[ok])
    np.testing.assert_array_equal(ds.lyapunov.values[ok], direct.lyapunov.values[ok])
    assert list(ds.chaotic.values[ok]) == [0.0, 0.0, 1.0]


def _logistic(rs, transient=20_000, record=20_000, window=128, x0=0.3):
    from linflow.core.attractors import map_orbits

    def step(x, r):
        return r * x * (1 - x)

    return map_orbits(step, jnp.array([x0]), jnp.asarray(rs), jnp.ones(1), transient=transient, record=record,
                      window=window)


def test_period_rule_on_the_logistic_maps_first_doublings():
    """Period 2 from r = 3, period 4 from r = 1 + sqrt(6) = 3.449490 (period 8 from 3.544090)."""
    r2, r4 = 3.0, 1.0 + np.sqrt(6.0)
    rs = [2.9, r2 + 0.02, r4 - 0.01, r4 + 0.01, 3.53]
    out = _logistic(rs, transient=200_000)
    periods = [atlas.period_of(np.asarray(s)) for s in out["states"]]
    assert periods == [1, 2, 2, 4, 4]
    # the fixed point 1 - 1/r below r = 3, and the period-2 orbit's closed form above it
    assert float(out["final"][0, 0]) == pytest.approx(1 - 1 / 2.9, rel=1e-12)
    r = rs[1]
    pair = sorted(((r + 1) + s * np.sqrt((r + 1) * (r - 3))) / (2 * r) for s in (-1, 1))
    np.testing.assert_allclose(sorted(np.asarray(out["states"][1, -2:, 0])), pair, rtol=1e-9)


def test_lyapunov_exponent_of_the_logistic_map():
    """ln 2 at r = 4; ln|2 - r| at the stable fixed point (r < 3); negative on the period-2 orbit."""
    out = _logistic([4.0, 2.5, 2.8, 3.2], transient=1_000, record=200_000, x0=0.1234)
    lyap = np.asarray(out["lyapunov"])
    assert lyap[0] == pytest.approx(np.log(2.0), abs=5e-3)
    np.testing.assert_allclose(lyap[1:3], np.log(np.abs(2 - np.array([2.5, 2.8]))), rtol=1e-3)
    assert lyap[3] < 0
    assert atlas.attractor_of(atlas.period_of(np.asarray(out["states"][0])), lyap[0], -1) == "chaotic"


def test_period_rule_on_a_constructed_period_4_orbit_of_a_rotation():
    """A rotation by pi / 2 of the plane has every orbit of period 4 (and Lyapunov exponent 0)."""
    from linflow.core.attractors import map_orbits

    R = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    out = map_orbits(lambda y, c: c * (R @ y), jnp.array([0.3, -0.7]), jnp.array([1.0, 0.5]), jnp.ones(2),
                     transient=10, record=200, window=128)
    assert atlas.period_of(np.asarray(out["states"][0])) == 4
    assert abs(float(out["lyapunov"][0])) < 1e-12
    assert float(out["lyapunov"][1]) == pytest.approx(np.log(0.5), rel=1e-12)  # a contraction by 1/2


def _cascade(periods, etas=None):
    import xarray as xr

    etas = np.arange(1.0, 1.0 + 0.01 * len(periods), 0.01)[:len(periods)] if etas is None else np.asarray(etas)
    attractor = ["chaotic" if p == 0 else "fixed point" if p == 1 else f"period {p}" for p in periods]
    return xr.Dataset({"period": ("eta", np.asarray(periods)), "attractor": ("eta", attractor)}, coords={"eta": etas})


def test_feigenbaum_ratio_needs_three_consecutive_resolved_stages():
    """Issue 38: period 4 then period 16 (no period 8 on the grid) is no cascade to form a ratio from."""
    from linflow.studies.atlas.report import doublings

    skipped = doublings(_cascade([1, 1, 2, 2, 4, 4, 16, 0]))
    assert skipped["feigenbaum_ratios"] == [] and "period 8 appears on no eta" in skipped["feigenbaum_resolution"]
    etas = [1.0, 1.1, 1.5, 1.6, 1.7, 1.72, 1.74, 1.8]
    full = doublings(_cascade([1, 1, 2, 2, 4, 8, 16, 0], etas))
    # onsets of 2, 4, 8, 16 at 1.5, 1.7, 1.72, 1.74: ratios (1.7 - 1.5) / (1.72 - 1.7) and (1.72 - 1.7) / (1.74 - 1.72)
    np.testing.assert_allclose(full["feigenbaum_ratios"], [10.0, 1.0], rtol=1e-9)
    two = doublings(_cascade([1, 2, 4, 4]))
    assert two["feigenbaum_ratios"] == [] and "fewer than three" in two["feigenbaum_resolution"]
    text = atlas.summary_text({"eta_crit": 1.0, "flow_limit_sharpness": 2.0, "segments": [], "cascade": skipped,
                               "first_diverged_eta": "none", "rules": {"attractor": "r"},
                               "central_flow": {"largest_eta_predicted": "none", "relative_deviation": "n/a"}})
    assert "Feigenbaum ratios: none (the grid does not resolve the cascade" in text and "4.00" not in text
