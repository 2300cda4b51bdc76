r"""Exact solutions of the end-to-end dynamics (docs/math.md section 4), independent of the solvers.

Whitened data ($X^\top X / m = I$), $p = 2$, target $\Phi = U S V^\top$ and a balanced start aligned
with it, $W_e(0) = U \operatorname{diag}(\sigma_0) V^\top$: every singular value moves alone (docs/math.md (4.1)),

$$
\dot\sigma = N \sigma^{2-2/N} (s - \sigma) - \lambda N \sigma .
$$

* $N = 1$: $\sigma(t) = s - (s - \sigma_0) e^{-t}$ (with decay: $s/(1+\lambda)$ and rate $1+\lambda$).
* $N = 2$: logistic, $\sigma(t) = s' / (1 + (s'/\sigma_0 - 1) e^{-2 s' t})$ with $s' = s - \lambda$ (4.2).
* integer $N \ge 3$, no decay (4.3): $t(\sigma) = s^{2/N-2} [\Psi(y) - \Psi(y_0)]$, $y = (\sigma/s)^{1/N}$,
  $\Psi(y) = -\frac{1}{(N-2) y^{N-2}} - \frac1N \sum_k \operatorname{Re}(w_k^2 \log(y - w_k))$,
  $w_k = e^{2\pi i k/N}$, inverted by a bracketing root finder in the variable $\log\lvert s - \sigma \rvert$ so
  that the approach to $s$ keeps every digit (the $k = 0$ term is written through $s - \sigma$).
* $s = 0$: $\sigma(t) = (\sigma_0^{-(2-2/N)} + (2N-2) t)^{-1/(2-2/N)}$ for $N \ge 2$.
* ``N >= 3`` with weight decay has no closed form here: it is integrated with SciPy's DOP853 at
  ``rtol = 1e-13`` (an independent reference, not a closed form).
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize

from . import checks as _checks
from .problems import Problem

__all__ = ["singular_value", "time_to_reach", "end_to_end", "scalar_field"]


def scalar_field(sigma, s: float, depth: int, weight_decay: float = 0.0):
    """``N sigma^(2-2/N) (s - sigma) - lambda N sigma``."""
    N = depth
    return N * np.abs(sigma) ** (2 - 2 / N) * (s - sigma) - weight_decay * N * sigma


def _phi(y: float, gap_ratio: float, N: int) -> float:
    """``Phi(y)`` with the ``k = 0`` term ``-(1/N) log|y - 1|`` from ``|1 - y|`` given as ``gap_ratio``."""
    w = np.exp(2j * np.pi * np.arange(1, N) / N)
    rest = np.sum(np.real(w**2 * np.log(y - w)))
    return -1.0 / ((N - 2) * y ** (N - 2)) - (np.log(gap_ratio) + rest) / N


def _one_minus_y(y: float, rel_gap: float, N: int) -> float:
    """``|1 - y|`` from ``|1 - y^N| = rel_gap`` exactly: ``(1 - y^N) / (1 + y + ... + y^(N-1))``."""
    return rel_gap / np.sum(y ** np.arange(N))


def time_to_reach(sigma, s: float, sigma0: float, depth: int) -> float:
    """Closed-form time at which ``sigma`` is reached from ``sigma0`` (integer ``N >= 1``, no decay).

    ``sigma`` lies between ``sigma0`` and ``s`` (either side of ``s``); all three are > 0. N = 1:
    ``log((s - sigma0) / (s - sigma))``; N = 2: ``log((s / sigma0 - 1) / (s / sigma - 1)) / (2 s)``; N >= 3: the
    implicit closed form (docs/math.md section 4). With ``sigma = s / 2`` this is a mode's escape time from a
    small start.

    Examples:
        >>> round(float(time_to_reach(0.5, s=1.0, sigma0=0.1, depth=3)), 6)
        1.191863
        >>> round(float(time_to_reach(1.0, s=2.0, sigma0=1e-10, depth=2)), 6)  # log(2e10 - 1) / 4
        5.92975
    """
    N = _checks.integer("depth", depth, minimum=1)
    if not (min(sigma0, s) <= sigma <= max(sigma0, s)) or sigma0 <= 0 or s <= 0:
        raise ValueError(f"need 0 < sigma between sigma0 = {sigma0} and s = {s}, got sigma = {sigma}")
    if N == 1:
        return float(np.log((s - sigma0) / (s - sigma))) if sigma != s else np.inf
    if N == 2:
        # log((s - sigma0) sigma / ((s - sigma) sigma0)) / (2 s), each factor formed without cancellation
        return float((np.log(s - sigma0) - np.log(sigma0) - np.log(s - sigma) + np.log(sigma)) / (2.0 * s)) \
            if sigma != s else np.inf
    return _time_from_gap(s - sigma, s, sigma0, N)


def _time_from_gap(gap: float, s: float, sigma0: float, N: int) -> float:
    y = ((s - gap) / s) ** (1.0 / N)
    y0 = (sigma0 / s) ** (1.0 / N)
    phi = _phi(y, _one_minus_y(y, abs(gap) / s, N), N)
    phi0 = _phi(y0, _one_minus_y(y0, abs(s - sigma0) / s, N), N)
    return s ** (2.0 / N - 2.0) * (phi - phi0)


def _invert(t: float, s: float, sigma0: float, N: int) -> float:
    """Solve ``t(sigma) = t`` in ``u = log|s - sigma|`` with Brent's method."""
    if t == 0:
        return sigma0
    sign = 1.0 if sigma0 < s else -1.0
    u_hi = np.log(abs(s - sigma0))
    f = lambda u: _time_from_gap(sign * np.exp(u), s, sigma0, N) - t  # noqa: E731  (decreasing in u)
    step = N * s ** (2 - 2 / N) * t + 1.0
    u_lo = u_hi - step
    with np.errstate(divide="ignore"):  # a gap that underflows to 0 gives log(0) = -inf: t is then +inf, as it is
        while f(u_lo) < 0:
            u_lo -= step
            if u_lo < -745:  # the gap underflows: sigma equals s to the last digit
                return s
        u = optimize.brentq(f, u_lo, u_hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
    return s - sign * np.exp(u)


def singular_value(t, s: float, sigma0: float, depth: int, weight_decay: float = 0.0) -> np.ndarray:
    """``sigma(t)`` of ``d sigma/dt = N sigma^(2-2/N)(s - sigma) - lambda N sigma`` at the times ``t``.

    Examples:
        >>> float(singular_value(1.0, s=2.0, sigma0=1.0, depth=1))  # 2 - e^-1
        1.6321205588285577
    """
    N = _checks.integer("depth", depth, minimum=1)
    s = _checks.real_scalar("s", s, minimum=0.0)
    sigma0 = _checks.real_scalar("sigma0", sigma0, minimum=0.0)
    lam = _checks.real_scalar("weight_decay", weight_decay, minimum=0.0)
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    if N == 1:
        a = 1.0 + lam
        return s / a + (sigma0 - s / a) * np.exp(-a * t)
    if sigma0 == 0:
        return np.zeros_like(t)
    if N == 2:
        sp = s - lam
        if sp == 0:
            return sigma0 / (1.0 + 2.0 * sigma0 * t)
        return sp / (1.0 + (sp / sigma0 - 1.0) * np.exp(-2.0 * sp * t))
    if lam > 0:
        sol = integrate.solve_ivp(
            lambda _, x: scalar_field(x, s, N, lam), (0.0, float(np.max(t))), [sigma0],
            method="DOP853", rtol=1e-13, atol=1e-300, t_eval=np.sort(np.ravel(t)), dense_output=True,
        )
        return sol.sol(t.ravel())[0].reshape(t.shape)
    if s == 0:
        e = 2.0 - 2.0 / N
        return (sigma0 ** (-e) + (2 * N - 2) * t) ** (-1.0 / e)
    if sigma0 == s:
        return np.full_like(t, s)
    return np.vectorize(lambda tt: _invert(float(tt), s, sigma0, N), otypes=[np.float64])(t)


def end_to_end(problem: Problem, depth: int, sigma0, ts) -> np.ndarray:
    """Exact ``W_e(t) = U diag(sigma(t)) V^T`` from :func:`linflow.init.aligned`'s start, shape ``(n, k, d)``.

    Needs ``L1(W) = (1/2) ||W - Phi||_F^2 + const`` (``problem.whitened_target``: whitened inputs, ``p = 2``; or
    completion with every entry observed); ``sigma0`` as in ``init.aligned``.

    Examples:
        >>> from linflow import problems
        >>> prob = problems.whitened([2.0, 1.0])
        >>> end_to_end(prob, 3, 0.1, [0.0, 1.0, 2.0]).shape
        (3, 2, 2)
    """
    if problem.p != 2.0:
        raise ValueError(f"exact solutions need p = 2, got p = {problem.p}")
    phi = problem.whitened_target
    if phi is None:
        raise ValueError("exact solutions need L1(W) = (1/2) ||W - Phi||_F^2 + const: whitened inputs, X^T X / m = I "
                         "(see linflow.problems.whitened), or a completion problem observing every entry")
    U, s, Vt = np.linalg.svd(phi, full_matrices=False)
    V = Vt.T
    sig0 = np.broadcast_to(np.asarray(sigma0, dtype=np.float64), s.shape)
    ts = np.asarray(ts, dtype=np.float64)
    lam = float(problem.weight_decay)
    sig = np.stack([singular_value(ts, sr, s0, depth, lam) for sr, s0 in zip(s, sig0)], axis=-1)  # (n, r)
    return np.einsum("kr,nr,dr->nkd", U, sig, V)
