"""The catapult on the uv model: exact one-step algebra and the regimes at 2 / lambda_0 and 4 / lambda_0."""

import numpy as np
import pytest

import linflow
from linflow import catapult


def test_one_step_follows_the_closed_form_recursion():
    """f' = f - eta r lambda + eta^2 r^2 f and lambda' = lambda - 4 eta r f + eta^2 r^2 lambda (x = 1)."""
    prob, layers = catapult.uv_model(50, y=0.7, seed=3)
    a, b = np.asarray(layers[0])[:, 0], np.asarray(layers[1])[0]
    f, lam, r = b @ a, a @ a + b @ b, b @ a - 0.7
    assert float(catapult.tangent_kernel(prob, layers)) == pytest.approx(lam, rel=1e-12)
    eta = 1.3 / lam
    gd = linflow.gradient_descent(prob, layers, eta, 1)
    f1 = float(np.asarray(gd.end_to_end)[-1, 0, 0])
    lam1 = float(catapult.tangent_kernel(prob, tuple(np.asarray(w)[-1] for w in gd.layers)))
    assert f1 == pytest.approx(f - eta * r * lam + eta**2 * r**2 * f, rel=1e-12)
    assert lam1 == pytest.approx(lam - 4 * eta * r * f + eta**2 * r**2 * lam, rel=1e-12)


def test_regimes_match_the_thresholds():
    prob, layers = catapult.uv_model(200, seed=0)
    grid = np.array([0.5, 1.0, 1.5, 1.9, 2.1, 2.5, 3.0, 3.5, 3.9, 4.1, 4.5])
    ds = catapult.catapult_sweep(prob, layers, grid, steps=3000)
    expected = np.where(grid < 2, "lazy", np.where(grid < 4, "catapult", "diverged"))
    np.testing.assert_array_equal(ds["regime"].values, expected)
    cat = ds["regime"].values == "catapult"
    assert np.all(ds["max_loss_ratio"].values[cat] > 1)                   # the loss first grows
    assert np.all(ds["final_eta_lambda"].values[cat] < 2)                 # and ends where eta * lambda < 2
    lazy = ds["regime"].values == "lazy"
    assert np.all(np.abs(ds["final_kernel"].values[lazy] / ds.attrs["lambda0"] - 1) < 0.05)  # kernel nearly frozen
    t = catapult.thresholds(ds)
    assert t["lazy_max"] == 1.9 and t["catapult_min"] == 2.1 and t["diverged_min"] == 4.1
    assert "catapult: the loss rose" in ds.attrs["rule"]


def test_bad_grid_is_refused():
    prob, layers = catapult.uv_model(10)
    with pytest.raises(ValueError, match="eta_lambda0 must be"):
        catapult.catapult_sweep(prob, layers, [1.0, -2.0])
