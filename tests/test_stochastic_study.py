"""SGD against its continuous models on deep networks (issue 31): the order fit on constructed inputs, the
noise-to-signal ratio against an independent computation, a quick weak-error study whose outcome theory fixes, the
linear-scaling grades and the command line."""

import json

import numpy as np
import pytest
import xarray as xr

import linflow
from linflow.studies import stochastic
from linflow.studies.stochastic import report, scaling


def test_fitted_order_recovers_a_constructed_power_law_and_refuses_what_it_cannot_resolve():
    etas = np.array([0.2, 0.1, 0.05, 0.025])
    fit = stochastic.fitted_order(etas, -3.0 * etas**1.5, 1e-9 * np.ones(4))
    assert fit["order"] == pytest.approx(1.5, abs=1e-9) and fit["ci95"][1] - fit["ci95"][0] < 1e-6
    noisy = stochastic.fitted_order(etas, 2.0 * etas**2 * (1 + 0.05 * np.array([1, -1, 1, -1])), 0.02 * etas**2)
    assert noisy["ci95"][0] < noisy["order"] < noisy["ci95"][1] and abs(noisy["order"] - 2) < 0.15
    unresolved = stochastic.fitted_order(etas, [1e-3, 1e-4, 1e-5, 1e-6], [1e-4, 1e-4, 1e-4, 1e-4])
    assert unresolved["order"] is None and "1 of 4 etas" in unresolved["reason"]
    diverged = stochastic.fitted_order(etas, [np.nan, 1e-2, 5e-3, 2.5e-3], [1e-5] * 4)
    assert diverged["order"] is None and "finite numbers" in diverged["reason"]
    assert report.order_verdict({"order": 1.15, "ci95": [1.0, 1.3]}, 1.0) == "agrees"
    assert report.order_verdict({"order": 1.6, "ci95": [1.5, 1.7]}, 1.0) == "differs"
    assert report.order_verdict({"order": 1.6, "ci95": [0.9, 2.3]}, 1.0) == "inconclusive"
    # first order at small eta, a cubic term taking over at large eta: the fit is steeper, the local orders say why
    pre = stochastic.fitted_order(etas, etas + 40 * etas**3, 1e-9 * np.ones(4))
    assert pre["local_orders"][0] == pytest.approx(1.0, abs=0.15) and pre["local_orders"][-1] > 1.8
    assert report.order_verdict(pre, 1.0) == "not asymptotic"


def test_noise_to_signal_ratio_of_linear_regression():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 3))
    y = X @ np.array([1.0, -1.0, 0.5]) + 0.3 * rng.standard_normal(20)
    w = np.array([0.2, 0.4, -0.1])
    g_i = X * (X @ w - y)[:, None]
    g = g_i.mean(0)
    tr_sigma = np.sum((g_i - g) ** 2) / 20
    for sampling, f in (("replacement", 1.0), ("batch", (20 - 5) / 19)):
        got = float(scaling.noise_to_signal(linflow.Problem(X, y), (w[None],), 5, sampling))
        assert got == pytest.approx(f * tr_sigma / (5 * g @ g), rel=1e-10)


@pytest.mark.parametrize("p", [2.0, 4.0])
def test_sigma_trace_of_a_deep_network_is_the_explicit_factors(p):
    from linflow.core import sme

    prob = linflow.problems.synthetic(m=25, d=4, p=p, seed=2)
    layers = linflow.init.balanced((4, 3, 2, 1), 0.8, seed=3)
    D = np.asarray(sme.noise_factor(prob, layers, 1, "replacement"))  # D D^T = Sigma at B = 1
    assert float(scaling.sigma_trace(prob, layers)) == pytest.approx(np.sum(D * D), rel=1e-10)


def _deep_problem():
    prob = linflow.problems.synthetic(m=32, d=4, noise=0.5, scale_range=2.0, seed=1)
    return prob, linflow.init.balanced((4, 4, 4, 1), 0.7, seed=0)


@pytest.mark.slow
def test_weak_errors_on_a_deep_network_gradient_flow_is_first_order_and_the_sme_closes_its_gap():
    """The gradient flow misses SGD's noise and step, both O(eta): its weak error on E L fits order 1 (within 0.3);
    the first-order SME carries the noise, so its error at the largest eta is under a third of the flow's."""
    prob, layers = _deep_problem()
    ds = stochastic.weak_errors(prob, layers, [0.1, 0.05, 0.025], 2.0, batch=2, paths=3000, points=3,
                                methods=("gf", "sme1"), seed=1)
    assert set(ds.model.values) == {"sgd", "gf", "sme1"} and int(ds.not_ok.sum()) == 0
    rows = {(r["method"], r["observable"]): r for r in stochastic.orders(ds)}
    gf = rows[("gf", "loss")]
    assert gf["order"] is not None and abs(gf["order"] - 1) < 0.3, gf
    last = ds.time.values[-1]
    err = ds.weak_error.sel(observable="loss", time=last, eta=0.1)
    assert abs(float(err.sel(model="sme1"))) < abs(float(err.sel(model="gf"))) / 3
    assert float(err.sel(model="gf")) < 0  # SGD's noise and step raise the loss above the flow's at this horizon
    text = stochastic.summary_text(stochastic.summary(ds))
    assert "nan" not in text.lower() and "agrees" in text


