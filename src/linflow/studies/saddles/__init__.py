"""Learning from a small start (docs/math.md section 10): deep linear networks learn their target's singular modes one at
a time, with loss plateaus near saddles whose lengths grow as the start shrinks (``log(1/alpha)`` at depth 2,
``alpha^-(1-2/N)`` at depth N >= 3). :func:`saddle_to_saddle` measures every mode's escape along both flows against
the closed form; :func:`gd_escapes` measures how gradient descent's step shifts the escapes; :func:`summary` grades
the scaling and the accuracy by stated rules.
"""

from .descent import gd_escapes
from .flows import (EFFECTIVE_RANK_RULE, ESCAPE_RULE, FLOWS, PLATEAU_RULE, STARTS, escape_times, exact_escape_times,
                    plateau_levels, saddle_to_saddle)
from .report import exponents, gd_summary, summary, summary_text

__all__ = ["saddle_to_saddle", "gd_escapes", "escape_times", "exact_escape_times", "plateau_levels", "exponents",
           "summary", "gd_summary", "summary_text", "FLOWS", "STARTS", "ESCAPE_RULE", "PLATEAU_RULE", "EFFECTIVE_RANK_RULE"]
