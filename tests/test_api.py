"""The public API: the names of ``linflow.__all__`` (issue 40's tiers), the parameters of each callable (unchanged
since the floors, additions only), the type checker's view agreeing with the lazy loading, and the old names that
stay importable for one release with a DeprecationWarning naming the new spelling."""

import ast
import importlib
import inspect
import pathlib
import warnings

import pytest

import linflow

# name -> "module", a type name, or the callable's parameter names (listed from the pre-restructuring tree)
PUBLIC = {
    "EndToEndFlow": ('problem', 'depth', 'form'),
    "LayerFlow": ('problem',),
    "ModifiedFlow": ('problem', 'eta', 'order'),
    "Problem": ('X', 'Y', 'p', 'weight_decay'),
    "SOLVERS": "dict",
    "STATUSES": "tuple",
    "Trajectory": ('ts', 'end_to_end', 'loss', 'layers', 'imbalance', 'result', 'stop', 'stats', 'eta', 't1',
        'extras', 'kind', 'depth', 'solver'),
    "accuracy": "module",
    "balancedness": ('layers',),
    "catapult": "module",
    "central": "module",
    "central_flow": ('problem', 'layers0', 'eta', 't1', 'ts', 'n_save', 'solver', 'rtol', 'atol', 'max_steps',
        'max_switches'),
    "compare": ('problem', 'layers0', 'etas', 't1', 'points', 'tol', 'orders', 'solver', 'rtol', 'atol', 'max_steps',
        'modified_max_steps', 'lanczos_iters', 'central', 'curvature', 'progress'),
    "comparison": "module",
    "curvature": "module",
    "datasets": "module",
    "end_to_end": ('layers',),
    "end_to_end_descent": ('problem', 'W_e0', 'depth', 'eta', 'steps', 'save_every', 'form'),
    "end_to_end_flow": ('problem', 'W_e0', 'depth', 't1', 'form', 'options'),
    "exact": "module",
    "fields": "module",
    "gradient_descent": ('problem', 'layers0', 'eta', 'steps', 'save_every'),
    "gradient_descents": ('problem', 'layers0', 'etas', 'steps', 'save_every'),
    "gradient_flow": ('problem', 'layers0', 't1', 'options'),
    "gradient_flows": ('problem', 'layers0s', 't1', 'options'),
    "imbalance": ('layers',),
    "init": "module",
    "linalg": "module",
    "modified_flow": ('problem', 'layers0', 'eta', 't1', 'order', 'options'),
    "optax_descent": ('problem', 'layers0', 'optimizer', 'learning_rate', 'steps', 'save_every'),
    "optax_descents": ('problem', 'layers0', 'optimizer', 'learning_rates', 'steps', 'save_every'),
    "plot": "module",
    "problems": "module",
    "reproduce": "module",
    "sharpness": ('problem', 'layers', 'iters'),
    "smallest_eigenvalue": ('problem', 'layers', 'iters'),
    "solve": ('field', 'y0', 't1', 'ts', 'n_save', 'solver', 'stepsize_controller', 'rtol', 'atol', 'dt0',
        'max_steps', 'time_unit', 'eta'),
    "sweep": ('grid', 'task', 'store', 'fixed', 'executor', 'scheduler', 'n_workers', 'progress', 'flush_every'),
    "sweeps": "module",
    "work_precision": ('problem', 'start', 't1', 'flow', 'depth', 'solvers', 'scipy_solvers', 'tolerances',
        'fixed_steps', 'reference', 'repeats', 'n_times', 'max_steps', 'progress'),
}


# names added since, with their parameters (additions only: nothing above may change)
ADDED = {
    "SolverSettings": ('solver', 'rtol', 'atol', 'dt0', 'max_steps', 'stepsize_controller'),
    "SensingProblem": ('A', 'y', 'p', 'weight_decay', 'target'),
    "CompletionProblem": ('rows', 'cols', 'values', 'shape', 'p', 'weight_decay', 'target'),
    "sensing": "module",
    "first_passages": ('field', 'y0', 'levels', 't1', 'observable', 'settings', 'root_tol'),
    "gfs_sharpness": ('problem', 'layers', 't1', 'gtol', 'settings', 'iters'),
    "atlas": "module",
    "sgd": ('problem', 'layers0', 'eta', 'steps', 'batch', 'key', 'sampling', 'save_every'),
    "sgd_ensemble": ('problem', 'layers0', 'eta', 'steps', 'batch', 'keys', 'sampling', 'save_every'),
    "svag": ('problem', 'layers0', 'eta', 'steps', 'batch', 'key', 'ell', 'sampling', 'save_every'),
    "svag_ensemble": ('problem', 'layers0', 'eta', 'steps', 'batch', 'keys', 'ell', 'sampling', 'save_every'),
    "sme": ('problem', 'layers0', 'eta', 't1', 'batch', 'key', 'sampling', 'order', 'dt', 'ts', 'path'),
    "sme_ensemble": ('problem', 'layers0', 'eta', 't1', 'batch', 'keys', 'sampling', 'order', 'dt', 'ts', 'path'),
    "heavy_ball": ('problem', 'layers0', 'eta', 'beta', 'steps', 'save_every', 'start'),
    "heavy_ball_flow": ('problem', 'layers0', 'eta', 'beta', 't1', 'model', 'start', 'options'),
    "nesterov": ('problem', 'layers0', 'eta', 'beta', 'steps', 'save_every', 'start'),
    "nesterov_flow": ('problem', 'layers0', 'eta', 'beta', 't1', 'model', 'start', 'options'),
    "MomentumFlow": ('problem', 'eta', 'beta', 'model', 'method'),
    "adam_flow": ('problem', 'layers0', 'eta', 'beta1', 'beta2', 't1', 'eps', 'options'),
    "rmsprop_flow": ('problem', 'layers0', 'eta', 'decay', 't1', 'eps', 'initial_scale', 'model', 'options'),
    "AdamFlow": ('problem', 'a', 'b', 'eps', 'eta'),
    "RMSPropFlow": ('problem', 'b', 'eps', 'eta'),
    "RMSPropModifiedFlow": ('problem', 'b', 'eps', 'eta'),
    "AdamMemorylessFlow": ('problem', 'beta1', 'beta2', 'eps', 'eps_root', 'eta'),
    "AdamModifiedFlow": ('problem', 'beta1', 'beta2', 'eps', 'eps_root', 'eta'),
    "momentum": "module",
}
# parameters added since to callables above (after the old ones, before a **options, each with a default)
ADDED_KEYWORDS = {"solve": ("settings",), "central_flow": ("settings",), "compare": ("settings",),
                  "end_to_end_flow": ("state",), "EndToEndFlow": ("state", "rank"), "sme": ("resolution",),
                  "sme_ensemble": ("resolution",), "adam_flow": ("eps_root", "model"), "AdamFlow": ("eps_root",)}
