"""Shared fixtures: small problems whose values are known independently of linflow's code."""

import numpy as np
import pytest

import linflow  # noqa: F401  (enables float64 before any array is made)
from linflow import problems


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def small_regression(m=40, d=5, k=1, p=2.0, weight_decay=0.0, seed=0):
    """A generic regression problem with unequal feature scales."""
    r = np.random.default_rng(seed)
    X = r.standard_normal((m, d)) * np.linspace(1.0, 0.3, d)
    Y = r.standard_normal((m, k))
    return problems.Problem(X, Y, p=p, weight_decay=weight_decay)


def loss_numpy(X, Y, W, p):
    """Independent lp loss: (1/m) sum_i (1/p) sum_c |(W x_i - y_i)_c|^p."""
    R = X @ W.T - Y
    return np.sum(np.abs(R) ** p) / (p * X.shape[0])


def grad_numpy(X, Y, W, p):
    R = X @ W.T - Y
    return (np.sign(R) * np.abs(R) ** (p - 1)).T @ X / X.shape[0]


def central_difference(f, x, h=1e-6):
    """Numerical gradient of a scalar function of a matrix."""
    x = np.array(x, dtype=float)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def strict_json(path):
    """Parse a JSON file as a strict reader does: NaN, Infinity and -Infinity are not JSON."""
    import json
    from pathlib import Path

    def reject(token):
        raise ValueError(f"{path}: {token} is not standard JSON")

    return json.loads(Path(path).read_text(), parse_constant=reject)
