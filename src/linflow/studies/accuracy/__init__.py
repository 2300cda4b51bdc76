r"""Solver accuracy: work-precision diagrams of ODE solvers on linflow's gradient flows.

Methodology of SciML's DiffEqBenchmarks (docs/math.md section 7): a reference from the exact solution
(docs/math.md section 4) where the problem admits one, otherwise Dopri8 at ``rtol = 1e-13`` checked
against a second reference; a tolerance sweep ``rtol = 10^-k``, ``atol = 10^-(k+3)`` (fixed-step
solvers sweep the step instead); the error at the final time (mean absolute error of the entries of
``W_e``) and the RMS error over 100 evenly spaced times; work as function evaluations and as wall
time (minimum over repeats after a warm-up; compilation measured separately).

Errors are measured on the end-to-end matrix ``W_e(t)``, the quantity both flows share and the
exact solutions give. SciPy's ``solve_ivp`` methods drive the same (compiled) vector field through
a NumPy callback, with its exact Jacobian (``jax.jacfwd``) for the implicit ones.
"""

from .cases import CASES, case
from .diagram import DEFAULT_SOLVERS, SCIPY_SOLVERS, CountedField, work_precision
from .report import summary, table
from .steps import step_sizes

__all__ = ["work_precision", "summary", "table", "CASES", "case", "step_sizes", "DEFAULT_SOLVERS", "SCIPY_SOLVERS",
           "CountedField"]
