"""linflow: training dynamics of deep linear networks in continuous and discrete time.

Importing linflow enables float64 in JAX (``jax_enable_x64``): every computation runs in double
precision; before JAX starts its backends, it also gives JAX one CPU device per core (``LINFLOW_CORES``, default
every core this process may use; :mod:`linflow.core.parallel`), over which batched runs spread. Nothing else
happens at import: the submodules (and JAX, xarray, matplotlib) are loaded on first use, so ``import linflow`` and
``linflow --help`` are instant. The top level holds what a notebook user types first:

* problems and starts: :class:`Problem`, :class:`SensingProblem`, :class:`CompletionProblem`,
  :mod:`linflow.problems`, :mod:`linflow.sensing`, :mod:`linflow.init`, :mod:`linflow.datasets`,
  :func:`end_to_end`, :func:`imbalance`, :func:`balancedness`;
* the flows: the fields :class:`LayerFlow`, :class:`EndToEndFlow`, :class:`ModifiedFlow` (diffrax's
  ``(t, y, args)`` signature), the runs :func:`gradient_flow`, :func:`gradient_flows`, :func:`end_to_end_flow`,
  :func:`modified_flow`, :func:`central_flow`, their core :func:`solve` with :data:`SOLVERS` and one
  :class:`SolverSettings`, and :func:`first_passages`;
* the discrete runs, on one engine (:mod:`linflow.descent`): :func:`gradient_descent`, :func:`gradient_descents`,
  :func:`end_to_end_descent`, :func:`optax_descent`, :func:`optax_descents`; heavy ball and its flows
  and Nesterov with their flows (:func:`heavy_ball`, :func:`nesterov`, :func:`heavy_ball_flow`, :func:`nesterov_flow`,
  :class:`MomentumFlow`; :mod:`linflow.momentum`), and Adam's and RMSProp's (:func:`adam_flow` with its fixed-beta
  models :class:`AdamMemorylessFlow`, :class:`AdamModifiedFlow`,
  :func:`rmsprop_flow`); SGD and its SDEs: :func:`sgd`,
  :func:`sgd_ensemble`, :func:`svag`, :func:`svag_ensemble`, :func:`sme`, :func:`sme_ensemble`;
* the result type :class:`Trajectory` (:data:`STATUSES`) and curvature: :func:`sharpness`,
  :func:`smallest_eigenvalue`, :func:`gfs_sharpness`;
* the studies' entry points: :func:`compare`, :func:`work_precision`, :func:`sweep`; their modules
  :mod:`linflow.comparison`, :mod:`linflow.accuracy`, :mod:`linflow.sweeps`, :mod:`linflow.atlas`,
  :mod:`linflow.catapult`, :mod:`linflow.saddles`, and :mod:`linflow.reproduce` for the papers' experiments.

Formulas and primitives stay in their modules: :mod:`linflow.fields` (the vector fields as functions),
:mod:`linflow.linalg` (PSD powers, the end-to-end preconditioner), :mod:`linflow.measures` (order fits, crossings,
eta grids), :mod:`linflow.curvature`, :mod:`linflow.exact`, :mod:`linflow.central`. Every run accepts tracers
(``jax.jit``, ``jax.vmap``, ``jax.grad``). Names that stood here before and moved warn once with their new
spelling and go in linflow 0.3.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from typing import TYPE_CHECKING

__version__ = "0.1.0"


def _cores() -> int:
    """``LINFLOW_CORES`` (a positive integer), else the cores this process may run on."""
    value = os.environ.get("LINFLOW_CORES", "").strip()
    if value.isdigit() and int(value) >= 1:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def _configure_jax() -> None:
    """float64 in JAX, and one CPU device per core, each on one thread (:mod:`linflow.core.parallel`): through the
    variables JAX reads when it loads, or through its configuration when it is loaded but has not started its
    backends yet (once they run, their devices stand)."""
    cores = _cores()
    if cores > 1 and "JAX_NUM_CPU_DEVICES" not in os.environ:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags and "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    jax = sys.modules.get("jax")
    if jax is None or not hasattr(jax, "config"):
        os.environ["JAX_ENABLE_X64"] = "1"
        if cores > 1 and "JAX_NUM_CPU_DEVICES" not in os.environ:
            os.environ["JAX_NUM_CPU_DEVICES"] = str(cores)
        return
    jax.config.update("jax_enable_x64", True)
    if cores > 1 and "JAX_NUM_CPU_DEVICES" not in os.environ:
        try:
            jax.config.update("jax_num_cpu_devices", cores)
        except Exception:  # its backends already run: their devices stand  # noqa: BLE001
            pass


_configure_jax()

# The one table of the public API: name -> (where it lives under linflow, the attribute there or None for the module
# itself). ``__all__``, the lazy loading below and ``dir()`` are derived from it; the TYPE_CHECKING block at the end
# mirrors it for type checkers (tests/test_api.py checks that the two agree). The tiers: what a notebook user types
# first (problems, starts, the flows, the discrete runs, SGD/SME, the result type, the settings, the studies' entry
# points) and the modules by their own names; formulas and primitives stay in their modules (linflow.fields,
# linflow.linalg). See docs/architecture.md for the floors (core, studies, paper) they live on.
_API: dict[str, tuple[str, str | None]] = {
    # problems and starts
    "Problem": ("core.problems", "Problem"),
    "SensingProblem": ("core.sensing", "SensingProblem"),
    "CompletionProblem": ("core.sensing", "CompletionProblem"),
    "end_to_end": ("core.init", "end_to_end"),
    "imbalance": ("core.init", "imbalance"),
    "balancedness": ("core.init", "balancedness"),
    # the flows (vector fields as modules, the runs, the one solve path and its settings)
    "LayerFlow": ("core.fields", "LayerFlow"),
    "EndToEndFlow": ("core.fields", "EndToEndFlow"),
    "ModifiedFlow": ("core.fields", "ModifiedFlow"),
    "gradient_flow": ("core.integrate", "gradient_flow"),
    "gradient_flows": ("core.integrate", "gradient_flows"),
    "end_to_end_flow": ("core.integrate", "end_to_end_flow"),
    "modified_flow": ("core.integrate", "modified_flow"),
    "central_flow": ("core.central", "central_flow"),
    "solve": ("core.integrate", "solve"),
    "first_passages": ("core.passages", "first_passages"),
    "SOLVERS": ("core.integrate", "SOLVERS"),
    "SolverSettings": ("core.settings", "SolverSettings"),
    # the discrete runs (one engine: linflow.descent) and the stochastic ones
    "gradient_descent": ("core.descent", "gradient_descent"),
    "gradient_descents": ("core.descent", "gradient_descents"),
    "end_to_end_descent": ("core.descent", "end_to_end_descent"),
    "optax_descent": ("core.descent", "optax_descent"),
    "optax_descents": ("core.descent", "optax_descents"),
    "heavy_ball": ("core.momentum", "heavy_ball"),
    "heavy_ball_flow": ("core.momentum", "heavy_ball_flow"),
    "nesterov": ("core.momentum", "nesterov"),
    "nesterov_flow": ("core.momentum", "nesterov_flow"),
    "MomentumFlow": ("core.momentum", "MomentumFlow"),
    "adam_flow": ("core.adam", "adam_flow"),
    "AdamFlow": ("core.adam", "AdamFlow"),
    "AdamMemorylessFlow": ("core.adam", "AdamMemorylessFlow"),
    "AdamModifiedFlow": ("core.adam", "AdamModifiedFlow"),
    "rmsprop_flow": ("core.adam", "rmsprop_flow"),
    "RMSPropFlow": ("core.adam", "RMSPropFlow"),
    "RMSPropModifiedFlow": ("core.adam", "RMSPropModifiedFlow"),
    "sgd": ("core.sgd", "sgd"),
    "sgd_ensemble": ("core.sgd", "sgd_ensemble"),
    "svag": ("core.sgd", "svag"),
    "svag_ensemble": ("core.sgd", "svag_ensemble"),
    "sme": ("core.sme", "sme"),
    "sme_ensemble": ("core.sme", "sme_ensemble"),
    # results and what is measured on them
    "Trajectory": ("core.trajectory", "Trajectory"),
    "STATUSES": ("core.trajectory", "STATUSES"),
    "sharpness": ("core.curvature", "sharpness"),
    "smallest_eigenvalue": ("core.curvature", "smallest_eigenvalue"),
    "gfs_sharpness": ("core.gfs", "gfs_sharpness"),
    # the studies' entry points
    "compare": ("studies.comparison", "compare"),
    "work_precision": ("studies.accuracy", "work_precision"),
    "sweep": ("studies.sweeps", "sweep"),
    # modules by their own names
    "core": ("core", None),
    "studies": ("studies", None),
    "paper": ("paper", None),
    "problems": ("core.problems", None),
    "sensing": ("core.sensing", None),
    "init": ("core.init", None),
    "datasets": ("core.datasets", None),
    "fields": ("core.fields", None),
    "linalg": ("core.linalg", None),
    "exact": ("core.exact", None),
    "curvature": ("core.curvature", None),
    "central": ("core.central", None),
    "descent": ("core.descent", None),
    "integrate": ("core.integrate", None),
    "measures": ("core.measures", None),
    "momentum": ("core.momentum", None),
    "comparison": ("studies.comparison", None),
    "accuracy": ("studies.accuracy", None),
    "sweeps": ("studies.sweeps", None),
    "atlas": ("studies.atlas", None),
    "catapult": ("studies.catapult", None),
    "saddles": ("studies.saddles", None),
    "reproduce": ("paper.reproduce", None),
    "plot": ("plot", None),
}

# Old names, importable with a DeprecationWarning until linflow 0.3 (removed then): the formulas and primitives that
# stood at the top level, and the aliases that hid a module's own name. name -> (where, attribute, the new spelling).
_DEPRECATED: dict[str, tuple[str, str | None, str]] = {
    **{n: ("core.fields", n, f"linflow.fields.{n}") for n in (
        "network_gradient", "network_loss", "hessian_vector_product", "modified_field_1", "modified_field_2",
        "layer_field", "layer_gradients", "end_to_end_field", "claim2_field")},
    **{n: ("core.linalg", n, f"linflow.linalg.{n}") for n in (
        "psd_power", "psd_powers", "preconditioner", "apply_preconditioner", "preconditioner_eigenvalues")},
    "CentralFlow": ("core.central", "CentralFlow", "linflow.central.CentralFlow"),
    "hessian_extremes": ("core.curvature", "hessian_extremes", "linflow.curvature.hessian_extremes"),
    "stochastic": ("core.sgd", None, "linflow.core.sgd"),
    "sdes": ("core.sme", None, "linflow.core.sme"),
    "overview": ("studies.overview", None, "linflow.studies.overview"),
    "section8": ("paper.section8", None, "linflow.paper.section8"),
    "convnet": ("paper.convnet", None, "linflow.paper.convnet"),
    "trajectory": ("core.trajectory", None, "linflow.core.trajectory"),
    "passages": ("core.passages", None, "linflow.core.passages"),
    "gfs": ("core.gfs", None, "linflow.core.gfs"),
}

__all__ = sorted(_API)


def _resolve(where: str, attribute: str | None):
    module = importlib.import_module(f".{where}", __name__)
    return module if attribute is None else getattr(module, attribute)


def __getattr__(name: str):
    if name in _API:
        value = _resolve(*_API[name])
        globals()[name] = value
        return value
    if name in _DEPRECATED:
        where, attribute, new = _DEPRECATED[name]
        warnings.warn(f"linflow.{name} is deprecated and will be removed in linflow 0.3; use {new}",
                      DeprecationWarning, stacklevel=2)
        return _resolve(where, attribute)
    raise AttributeError(f"module 'linflow' has no attribute {name!r}")


_HELPERS = {"annotations", "importlib", "os", "sys", "warnings", "TYPE_CHECKING"}  # this module's own imports


def __dir__() -> list[str]:
    public = {n for n in globals() if n not in _HELPERS and n not in _DEPRECATED
              and (not n.startswith("_") or n == "__version__")}
    return sorted({*public, *_API})


if TYPE_CHECKING:  # for type checkers and IDEs: the names of _API (tests/test_api.py checks they agree)
    from . import core, paper, plot, studies
    from .core import (central, curvature, datasets, descent, exact, fields, init, integrate, linalg, measures,
                       momentum, problems, sensing)
    from .core.central import central_flow
    from .core.curvature import sharpness, smallest_eigenvalue
    from .core.descent import end_to_end_descent, gradient_descent, gradient_descents, optax_descent, optax_descents
    from .core.fields import EndToEndFlow, LayerFlow, ModifiedFlow
    from .core.gfs import gfs_sharpness
    from .core.adam import (AdamFlow, AdamMemorylessFlow, AdamModifiedFlow, RMSPropFlow, RMSPropModifiedFlow,
                            adam_flow, rmsprop_flow)
    from .core.momentum import MomentumFlow, heavy_ball, heavy_ball_flow, nesterov, nesterov_flow
    from .core.init import balancedness, end_to_end, imbalance
    from .core.integrate import SOLVERS, end_to_end_flow, gradient_flow, gradient_flows, modified_flow, solve
    from .core.passages import first_passages
    from .core.problems import Problem
    from .core.sensing import CompletionProblem, SensingProblem
    from .core.settings import SolverSettings
    from .core.sgd import sgd, sgd_ensemble, svag, svag_ensemble
    from .core.sme import sme, sme_ensemble
    from .core.trajectory import STATUSES, Trajectory
    from .paper import reproduce
    from .studies import accuracy, atlas, catapult, comparison, saddles, sweeps
    from .studies.accuracy import work_precision
    from .studies.comparison import compare
    from .studies.sweeps import sweep
