"""Input validation shared by the public entry points (private).

Every check raises a ``ValueError`` or ``TypeError`` that names the parameter and the expected form.
Shapes and dtypes are checked on every input; values (finite, positive, ordered) only on concrete
inputs, so a public run also works on tracers (inside ``jax.jit``, ``jax.vmap``, ``jax.grad``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np


def is_traced(value) -> bool:
    """True for a JAX tracer (a value not known until the computation runs)."""
    return isinstance(value, jax.core.Tracer)


def f64(value):
    """``value`` as float64 without a device transfer: a tracer stays a tracer, anything else becomes NumPy.

    NumPy inputs are passed to the compiled runs as they are (``equinox.filter_jit`` traces them like
    JAX arrays), which keeps a warm call's fixed cost down.
    """
    if is_traced(value):
        return value if value.dtype == np.float64 else value.astype(np.float64)
    return np.asarray(value, dtype=np.float64)


def _traced_array(name: str, value, ranks: tuple[int, ...]):
    """A tracer of one of the ranks and a real dtype (its values are not known yet)."""
    if value.ndim not in ranks:
        raise ValueError(f"{name} must have {' or '.join(map(str, ranks))} dimensions, got shape {value.shape}")
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise TypeError(f"{name} must be real, got dtype {value.dtype}")
    return value.astype(np.float64) if value.dtype != np.float64 else value


def real_scalar(name: str, value, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally bounded below (``> minimum`` if strict, else ``>=``); a traced
    scalar is returned as it is (shape and dtype checked)."""
    if is_traced(value):
        return _traced_array(name, value, (0,))
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be a real number, got {value!r}") from exc
    if arr.shape != () or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be a real scalar, got {value!r}")
    x = float(arr)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    if minimum is not None:
        if strict and not x > minimum:
            raise ValueError(f"{name} must be > {minimum}, got {x}")
        if not strict and not x >= minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {x}")
    return x


def unit_weight(name: str, value, what: str):
    """``value`` as float64 when it lies in [0, 1) (a momentum, an average's weight; a tracer passes unchecked), else a
    ValueError naming it and saying ``what`` it is."""
    value = real_scalar(name, value, minimum=0.0)
    if not is_traced(value) and not value < 1.0:
        raise ValueError(f"{name} must be in [0, 1) ({what}); got {value}")
    return f64(value)


def positive(name: str, value) -> float:
    """A finite real number > 0."""
    return real_scalar(name, value, minimum=0.0, strict=True)


def integer(name: str, value, *, minimum: int) -> int:
    """A Python or NumPy integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def finite_matrix(name: str, value, *, ndim: int | tuple[int, ...] = 2) -> np.ndarray:
    """A real float64 array of the given rank(s) with only finite entries (a tracer: rank and dtype only)."""
    if is_traced(value):
        return _traced_array(name, value, (ndim,) if isinstance(ndim, int) else ndim)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real array, got {type(value).__name__}") from exc
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ranks:
        raise ValueError(f"{name} must have {' or '.join(map(str, ranks))} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} must be finite; first non-finite entry at index {tuple(int(i) for i in bad)}")
    return arr


def dims(value) -> tuple[int, ...]:
    """Layer dimensions ``(d, n_1, ..., n_{N-1}, k)``: at least two positive integers."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"dims must be a sequence of positive integers (d, n_1, ..., k), got {value!r}")
    if len(value) < 2:
        raise ValueError(f"dims must hold at least (d, k), i.e. depth >= 1; got {tuple(value)}")
    out = []
    for i, n in enumerate(value):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"dims[{i}] must be a positive integer, got {n!r}")
        out.append(int(n))
    return tuple(out)


def layers(value) -> tuple[jax.Array, ...]:
    """A non-empty tuple of 2-D layers whose shapes chain: ``W_j`` is ``(n_j, n_{j-1})``."""
    if isinstance(value, (np.ndarray, jax.Array)) or not isinstance(value, Sequence) or len(value) == 0:
        raise TypeError(
            "layers must be a non-empty tuple of 2-D arrays (W_1, ..., W_N) with W_j of shape (n_j, n_{j-1})"
        )
    out, given = [], []
    for j, w in enumerate(value, start=1):
        arr = finite_matrix(f"layers[{j - 1}] (W_{j})", w, ndim=2)
        given.append(w if isinstance(w, jax.Array) and w.dtype == np.float64 else arr)
        if out and arr.shape[1] != out[-1].shape[0]:
            raise ValueError(
                f"layer shapes do not chain: W_{j} has shape {arr.shape} but W_{j - 1} has shape "
                f"{out[-1].shape}; W_{j} must have {out[-1].shape[0]} columns"
            )
        out.append(arr)
    return tuple(given)
