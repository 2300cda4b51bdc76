"""Runge-Kutta stage sums without a transposed copy of the stages (a tracing-time detail of :func:`flat_solve`).

A Runge-Kutta step forms ``y_0 + h \\sum_j a_{ij} k_j`` from its stored stages ``k`` of shape ``(s, n)``
(docs/math.md, section 7). diffrax writes the sum as ``tensordot(a_i, k)``; under ``jax.vmap`` the stages are stored
batch first, ``(B, s, n)``, and XLA:CPU copies them to ``(s, B n)`` before every such product: on 16 flows of the
small network of ``python -m benchmarks`` (d = 16, depth 3, 576 unknowns each) that copy was half of a batched Tsit5
step. Written as ``\\sum_j a_{ij} k_j`` term by term the sum is one fused loop over the stages where they lie: 16
vmapped solves 120 -> 77-86 ms, one solve 106 -> 89-103 ms (2-core machine, 2026-12-07, one device), the
same arithmetic up to the order of the additions (rounding, ~1e-16 relative).

:func:`stage_sums_in_place` swaps diffrax's stage product for the term-by-term sum while a solve is traced and puts it
back after (counted, so that solves traced at once in several threads all see the same sum). Where diffrax no longer
has the product it does nothing.
"""

from __future__ import annotations

import contextlib
import threading

import jax.tree_util as jtu

_lock = threading.Lock()
_depth = 0
_own = None  # diffrax's product while the sum stands in for it


def stage_sum(a, b):
    """``\\sum_j a_j b_j`` over the leading (stage) axis of every leaf of ``b``: diffrax's ``vector_tree_dot``,
    term by term (``a`` of shape ``(s,)``, traced or not)."""

    def one(bj):
        total = a[0] * bj[0]
        for j in range(1, a.shape[0]):
            total = total + a[j] * bj[j]
        return total

    return jtu.tree_map(one, b)


@contextlib.contextmanager
def stage_sums_in_place():
    """While in this block, diffrax's Runge-Kutta steps traced here form their stage sums with :func:`stage_sum`."""
    global _depth, _own
    try:
        from diffrax._solver import runge_kutta as module
    except ImportError:  # a diffrax laid out otherwise: its own product
        module = None
    if module is None or not hasattr(module, "vector_tree_dot"):
        yield
        return
    with _lock:
        if _depth == 0:
            _own, module.vector_tree_dot = module.vector_tree_dot, stage_sum
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                module.vector_tree_dot, _own = _own, None
