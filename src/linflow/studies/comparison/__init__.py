r"""Where the small-learning-rate assumption breaks: gradient descent against the flows, measured.

:func:`compare` runs, on one time grid ``t = linspace(0, t1, points)`` and for every learning rate
``eta`` (each dividing the grid spacing, since GD iterate ``k`` sits at ``t = k eta``):

* the layer gradient flow and the end-to-end flow (once; they do not depend on ``eta``);
* gradient descent on the layers and the end-to-end update of ACH18 Eq. 10 (all etas batched in one
  compiled computation, a masked loop per eta);
* the first- and second-order modified flows of GD (batched over eta), for the etas below the
  stability threshold predicted from the flow;
* along the layer flow: the sharpness ``S(t)`` and smallest Hessian eigenvalue, ``||H g||``, and the
  first-order error bound of Elkabetz & Cohen (2021),
  ``(eta/2) int_0^t exp(int_{t'}^t -lambda_min) ||H g||(t') dt'`` (trapezoid rule on the grid);
* along GD: the balancedness ``max_j ||D_j||`` and its exact prediction by the accumulated
  ``eta^2`` term, ``D_j <- a^2 D_j + eta^2 (G_{j+1}^T G_{j+1} - G_j G_j^T)``, ``a = 1 - eta lambda``.

* past the threshold (``central=True``, small networks): the central flow of GD for each eta above the
  predicted threshold (:func:`linflow.central_flow`), GD's sharpness at the mean of consecutive iterates,
  and a regime per eta (:data:`REGIMES`, rule in ``ds.attrs["regime_rule"]``).

Then, across etas: the fitted order of the error against eta for the flow and each modified flow
(on the asymptotic range, reported), the breakdown eta (largest eta whose relative deviation stays
under ``tol``), the stability threshold ``2 / max_t S(t)`` predicted from the flow, and the smallest
eta at which GD actually diverged or settled into an oscillation. docs/math.md sections 2 and 5.
"""

from .dataset import OSCILLATION_COS, OSCILLATION_GROWTH, frobenius
from .regimes import EOS_TOL, REGIME_RULE, REGIMES
from .report import ASYMPTOTIC, fit_mask, report, summary, summary_text
from .runs import CENTRAL_MAX_PARAMS
from .study import compare, side_by_side

__all__ = ["compare", "side_by_side", "summary", "report", "summary_text", "REGIMES", "REGIME_RULE", "EOS_TOL",
           "ASYMPTOTIC", "CENTRAL_MAX_PARAMS", "OSCILLATION_COS", "OSCILLATION_GROWTH", "fit_mask", "frobenius"]
