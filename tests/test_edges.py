"""Stability edges of GD, heavy ball, Nesterov, Adam and RMSProp (docs/math.md (14.5)-(14.6)): the preconditioned
sharpness against independent computations, the edges against the frozen recursions, the plateaus against the
edges, the verdict rule on constructed readings."""

import jax
import numpy as np
import pytest
import xarray as xr
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import linflow
from linflow import init, problems
from linflow.core.curvature import preconditioned_sharpness
from linflow.core.fields import network_loss
from linflow.studies import edges
from conftest import budget


def test_on_a_linear_model_it_is_the_top_eigenvalue_of_P_inverse_times_the_data_moment():
    """Depth 1, p = 2: L = (1/2m) sum_i |W x_i - y_i|^2 has Hessian I_k (x) X^T X / m in W's entries (row-major), so
    lambda_1(P^-1 H) is numpy's largest eigenvalue of diag(1/P) (I_k (x) X^T X / m), formed from X alone."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    prob = linflow.Problem(X, Y)
    W = (rng.normal(size=(3, 5)),)
    P = (rng.uniform(0.2, 3.0, size=(3, 5)),)
    H = np.kron(np.eye(3), X.T @ X / 40)
    expected = np.max(np.linalg.eigvals(np.diag(1 / P[0].ravel()) @ H).real)
    assert float(preconditioned_sharpness(prob, W, P)) == pytest.approx(expected, rel=1e-10)
    ones = (np.ones((3, 5)),)
    assert float(preconditioned_sharpness(prob, W, ones)) == pytest.approx(float(linflow.sharpness(prob, W)), rel=1e-12)


@pytest.mark.slow
@given(seed=st.integers(0, 2**16), widths=st.lists(st.integers(1, 4), min_size=0, max_size=3),
       p=st.sampled_from([2.0, 4.0]), weight_decay=st.sampled_from([0.0, 0.1]))
@example(seed=0, widths=[3, 2], p=2.0, weight_decay=0.0)
@settings(max_examples=budget(3), deadline=None)
def test_on_any_network_it_is_the_top_eigenvalue_of_the_dense_preconditioned_hessian(seed, widths, p, weight_decay):
    """Any depth, widths, loss exponent and weight decay: the Hessian formed densely by jax.hessian of the network loss
    on the raveled layers, then numpy's eigenvalues of P^-1 H; Lanczos on P^-1/2 H P^-1/2 (iters >= the parameters)
    must give the largest."""
    rng = np.random.default_rng(seed)
    prob = linflow.Problem(rng.normal(size=(12, 3)), rng.normal(size=(12, 2)), p=p, weight_decay=weight_decay)
    dims = [3, *widths, 2]
    layers = tuple(rng.normal(size=(dims[i + 1], dims[i])) * 0.7 for i in range(len(dims) - 1))
    P = tuple(rng.uniform(0.1, 2.0, size=w.shape) for w in layers)
    flat, unravel = ravel_pytree(layers)
    H = np.asarray(jax.hessian(lambda v: network_loss(prob, unravel(v)))(flat))
    expected = np.max(np.linalg.eigvals(np.diag(1 / ravel_pytree(P)[0]) @ H).real)
    got = float(preconditioned_sharpness(prob, layers, P, iters=flat.size))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12 * np.max(np.abs(H)))


def _spectral_radius(method, lam, eta, beta):
    """The frozen recursion on L = lam theta^2 / 2 (P = 1 absorbed in lam), written from the methods' definitions,
    as a matrix on (theta_k, theta_{k-1}) or (theta_k, m_k)."""
    if method == "gd" or method == "rmsprop":
        return abs(1 - eta * lam)
    if method == "heavy_ball":
        A = [[1 + beta - eta * lam, -beta], [1, 0]]
    elif method == "nesterov":  # theta+ = y - eta lam y, y = theta + beta (theta - theta_prev)
        A = [[(1 + beta) * (1 - eta * lam), -beta * (1 - eta * lam)], [1, 0]]
    else:  # adam, frozen: m+ = b1 m + (1 - b1) lam theta, theta+ = theta - eta m+
        A = [[1 - eta * (1 - beta) * lam, -eta * beta], [(1 - beta) * lam, beta]]
    return np.max(np.abs(np.linalg.eigvals(np.array(A))))


@pytest.mark.parametrize("method", edges.EDGE_METHODS)
@pytest.mark.parametrize("beta", [0.2, 0.9])
def test_each_edge_is_where_the_frozen_recursion_becomes_unstable(method, beta):
    eta = 0.03
    at = edges.edge(method, eta, beta=beta, beta1=beta)
    assert _spectral_radius(method, at * (1 - 1e-6), eta, beta) < 1 < _spectral_radius(method, at * (1 + 1e-6), eta, beta)


@pytest.mark.slow
@pytest.mark.parametrize("method, eta, options", [
    ("adam", 0.01, {}), ("rmsprop", 0.003, {}), ("gd", 0.17, {}), ("heavy_ball", 0.2, {"beta": 0.2}),
    ("nesterov", 0.15, {"beta": 0.2})])
def test_each_method_holds_its_preconditioned_sharpness_at_its_edge(method, eta, options):
    """On a depth-3 whitened network whose balanced minima are sharper than each edge (13 against 10-12 for GD and
    the momentum methods; Adam's and RMSProp's P shrinks with the gradient), the readings plateau within 5% of the
    formula (Cohen et al. 2021, 2022)."""
    prob = problems.whitened([3.0, 2.0, 1.0, 0.5])
    ds = edges.stability_edge(prob, init.balanced((4, 4, 4, 4), 0.3, seed=0), method, eta, 10_000, **options)
    row = edges.edge_summary(ds)
    assert row["verdict"].startswith("held at the edge"), edges.edge_text(ds)
    assert abs(row["plateau"] - 1) <= 0.05 and row["arrival"] is not None
    assert ds.attrs["edge"] == pytest.approx(edges.edge(method, eta, **{k: v for k, v in options.items()}))


def _readings(ratio, diverged_at=-1, tolerance=0.05):
    ratio = np.asarray(ratio, float)
    return xr.Dataset({"ratio": (("step",), ratio), "loss": (("step",), np.ones_like(ratio))},
                      coords={"step": np.arange(ratio.size) * 10},
                      attrs={"method": "rmsprop", "eta": 0.01, "decay": 0.999, "edge": 200.0, "tolerance": tolerance,
                             "diverged_at": diverged_at})


@pytest.mark.parametrize("ratio, verdict, arrival, plateau", [
    ([0.2, 0.5, 0.97, 1.03, 0.99, 1.01], "held at the edge", 20, 1.0),
    ([8.0, 3.0, 1.02, 0.99, 1.0], "held at the edge", 20, 1.0),          # a start above the edge is its transient
    ([8.0, 0.5, 0.7, 0.96, 0.9, 0.91, 0.92], "below the edge", 30, 0.915),
    ([0.5, 1.1, 1.12, 1.08], "above the edge", 10, 1.1),
    ([0.1, 0.5, 0.9, 0.94], "never reached the edge", None, None),
    ([3.0, 2.0, 1.5], "never reached the edge", None, None),              # never settles below 1 + tolerance
])
def test_the_verdict_rule_on_constructed_readings(ratio, verdict, arrival, plateau):
    row = edges.edge_summary(_readings(ratio))
    assert row["verdict"].startswith(verdict) and row["arrival"] == arrival
    assert row["plateau"] == (pytest.approx(plateau) if plateau is not None else None)
    assert row["rule"] == edges.EDGE_RULE


def test_a_diverged_run_is_said_with_its_step_and_judged_on_nothing():
    row = edges.edge_summary(_readings([0.5, 1.0, np.nan], diverged_at=31))
    assert row["verdict"] == "diverged at step 31" and row["plateau"] is None
    ds = edges.stability_edge(problems.whitened([3.0, 2.0, 1.0, 0.5]), init.balanced((4, 4, 4, 4), 0.3, seed=0),
                              "heavy_ball", 0.27, 200, every=50)
    assert edges.edge_summary(ds)["verdict"].startswith("diverged at step")
    assert "diverged at step" in edges.edge_text(ds)


@pytest.mark.parametrize("kw, match", [
    ({"method": "sgd"}, "method must be one of gd, heavy_ball"),
    ({"eta": -1.0}, "eta must be"),
    ({"steps": 150}, "steps must be a multiple of every = 100"),
    ({"beta": 1.0}, r"beta must be in \[0, 1\)"),
    ({"beta2": -0.1}, r"beta2 must be in \[0, 1\)"),
])
def test_bad_input_is_named(kw, match):
    args = {"method": "gd", "eta": 0.1, "steps": 200, **kw}
    with pytest.raises(ValueError, match=match):
        edges.stability_edge(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.3), **args)
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\)"):
        edges.edge("adam", 0.1, beta1=1.0)
    with pytest.raises(ValueError, match="preconditioner must have the layers' shapes"):
        preconditioned_sharpness(problems.whitened([1.0]), init.balanced((1, 1, 1), 0.3), (np.ones((1, 1)),))
