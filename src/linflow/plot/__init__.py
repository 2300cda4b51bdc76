"""Figures (matplotlib). Each function takes a Dataset produced by a linflow study and returns a Figure."""

from .atlas import bifurcation_diagram
from .accuracy import step_size_figure, work_precision_nfev, work_precision_time
from .compare import COMPARE_FIGURES, balancedness_drift, bound_vs_error, deviation_vs_eta, deviation_vs_time, stability
from .momentum import momentum_breakdown, stability_edges
from .overview import overview_figure
from .saddles import escape_scaling, gd_escape_shift, saddle_curves
from .stochastic import ensemble_means, linear_scaling_figure, weak_error_orders

__all__ = [
    "overview_figure",
    "deviation_vs_time",
    "deviation_vs_eta",
    "balancedness_drift",
    "stability",
    "bound_vs_error",
    "COMPARE_FIGURES",
    "work_precision_nfev",
    "work_precision_time",
    "step_size_figure",
    "saddle_curves",
    "escape_scaling",
    "gd_escape_shift",
    "bifurcation_diagram",
    "weak_error_orders",
    "ensemble_means",
    "linear_scaling_figure",
    "momentum_breakdown",
    "stability_edges",
]
