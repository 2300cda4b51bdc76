"""linflow: training dynamics of deep linear networks in continuous and discrete time.

Importing linflow enables float64 in JAX (``jax_enable_x64``): every computation runs in double
precision. The public API:

* problems: :class:`Problem`, :mod:`linflow.problems` (``synthetic``, ``whitened``, ``two_point``);
* networks: :mod:`linflow.init` (``balanced``, ``near_zero``, ``identity``, ``aligned``),
  :func:`end_to_end`, :func:`imbalance`, :func:`balancedness`;
* continuous runs: :func:`gradient_flow`, :func:`end_to_end_flow`, :func:`modified_flow` (diffrax;
  :data:`SOLVERS`);
* curvature: :func:`sharpness`, :func:`smallest_eigenvalue` (Lanczos on Hessian-vector products);
* discrete runs: :func:`gradient_descent`, :func:`end_to_end_descent`;
* studies: :func:`compare` (GD against the flows and the modified flows, :mod:`linflow.comparison`),
  :func:`work_precision` (solver accuracy, :mod:`linflow.accuracy`);
* the result type :class:`Trajectory`; closed-form solutions in :mod:`linflow.exact`.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import accuracy, comparison, curvature, datasets, exact, fields, init, linalg, problems, sweeps  # noqa: E402
from .sweeps import sweep  # noqa: E402
from .accuracy import work_precision  # noqa: E402
from .comparison import compare  # noqa: E402
from .curvature import hessian_extremes, sharpness, smallest_eigenvalue  # noqa: E402
from .descent import end_to_end_descent, gradient_descent, gradient_descents, optax_descents  # noqa: E402
from .fields import (  # noqa: E402
    claim2_field,
    end_to_end_field,
    hessian_vector_product,
    layer_field,
    layer_gradients,
    modified_field_1,
    modified_field_2,
    network_gradient,
    network_loss,
)
from .init import balancedness, end_to_end, imbalance  # noqa: E402
from .integrate import SOLVERS, end_to_end_flow, gradient_flow, gradient_flows, modified_flow  # noqa: E402
from .linalg import preconditioner, preconditioner_eigenvalues, psd_power, psd_powers  # noqa: E402
from .problems import Problem  # noqa: E402
from .trajectory import Trajectory  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Problem",
    "Trajectory",
    "SOLVERS",
    "problems",
    "init",
    "fields",
    "linalg",
    "exact",
    "datasets",
    "end_to_end",
    "imbalance",
    "balancedness",
    "gradient_flow",
    "gradient_flows",
    "gradient_descents",
    "optax_descents",
    "end_to_end_flow",
    "modified_flow",
    "compare",
    "comparison",
    "work_precision",
    "sweep",
    "sweeps",
    "accuracy",
    "curvature",
    "sharpness",
    "smallest_eigenvalue",
    "hessian_extremes",
    "network_gradient",
    "hessian_vector_product",
    "modified_field_1",
    "modified_field_2",
    "gradient_descent",
    "end_to_end_descent",
    "layer_field",
    "layer_gradients",
    "end_to_end_field",
    "claim2_field",
    "network_loss",
    "psd_power",
    "psd_powers",
    "preconditioner",
    "preconditioner_eigenvalues",
]
