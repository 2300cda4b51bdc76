r"""Reproductions of the experiments of Arora, Cohen & Hazan (ICML 2018), honestly reported.

Each experiment returns ``(dataset, summary, figures)``: an ``xarray.Dataset`` with the curves, a JSON-
ready summary with the measured quantities, what the paper says and whether linflow's numbers agree,
and matplotlib figures. ``linflow reproduce NAME`` writes them to a folder. Without the gas-sensor
data (``data=None``) the experiments run on the embedded synthetic problem and say so everywhere.

* ``fig2``: GD on depth-2 and depth-3 networks of several widths (1 included) against the end-to-end
  rule (Claim 2) for N = 2, 3, with l2 and l4 losses.
* ``fig3``: depths 1 to 4 at three configurations, l2 and l4, learning rate by grid search for the fewest
  iterations to a loss target; speed-up against depth 1, and its sensitivity to the selection rule and the data's
  preprocessing.
* ``fig4``: depth-3 GD against a linear model trained with AdaGrad, AdaDelta, Adam and momentum, each
  tuned on a grid (l4); Adam with and without depth.
* ``init``: near-zero against identity (linear residual) initialization, graded against the paper's claim that
  a near-zero start stalls and identity relieves it.
* ``theorem2``: the loop integral of the end-to-end field for N = 1..4, against the closed form for a
  constant gradient, converging under quadrature refinement; the field in a 2-D slice.
* ``section6``: the two-point example, iterations of GD against the overparameterized rule as
  ``y1 / y2`` grows, with the learning-rate bound.
* ``section8``: the MNIST convnet against its overparameterized twin (:mod:`linflow.paper.section8`; ``data`` is
  the folder of the MNIST files, not the gas-sensor data).

Beyond ACH18, on learning from a small start (they need no data):

* ``achl19``: Arora, Cohen, Hu & Luo (2019)'s low-rank completion, deep factorization against the minimum
  nuclear norm (:mod:`linflow.paper.achl19`; cvxpy with SCS);
* ``razin-cohen``: Razin & Cohen (2020)'s 2 x 2 completion, where the loss goes to zero while every norm grows
  without bound (:mod:`linflow.paper.razin_cohen`).

Past the stability threshold (no data):

* ``kreisler23``: Kreisler, Nacson, Soudry & Carmon (2023): GD decreases the sharpness of the gradient flow's
  solution monotonically on scalar networks (:mod:`linflow.paper.kreisler23`);
* ``ghosh25``: Ghosh et al. (2025): past the edge of stability, period doubling into chaos, an oscillation
  subspace whose dimension eta sets, the balancing gap decaying to zero (:mod:`linflow.paper.ghosh25`).
"""

from __future__ import annotations

from .achl19 import PUBLISHED as ACHL19_PUBLISHED, achl19
from .ghosh25 import ghosh25
from .kreisler23 import kreisler23
from .common import load_problem
from .fig2 import fig2
from .fig3 import fig3
from .fig4 import fig4
from .initialization import init_experiment
from .razin_cohen import razin_cohen
from .section6 import section6
from .section8 import section8
from .theorem2 import loop_integral, loop_integral_closed_form, theorem2

__all__ = ["EXPERIMENTS", "PUBLISHED_CONFIGURATIONS", "check_published", "run", "load_problem", "loop_integral",
           "loop_integral_closed_form"]

EXPERIMENTS = {"fig2": fig2, "fig3": fig3, "fig4": fig4, "init": init_experiment, "theorem2": theorem2,
               "section6": section6, "section8": section8, "achl19": achl19,
               "razin-cohen": razin_cohen, "kreisler23": kreisler23,
               "ghosh25": ghosh25}


#: the experiments with a published configuration besides their default one (``run(..., published=True)``)
PUBLISHED_CONFIGURATIONS = {"achl19": ACHL19_PUBLISHED}


def check_published(name: str, quick: bool, published: bool) -> None:
    """A ValueError when ``published`` is asked where there is no published configuration (any experiment but those
    of :data:`PUBLISHED_CONFIGURATIONS`, ``all``, or with ``quick``)."""
    if published and (quick or name not in PUBLISHED_CONFIGURATIONS):
        raise ValueError(f"--published applies to {', '.join(PUBLISHED_CONFIGURATIONS)} without --quick; got "
                         f"{name}{' --quick' if quick else ''}")


def run(name: str, data=None, quick: bool = False, published: bool = False):
    """Run one experiment by name: ``(dataset, summary, figures)``; ``published``: its published configuration
    (:data:`PUBLISHED_CONFIGURATIONS`; achl19's 100 x 100 with its start rows, about 90 minutes on two cores)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {', '.join(EXPERIMENTS)} or 'all'; got {name!r}")
    check_published(name, quick, published)
    if published:
        ds, summary, figs = EXPERIMENTS[name](data, quick, config=PUBLISHED_CONFIGURATIONS[name])
        summary = {"configuration": "published", **summary}
    else:
        ds, summary, figs = EXPERIMENTS[name](data, quick)
    summary = {"experiment": name, "quick": quick, **summary}
    ds.attrs["experiment"] = name
    ds.attrs["data"] = str(summary.get("data"))
    return ds, summary, figs
