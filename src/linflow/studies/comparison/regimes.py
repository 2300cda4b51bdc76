"""GD's regime per learning rate past the threshold, by a stated rule (:data:`REGIME_RULE`)."""

from __future__ import annotations


import numpy as np





#: regimes of GD per learning rate (``ds.regime``); the rule is :data:`REGIME_RULE`
REGIMES = ("follows the flow", "edge of stability", "catapult", "diverged", "unclassified")


EOS_TOL = 0.05  # |S(GD midpoint) * eta / 2 - 1| below this at the end: GD sits at the edge of stability


REGIME_RULE = (
    "diverged: GD's iterate became non-finite; follows the flow: eta < 2 / max_t S(t) along the gradient flow "
    "and GD neither diverged nor oscillated; catapult: GD's loss rose above its initial value at some save, then "
    f"GD ended with its sharpness more than {EOS_TOL:g} (relative) below 2 / eta or more than {EOS_TOL:g} away from "
    "the central flow; edge of stability: at the end GD (the mean of its last two iterates) is within "
    f"{EOS_TOL:g} (relative distance of W_e) of the central flow, or, where the central flow was not run, its "
    f"sharpness is within {EOS_TOL:g} (relative) of 2 / eta; unclassified: none of these")


def classify_regimes(etas, stable, data) -> np.ndarray:
    """One of :data:`REGIMES` per eta, by :data:`REGIME_RULE`."""
    outcome = data["gd_outcome"][1]
    s_ratio = data["gd_midpoint_sharpness"][1][:, -1] * etas / 2.0
    dev = data["central_deviation_rel"][1][:, -1]
    loss = data["gd_loss"][1]
    out = []
    for i in range(len(etas)):
        spiked = np.nanmax(loss[i]) > loss[i][0]
        off_central = np.isfinite(dev[i]) and dev[i] > EOS_TOL
        if outcome[i] == "diverged":
            out.append("diverged")
        elif stable[i] and outcome[i] == "ok":
            out.append("follows the flow")
        elif spiked and (s_ratio[i] < 1.0 - EOS_TOL or off_central):
            out.append("catapult")
        elif (np.isfinite(dev[i]) and dev[i] <= EOS_TOL) or (not np.isfinite(dev[i]) and abs(s_ratio[i] - 1) < EOS_TOL):
            out.append("edge of stability")
        else:
            out.append("unclassified")
    return np.array(out, dtype=str)