# issue 40: the modules by their own names at the top level
TIERS = {"core": "module", "studies": "module", "paper": "module", "descent": "module", "integrate": "module",
         "measures": "module", "saddles": "module"}
# old names: importable until linflow 0.3 with a DeprecationWarning; name -> the new spelling
DEPRECATED = {**{n: f"linflow.fields.{n}" for n in (
    "network_gradient", "network_loss", "hessian_vector_product", "modified_field_1", "modified_field_2",
    "layer_field", "layer_gradients", "end_to_end_field", "claim2_field")},
    **{n: f"linflow.linalg.{n}" for n in (
        "psd_power", "psd_powers", "preconditioner", "apply_preconditioner", "preconditioner_eigenvalues")},
    "CentralFlow": "linflow.central.CentralFlow", "hessian_extremes": "linflow.curvature.hessian_extremes",
    "stochastic": "linflow.core.sgd", "sdes": "linflow.core.sme", "overview": "linflow.studies.overview",
    "section8": "linflow.paper.section8", "convnet": "linflow.paper.convnet",
    "trajectory": "linflow.core.trajectory", "passages": "linflow.core.passages", "gfs": "linflow.core.gfs"}


def _new_spelling(path: str):
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def type_checking_view() -> dict:
    """What linflow/__init__.py's TYPE_CHECKING block imports: name -> the module path it is imported from."""
    tree = ast.parse(pathlib.Path(linflow.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    view = {}
    for node in ast.walk(block):
        if isinstance(node, ast.ImportFrom):
            base = "linflow" + ("." + node.module if node.module else "")
            for alias in node.names:
                view[alias.asname or alias.name] = (base, alias.name)
    return view


def test_public_names_and_signatures():
    assert sorted(linflow.__all__) == sorted({**PUBLIC, **ADDED, **TIERS})
    for name, expected in {**PUBLIC, **ADDED, **TIERS}.items():
        obj = getattr(linflow, name)
        if expected == "module":
            assert inspect.ismodule(obj), name
        elif isinstance(expected, tuple):
            params = inspect.signature(obj).parameters
            added = ADDED_KEYWORDS.get(name, ())
            rest = ("options",) if expected[-1:] == ("options",) else ()
            assert tuple(params) == expected[: len(expected) - len(rest)] + added + rest, name
            for key in added:  # an old call still works: the new ones come after the old ones, with defaults
                assert params[key].default is not inspect.Parameter.empty, (name, key)
                assert params[key].kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        else:
            assert type(obj).__name__ == expected, name


def test_the_type_checkers_view_is_the_lazy_loading():
    view = type_checking_view()
    assert sorted(view) == sorted(linflow.__all__)
    for name, (module, attr) in view.items():
        owner = importlib.import_module(module)
        expected = getattr(owner, attr) if hasattr(owner, attr) else importlib.import_module(f"{module}.{attr}")
        assert getattr(linflow, name) is expected, name


@pytest.mark.parametrize("name", sorted(DEPRECATED))
def test_old_names_still_work_for_one_release_and_say_the_new_spelling(name):
    with pytest.warns(DeprecationWarning, match=DEPRECATED[name].replace(".", r"\.")):
        obj = getattr(linflow, name)
    assert obj is _new_spelling(DEPRECATED[name])
    assert name not in linflow.__all__ and name not in dir(linflow)


def test_the_api_names_warn_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in linflow.__all__:
            getattr(linflow, name)


def test_short_module_names_are_the_floors_modules():
    from linflow.core import problems
    from linflow.paper import reproduce
    from linflow.studies import comparison

    assert linflow.problems is problems and linflow.comparison is comparison and linflow.reproduce is reproduce
    assert linflow.compare is comparison.compare and linflow.Problem is problems.Problem


def test_dir_lists_the_api_not_the_modules_own_imports():
    names = dir(linflow)
    assert set(linflow.__all__) <= set(names) and "__version__" in names
    assert not {"os", "sys", "importlib", "TYPE_CHECKING", "annotations"} & set(names)
