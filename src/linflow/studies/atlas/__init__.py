"""Past the stability threshold, the whole map (docs/math.md section 11): GD's attractor at every learning rate
(fixed point, period 2, 4, 8, ..., chaos, divergence) with its largest Lyapunov exponent, in one batched
computation (:func:`atlas`); the flow's threshold ``2 / S(phi(w0))`` and the central flow's reach marked.
"""

from ...core.attractors import ATTRACTOR_RULE, CHAOS_LYAPUNOV, PERIOD_RULE, PERIODS, attractor_of, orbits, period_of
from .report import doublings, segments, summary, summary_text
from .study import CENTRAL_RULE, DEFAULT_RATIOS, atlas

__all__ = ["atlas", "summary", "summary_text", "segments", "doublings", "orbits", "period_of", "attractor_of",
           "PERIODS", "PERIOD_RULE", "ATTRACTOR_RULE",
           "CHAOS_LYAPUNOV", "CENTRAL_RULE", "DEFAULT_RATIOS"]