def test_a_diverged_ensemble_disqualifies_its_entry():
    prob, layers = _deep_problem()
    with pytest.raises(ValueError, match="points must be at least 2"):
        stochastic.save_times(1.0, 1, [0.1])
    with pytest.raises(ValueError, match="whole multiples of every step"):
        stochastic.save_times(1.0, 3, [0.3])
    with pytest.raises(ValueError, match="shorter than the step 4"):
        stochastic.save_times(1.0, 2, [4.0])
    ds = stochastic.weak_errors(prob, layers, [3.0], 30.0, batch=1, paths=40, points=2, methods=("gf", "svag"))
    assert int(ds.not_ok.sel(model="sgd", eta=3.0)) > 0
    assert np.isnan(float(ds["mean"].sel(model="sgd", eta=3.0, observable="loss", time=30.0)))
    s = stochastic.summary(ds)
    assert any("sgd at eta = 3" in x for x in s["not_ok"])
    from linflow import plot

    fig = plot.weak_error_orders(ds)  # every entry disqualified: the figure says so instead of failing
    assert "no finite weak error" in " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "nan" not in json.dumps(s).lower()


def _scaling_dataset(losses, ses, gf_loss, nsr):
    ks = [1, 2, 4]
    mean = np.zeros((5, 2, 2))
    se = np.zeros((5, 2, 2))
    mean[:, 0, -1] = [*losses, losses[0], gf_loss]
    se[:, 0, -1] = [*ses, ses[0], 0.0]
    return xr.Dataset({"mean": (("run", "observable", "time"), mean), "se": (("run", "observable", "time"), se),
                       "not_ok": (("run",), np.zeros(5, int)), "nsr": (("nsr_path", "time"), nsr)},
                      coords={"run": ["sgd_k1", "sgd_k2", "sgd_k4", "sme1", "gf"], "k": (("run",), ks + [0, 0]),
                              "observable": ["loss", "norm"], "time": [0.0, 1.0]},
                      attrs={"eta": 0.05, "batch": 4})


def test_linear_scaling_grades_follow_their_stated_rule():
    # base excess over the flow 0.1: gaps within 0.02 hold; a gap of 0.05 at 3 standard errors 0.001 breaks
    s = scaling.scaling_summary(_scaling_dataset([0.6, 0.615, 0.65], [1e-3] * 3, 0.5, np.array([[5.0, 3.0], [5.0, 2.0]])))
    assert [r["holds"] for r in s["rows"]] == [True, True, False] and s["measured_break_k"] == 4
    assert s["predicted_break_k"] == pytest.approx(2.5)  # the smaller of the medians over time, 5 and 2.5
    assert s["predicted_first_break"] == 4
    noisy = scaling.scaling_summary(_scaling_dataset([0.6, 0.615, 0.65], [0.02] * 3, 0.5, np.ones((2, 2))))
    assert all(r["holds"] for r in noisy["rows"]) and noisy["measured_break_k"] == "holds up to k = 4"
    # a gap in mid-run that closes by the horizon still breaks the rule, at the time it is worst
    ds = _scaling_dataset([0.6, 0.605, 0.61], [1e-3] * 3, 0.5, np.ones((2, 2)))
    ds["mean"][1, 0, 0] = 0.2  # k = 2 at t = 0: 0.2 above the base run (141 standard errors, twice the excess)
    ds["se"][:, 0, 0] = 1e-3
    mid = scaling.scaling_summary(ds)
    assert mid["measured_break_k"] == 2 and mid["rows"][1]["time"] == 0.0 and mid["rows"][1]["gap"] == pytest.approx(0.2)


@pytest.mark.slow
def test_the_sgd_command_writes_its_files(tmp_path, capsys):
    from linflow.cli import main

    out = tmp_path / "o"
    assert main(["sgd", "--quick", "--m", "40", "--d", "3", "--paths", "40", "--etas", "0.1,0.05", "--ks", "1,2",
                 "--t1", "0.4", "--models", "gf,sme2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fitted weak orders" in text and "linear scaling rule" in text
    names = {p.name for p in out.iterdir()}
    assert {"weak_errors.nc", "weak_error_orders.png", "ensemble_means.png", "linear_scaling.nc", "linear_scaling.png",
            "sgd_summary.json"} <= names
    summary = json.loads((out / "sgd_summary.json").read_text())
    assert summary["paths"] == 40 and "nan" not in json.dumps(summary).lower()
    with pytest.raises(SystemExit):
        main(["sgd", "--quick", "--ks", "2,4", "--out", str(out)])


@pytest.mark.slow
def test_the_sgd_sweep_task_records_the_weak_errors_and_fails_a_diverged_point(tmp_path):
    from linflow import sweeps

    fixed = {"m": 24, "d": 3, "depth": 2, "width": 2, "paths": 200, "batch": 2, "t1": 20.0}
    ds = sweeps.sweep({"eta": [0.1, 5.0]}, "sgd", tmp_path / "s", fixed=fixed)
    ok = ds.sel(eta=0.1)
    assert str(ok.status.values) == "ok"
    # the first-order SME's weak error is far smaller than the flow's, and within a few of its standard errors
    assert abs(float(ok.sme1_error)) < max(abs(float(ok.gf_error)), 4 * float(ok.sme1_error_se))
    bad = ds.sel(eta=5.0)
    assert str(bad.status.values) == "failed" and "paths left the finite numbers" in str(bad.reason.values)
