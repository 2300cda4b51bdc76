"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import math
import time

import jax


def best_of(fn, repeats: int) -> float:
    """Minimum wall time of ``repeats`` calls (results blocked until ready)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def once(fn) -> float:
    """Wall time of one call (e.g. the first, compiling one)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0
