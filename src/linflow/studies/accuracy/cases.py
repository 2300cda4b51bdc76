"""The named cases of ``linflow accuracy`` (:data:`CASES`): a problem, a start and a horizon each."""

from __future__ import annotations



from ...core import catalog as _catalog, init, problems




# ---------------------------------------------------------------- named cases
def _exact_case(depth: int = 3, t1: float = 10.0, sigma0: float = 0.1):
    prob = problems.whitened([2.0, 1.0, 0.5], seed=0)
    return prob, init.aligned(prob, depth, sigma0, seed=0), t1


_CASE_BUILDERS = {
    "exact": lambda depth=3: _exact_case(depth),
    "plateau": lambda depth=3: _exact_case(depth, t1=40.0, sigma0=1e-4),
    "long_horizon": lambda depth=3: _exact_case(depth, t1=200.0),
    "weight_decay": lambda depth=3: (problems.synthetic(m=300, d=6, weight_decay=50.0),
                                     init.balanced((6,) + (6,) * (depth - 1) + (1,), 0.5), 5.0),
    "ill_conditioned": lambda depth=3: (problems.synthetic(m=300, d=6, scale_range=100.0),
                                        init.balanced((6,) + (6,) * (depth - 1) + (1,), 0.5), 200.0),
}


CASES = {name: (text, _CASE_BUILDERS[name]) for name, text in _catalog.ACCURACY_CASES.items()}


def case(name: str, depth: int = 3):
    """``(problem, layers0, t1)`` of a named case (see :data:`CASES`)."""
    if name not in CASES:
        raise ValueError(f"case must be one of {', '.join(CASES)}; got {name!r}")
    return CASES[name][1](depth)
