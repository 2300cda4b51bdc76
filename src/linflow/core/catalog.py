"""The names the command line offers, kept free of heavy imports.

``linflow --help`` must answer at once, before JAX, xarray or matplotlib are imported, so the names it
lists live here; the modules that own the registries (:data:`linflow.integrate.SOLVERS`,
:data:`linflow.accuracy.CASES`, :data:`linflow.reproduce.EXPERIMENTS`) are checked against them by
the tests.
"""

from __future__ import annotations

SOLVER_NAMES = ("euler", "heun", "midpoint", "ralston", "bosh3", "tsit5", "dopri5", "dopri8", "kvaerno3", "kvaerno5")

ACCURACY_CASES = {
    "exact": "whitened l2 problem (singular values 2, 1, 0.5), aligned balanced start sigma0 = 0.1, depth 3, "
             "t1 = 10: exact solution",
    "plateau": "the exact problem from sigma0 = 1e-4: a long plateau near W_e = 0 (ill-conditioned), t1 = 40",
    "long_horizon": "the exact problem on t1 = 200: after convergence the step is limited by stability "
                    "(steps grow like t1 * sharpness)",
    "weight_decay": "synthetic l2 problem (m = 300, d = 6) with weight decay lambda = 50: stiff, balanced start, t1 = 5",
    "ill_conditioned": "synthetic l2 problem (m = 300, d = 6) whose feature scales span 100 (condition number 1e4), "
                       "balanced start, t1 = 200",
}
ACCURACY_SOLVERS = ("euler", "heun", "bosh3", "tsit5", "dopri5", "dopri8", "kvaerno5")
SCIPY_SOLVERS = ("RK45", "DOP853", "LSODA", "Radau")

#: the tolerances (rtol, atol) of the continuous runs, named once: ``FLOW_TOLERANCES`` for every flow, ``linflow run``,
#: the sweeps and the central flow; ``COMPARE_TOLERANCES`` for ``linflow compare``, whose modified-flow errors are
#: O(eta^3) and need the solver's error well below them
FLOW_TOLERANCES = (1e-8, 1e-10)
COMPARE_TOLERANCES = (1e-10, 1e-12)

EXPERIMENTS = ("fig2", "fig3", "fig4", "init", "theorem2", "section6", "section8", "achl19", "razin-cohen",
               "kreisler23", "ghosh25")
#: the papers behind :data:`EXPERIMENTS`, for the help texts (every experiment is named in one group)
EXPERIMENT_SOURCES = {
    "ACH18": ("fig2", "fig3", "fig4", "init", "theorem2", "section6", "section8"),
    "ACHL19 (deep matrix completion)": ("achl19",),
    "Razin & Cohen 2020": ("razin-cohen",),
    "Kreisler et al. 2023": ("kreisler23",),
    "Ghosh et al. 2025": ("ghosh25",),
}
#: the tasks of ``linflow sweep`` (:data:`linflow.sweeps.TASKS`)
SWEEP_TASKS = ("run", "compare", "accuracy", "regime", "saddles", "atlas", "sgd", "momentum")
#: the momentum methods (:data:`linflow.core.momentum.METHODS`)
MOMENTUM_METHODS = ("heavy_ball", "nesterov")
#: the methods of ``linflow sweep``'s task ``momentum``: the momentum methods, and Adam at fixed betas
#: (:func:`linflow.studies.momentum.adam_fixed_breakdown`)
SWEEP_MOMENTUM_METHODS = (*MOMENTUM_METHODS, "adam_fixed")

#: the initializations by name (:func:`linflow.core.specs.start`)
INITS = ("balanced", "near_zero", "identity")
#: the problems by name (:func:`linflow.core.specs.problem`): ``synthetic`` (``problems.synthetic(m, d, p,
#: weight_decay, seed)``), ``whitened`` (``X^T X / m = I`` exactly, one output, target norm 2:
#: ``problems.whitened([2.0], d, 1, m=max(m, d))``) and ``gas_sensor`` (the UCI Ethanol problem from the files at
#: ``data``, standardized; ``m`` and ``d`` are the data's), ``sensing`` and ``completion`` (``m`` Gaussian measurements
#: or random entries of a ``(d, d)`` target with singular values ``SENSING_SINGULAR_VALUES[:d]``:
#: ``sensing.sensing`` / ``sensing.completion``)
PROBLEMS = ("synthetic", "whitened", "gas_sensor", "sensing", "completion")
SENSING_SINGULAR_VALUES = (3.0, 1.0, 0.3)
