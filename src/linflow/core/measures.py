r"""The one home of measurements over learning rates (docs/math.md section 5): fitted orders, crossings of a level,
and eta grids on a save grid. Every study and reproduction measures with these.

* Order: the slope $q$ of $\log e(\eta) = q \log \eta + c$ by (weighted) least squares over the points that qualify,
  with its 95% interval and the local orders $\Delta \log e / \Delta \log \eta$ between neighbouring points.
* Crossing: where a quantity that grows with $\eta$ first reaches a level, log-log interpolated between the grid
  points that bracket it; a non-finite value (a diverged run) counts as above every level.
* Eta grids: GD's iterate $k$ sits at $t = k\eta$, so an $\eta$ lands on ``linspace(0, t1, points)`` when it divides
  the spacing $t_1 / (\text{points} - 1)$.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

__all__ = ["OrderFit", "fit_order", "Crossing", "crossing", "steps_per_save", "divisor_etas", "snapped_etas",
           "save_grid"]


@dataclasses.dataclass(frozen=True)
class OrderFit:
    """A fitted order: ``order`` (nan when fewer than ``min_points`` qualified), its 95% interval ``ci95`` (``None``
    where it cannot be formed), the range of the etas used, how many, and the local orders from the smallest eta up."""

    order: float
    ci95: tuple[float, float] | None
    eta_low: float
    eta_high: float
    n: int
    local_orders: tuple[float, ...] = ()

    @property
    def fitted(self) -> bool:
        return math.isfinite(self.order)


def fit_order(etas, errors, mask=None, *, weights=None, min_points: int = 2) -> OrderFit:
    r"""The slope of $\log |e|$ against $\log \eta$ over the points with a finite nonzero error (and ``mask``).

    Unweighted: ordinary least squares, the interval from the residuals (Student's t with $n - 2$ degrees of freedom;
    none for 2 points). Weighted (``weights`` $w_i$, e.g. $(|e_i| / \mathrm{se}_i)^2$ for Monte Carlo errors): the
    weighted slope, the interval $\pm 1.96 / \sqrt{\sum w_i (x_i - \bar x)^2}$ from the weights alone.
    """
    etas, errors = np.asarray(etas, float), np.abs(np.asarray(errors, float))
    ok = np.isfinite(errors) & (errors > 0)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    n = int(ok.sum())
    if n < max(2, min_points):
        return OrderFit(math.nan, None, math.nan, math.nan, n)
    x, y = np.log(etas[ok]), np.log(errors[ok])
    if weights is None:
        slope = float(np.polyfit(x, y, 1)[0])
        ci = None
        if n > 2:
            fit = stats.linregress(x, y)
            half = float(stats.t.ppf(0.975, n - 2) * fit.stderr)
            ci = (slope - half, slope + half)
    else:
        w = np.asarray(weights, float)[ok]
        xm = np.sum(w * x) / np.sum(w)
        sxx = np.sum(w * (x - xm) ** 2)
        slope = float(np.sum(w * (x - xm) * (y - np.sum(w * y) / np.sum(w))) / sxx)
        half = float(1.96 / np.sqrt(sxx))
        ci = (slope - half, slope + half)
    order = np.argsort(x)
    local = tuple(float(v) for v in np.diff(y[order]) / np.diff(x[order]))
    return OrderFit(slope, ci, float(etas[ok].min()), float(etas[ok].max()), n, local)


@dataclasses.dataclass(frozen=True)
class Crossing:
    """Where a quantity over an increasing eta grid first reaches a level.

    ``below``: the last grid eta before it (nan: at or above the level from the first eta); ``above``: the first grid
    eta at or above it (inf: none); ``at``: the log-log interpolation between them (nan / inf as those; ``above``
    itself when the value there is not finite or the one below is 0); ``diverged``: the value at ``above`` is not
    finite (a run that left the finite numbers)."""

    below: float
    above: float
    at: float
    diverged: bool


def crossing(etas, values, level: float) -> Crossing:
    """The :class:`Crossing` of ``level`` by ``values`` over ``etas`` (increasing)."""
    etas, values = np.asarray(etas, float), np.asarray(values, float)
    above = ~np.isfinite(values) | (values >= level)
    if not above.any():
        return Crossing(float(etas[-1]), math.inf, math.inf, False)
    i = int(np.argmax(above))
    diverged = not bool(np.isfinite(values[i]))
    if i == 0:
        return Crossing(math.nan, float(etas[0]), math.nan, diverged)
    lo, hi = values[i - 1], values[i]
    if diverged or lo <= 0:
        return Crossing(float(etas[i - 1]), float(etas[i]), float(etas[i]), diverged)
    s = (math.log(level) - math.log(lo)) / (math.log(hi) - math.log(lo))
    at = math.exp(math.log(etas[i - 1]) + s * (math.log(etas[i]) - math.log(etas[i - 1])))
    return Crossing(float(etas[i - 1]), float(etas[i]), float(at), False)


def steps_per_save(eta: float, t1: float, points: int) -> int:
    """Steps between saves so that GD with step ``eta`` lands on every point of ``linspace(0, t1, points)``.

    ``eta`` must divide the spacing ``t1 / (points - 1)`` (iterate ``k`` sits at ``t = k eta``).
    """
    spacing = t1 / (points - 1)
    per_point = spacing / eta
    if not math.isclose(per_point, round(per_point), rel_tol=1e-9) or round(per_point) < 1:
        raise ValueError(
            f"eta = {eta:g} must divide the save spacing t1 / (points - 1) = {spacing:g} so that gradient descent "
            f"lands on the common time grid; pick eta = {spacing:g} / n or change t1 or points"
        )
    return round(per_point)


def divisor_etas(t1: float, points: int, divisors) -> list[float]:
    """``spacing / n`` for each ``n`` of ``divisors`` (``spacing = t1 / (points - 1)``): etas on the save grid."""
    spacing = t1 / (points - 1)
    return [spacing / n for n in divisors]


def snapped_etas(t1: float, points: int, nominal) -> np.ndarray:
    """``nominal`` etas snapped to the nearest divisors of the save spacing (sorted, without repeats)."""
    spacing = t1 / (points - 1)
    return np.unique(spacing / np.maximum(1, np.round(spacing / np.asarray(nominal, float))))


def save_grid(eta: float, t1: float, points: int) -> tuple[float, int]:
    """A save grid ``linspace(0, horizon, n)`` that GD with step ``eta`` lands on: ``(t1, points)`` when ``eta``
    divides ``t1 / (points - 1)``; otherwise ``s = max(1, round(t1 / (points - 1) / eta))`` steps between saves and
    ``n - 1 = max(1, round(t1 / (s eta)))`` saves, so that ``horizon = (n - 1) s eta`` is the nearest such horizon to
    ``t1`` (within half a save spacing)."""
    try:
        steps_per_save(eta, t1, points)
        return float(t1), int(points)
    except ValueError:
        every = max(1, round(t1 / (points - 1) / eta))
        saves = max(1, round(t1 / (every * eta)))
        return saves * every * eta, saves + 1
