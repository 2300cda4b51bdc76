"""linflow: training dynamics of deep linear networks in continuous and discrete time.

Importing linflow enables float64 in JAX (``jax_enable_x64``): every computation runs in double
precision. Nothing else happens at import: the submodules (and JAX, xarray, matplotlib) are loaded on
first use, so ``import linflow`` and ``linflow --help`` are instant. The public API:

* problems: :class:`Problem`, :mod:`linflow.problems` (``synthetic``, ``whitened``, ``two_point``); matrix sensing
  and completion: :class:`SensingProblem`, :class:`CompletionProblem`, :mod:`linflow.sensing` (``sensing``,
  ``completion``, ``low_rank_target``, ``random_mask``);
* networks: :mod:`linflow.init` (``balanced``, ``near_zero``, ``identity``, ``aligned``),
  :func:`end_to_end`, :func:`imbalance`, :func:`balancedness`;
* vector fields as modules with diffrax's ``(t, y, args)`` signature: :class:`LayerFlow`,
  :class:`EndToEndFlow`, :class:`ModifiedFlow`;
* continuous runs: :func:`gradient_flow`, :func:`end_to_end_flow`, :func:`modified_flow`, and their core
  :func:`solve` (diffrax; solver names in :data:`SOLVERS` or diffrax solver objects; the solver options in one
  :class:`SolverSettings`);
* first-passage times of a flow (a mode's escape from a saddle): :func:`first_passages` (diffrax events);
* curvature: :func:`sharpness`, :func:`smallest_eigenvalue` (Lanczos on Hessian-vector products); the sharpness
  of the gradient flow's solution from a point, :func:`gfs_sharpness`;
* past the stability threshold: :func:`central_flow` (the central flow of GD at the edge of stability,
  :mod:`linflow.central`), the catapult on the uv model (:mod:`linflow.catapult`) and GD's attractor at every
  learning rate (:mod:`linflow.atlas`: periods, chaos, Lyapunov exponents);
* discrete runs: :func:`gradient_descent`, :func:`end_to_end_descent`, :func:`optax_descent` (any optax
  optimizer), and their core :func:`linflow.descent.descend`;
* every run accepts tracers: call it under ``jax.jit``, batch it with ``jax.vmap``, differentiate it with
  ``jax.grad`` (the result, a :class:`Trajectory`, is a pytree of fixed-shape arrays);
* studies: :func:`compare` (GD against the flows and the modified flows, :mod:`linflow.comparison`),
  :func:`work_precision` (solver accuracy, :mod:`linflow.accuracy`), :func:`sweep`
  (:mod:`linflow.sweeps`), learning from a small start (:mod:`linflow.studies.saddles`), :mod:`linflow.reproduce`;
* the result type :class:`Trajectory`; closed-form solutions in :mod:`linflow.exact`; figures in
  :mod:`linflow.plot`.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

__version__ = "0.1.0"


def _enable_x64() -> None:
    """float64 in JAX: set now if JAX is loaded, else through the variable JAX reads when it loads."""
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "config"):
        jax.config.update("jax_enable_x64", True)
    else:
        os.environ["JAX_ENABLE_X64"] = "1"


_enable_x64()

# the public submodules by their short names (``linflow.problems``, ...) -> where they live: ``core`` (problems,
# networks, fields, runs, the result type, curvature, exact solutions, data readers), ``studies`` (comparison,
# overview, accuracy, sweeps, catapult) and ``paper`` (the reproduced experiments); see docs/architecture.md
_SUBMODULES = {
    "accuracy": "studies.accuracy", "catapult": "studies.catapult", "central": "core.central",
    "comparison": "studies.comparison", "convnet": "paper.convnet", "curvature": "core.curvature",
    "datasets": "core.datasets", "descent": "core.descent", "exact": "core.exact", "fields": "core.fields",
    "init": "core.init", "integrate": "core.integrate", "linalg": "core.linalg", "overview": "studies.overview",
    "plot": "plot", "problems": "core.problems", "reproduce": "paper.reproduce", "section8": "paper.section8",
    "sensing": "core.sensing", "passages": "core.passages", "gfs": "core.gfs", "atlas": "studies.atlas",
    "sweeps": "studies.sweeps", "trajectory": "core.trajectory", "stochastic": "core.sgd",
    "sdes": "core.sme",
}

# public name -> the submodule that defines it
_ATTRIBUTES = {
    "Problem": "problems",
    "SensingProblem": "sensing",
    "CompletionProblem": "sensing",
    "Trajectory": "trajectory",
    "STATUSES": "trajectory",
    "SOLVERS": "integrate",
    "SolverSettings": "integrate",
    "first_passages": "passages",
    "gfs_sharpness": "gfs",
    "sgd": "stochastic",
    "sgd_ensemble": "stochastic",
    "svag": "stochastic",
    "svag_ensemble": "stochastic",
    "sme": "sdes",
    "sme_ensemble": "sdes",
    "solve": "integrate",
    "LayerFlow": "fields",
    "EndToEndFlow": "fields",
    "ModifiedFlow": "fields",
    "optax_descent": "descent",
    "gradient_flow": "integrate",
    "gradient_flows": "integrate",
    "end_to_end_flow": "integrate",
    "modified_flow": "integrate",
    "gradient_descent": "descent",
    "gradient_descents": "descent",
    "end_to_end_descent": "descent",
    "optax_descents": "descent",
    "end_to_end": "init",
    "imbalance": "init",
    "balancedness": "init",
    "compare": "comparison",
    "central_flow": "central",
    "CentralFlow": "central",
    "work_precision": "accuracy",
    "sweep": "sweeps",
    "sharpness": "curvature",
    "smallest_eigenvalue": "curvature",
    "hessian_extremes": "curvature",
    "network_gradient": "fields",
    "network_loss": "fields",
    "hessian_vector_product": "fields",
    "modified_field_1": "fields",
    "modified_field_2": "fields",
    "layer_field": "fields",
    "layer_gradients": "fields",
    "end_to_end_field": "fields",
    "claim2_field": "fields",
    "psd_power": "linalg",
    "psd_powers": "linalg",
    "preconditioner": "linalg",
    "apply_preconditioner": "linalg",
    "preconditioner_eigenvalues": "linalg",
}

__all__ = sorted([*_ATTRIBUTES, *(m for m in _SUBMODULES if m not in ("descent", "integrate", "overview",
                                                                         "trajectory", "passages", "gfs"))])


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    elif name in _ATTRIBUTES:
        module = getattr(importlib.import_module(f".{_SUBMODULES[_ATTRIBUTES[name]]}", __name__), name)
    elif name in ("core", "studies", "paper"):
        module = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'linflow' has no attribute {name!r}")
    globals()[name] = module
    return module


_HELPERS = {"annotations", "importlib", "os", "sys", "TYPE_CHECKING"}  # this module's own imports, not the API


def __dir__() -> list[str]:
    public = {n for n in globals() if n not in _HELPERS and (not n.startswith("_") or n == "__version__")}
    return sorted({*public, *_SUBMODULES, *_ATTRIBUTES, "core", "studies", "paper"})


if TYPE_CHECKING:  # for type checkers and IDEs: the names __getattr__ provides
    from . import plot
    from .core import (central, curvature, datasets, descent, exact, fields, init, integrate, linalg, problems,
                       sensing, trajectory)
    from .core.central import CentralFlow, central_flow
    from .core.curvature import hessian_extremes, sharpness, smallest_eigenvalue
    from .core.descent import end_to_end_descent, gradient_descent, gradient_descents, optax_descent, optax_descents
    from .core.fields import (EndToEndFlow, LayerFlow, ModifiedFlow, claim2_field, end_to_end_field,
                              hessian_vector_product, layer_field, layer_gradients, modified_field_1, modified_field_2,
                              network_gradient, network_loss)
    from .core.init import balancedness, end_to_end, imbalance
    from .core.passages import first_passages
    from .core.gfs import gfs_sharpness
    from .core.sgd import sgd, sgd_ensemble, svag, svag_ensemble
    from .core.sme import sme, sme_ensemble
    from .studies import atlas
    from .core.sensing import CompletionProblem, SensingProblem
    from .core.integrate import SOLVERS, SolverSettings, end_to_end_flow, gradient_flow, gradient_flows, modified_flow, solve
    from .core.linalg import (apply_preconditioner, preconditioner, preconditioner_eigenvalues, psd_power,
                              psd_powers)
    from .core.problems import Problem
    from .core.trajectory import STATUSES, Trajectory
    from .paper import convnet, reproduce, section8
    from .studies import accuracy, catapult, comparison, overview, sweeps
    from .studies.accuracy import work_precision
    from .studies.comparison import compare
    from .studies.sweeps import sweep
