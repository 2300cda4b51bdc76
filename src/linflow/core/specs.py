"""A run's problem and start from plain settings: what the command line and a sweep's TOML give.

One builder for both (names in :data:`linflow.core.catalog.PROBLEMS` and :data:`~linflow.core.catalog.INITS`):
``problem(kind, m=..., d=..., p=..., weight_decay=..., seed=..., data=...)`` and ``start(problem, depth, widths,
init, scale, seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import datasets, init, problems, sensing
from .catalog import INITS, PROBLEMS, SENSING_SINGULAR_VALUES
from .problems import AbstractProblem

__all__ = ["problem", "start"]


def problem(kind: str = "synthetic", *, m: int = 2000, d: int = 32, p: float = 2.0, weight_decay: float = 0.0,
            seed: int = 0, data=None) -> AbstractProblem:
    """The problem named ``kind``: ``synthetic`` (:func:`linflow.problems.synthetic` with ``m, d``), ``whitened``
    (one output, target singular value 2, ``X^T X / m = I`` with ``max(m, d)`` samples), ``gas_sensor`` (the UCI
    Ethanol problem from the files at ``data``, standardized; its ``m`` and ``d`` are the data's), ``sensing`` (``m``
    Gaussian measurements) or ``completion`` (``m`` random entries, ``m <= d^2``) of a ``(d, d)`` target with singular
    values :data:`~linflow.core.catalog.SENSING_SINGULAR_VALUES` (the first ``d``)."""
    if kind in ("sensing", "completion"):
        build = sensing.sensing if kind == "sensing" else sensing.completion
        return build(SENSING_SINGULAR_VALUES[:d], d, m, p=p, weight_decay=weight_decay, seed=seed)
    if kind == "whitened":
        return problems.whitened([2.0], d, 1, m=max(m, d), p=p, weight_decay=weight_decay, seed=seed)
    if kind == "gas_sensor":
        if not data:
            raise ValueError("problem = 'gas_sensor' needs 'data': the folder of the UCI gas-sensor files")
        return datasets.gas_sensor(data, p=p, weight_decay=weight_decay)[0]
    if kind != "synthetic":
        raise ValueError(f"problem must be one of {', '.join(PROBLEMS)}, got {kind!r}")
    return problems.synthetic(m=m, d=d, p=p, weight_decay=weight_decay, seed=seed)


def start(prob: AbstractProblem, depth: int, widths: Sequence[int] | None = None, init_kind: str = "balanced",
          scale: float = 0.2, seed: int = 0) -> tuple:
    """The layers of a depth-``depth`` network on ``prob`` (dims ``(d, *widths, k)``; default hidden width 16) from
    the initialization ``init_kind``: ``balanced`` (``scale`` the spectral norm of each layer), ``near_zero`` or
    ``identity`` (``scale`` the standard deviation of the noise)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    widths = list(widths) if widths is not None else [16] * (depth - 1)
    if len(widths) != depth - 1:
        raise ValueError(f"widths must list depth - 1 = {depth - 1} hidden widths, got {widths}")
    dims = (prob.d, *widths, prob.k)
    if init_kind == "balanced":
        return init.balanced(dims, scale=scale, seed=seed)
    if init_kind == "near_zero":
        return init.near_zero(dims, std=scale, seed=seed)
    if init_kind == "identity":
        return init.identity(dims, std=scale, seed=seed)
    raise ValueError(f"init must be one of {', '.join(INITS)}, got {init_kind!r}")
