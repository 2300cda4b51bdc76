"""SGD against its continuous models (docs/math.md section 12): weak errors of the gradient flow, the first- and
second-order SMEs and SVAG against SGD's ensembles over the learning rate, with fitted orders and confidence
intervals (:func:`weak_errors`, :func:`orders`); where the diffusion approximation breaks: the linear scaling rule over
``(k eta, k B)`` and the noise-to-signal ratio that predicts its failure (:func:`linear_scaling`)."""

from .report import ORDER_RULE, fitted_order, orders, summary, summary_text
from .scaling import (LSR_HOLDS_RULE, LSR_PREDICTION_RULE, linear_scaling, noise_to_signal, scaling_grid,
                      scaling_summary, scaling_text, sigma_trace)
from .weak import METHODS, OBSERVABLES, THEORY_ORDERS, save_times, weak_errors

__all__ = ["weak_errors", "linear_scaling", "noise_to_signal", "sigma_trace", "orders", "fitted_order", "summary",
           "summary_text", "scaling_summary", "scaling_text", "scaling_grid", "save_times", "METHODS", "OBSERVABLES",
           "THEORY_ORDERS", "ORDER_RULE", "LSR_HOLDS_RULE", "LSR_PREDICTION_RULE"]
