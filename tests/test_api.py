"""The public API (issue 26: the restructuring changes no public name): every name of ``linflow.__all__`` as it
stood before the floors, with the parameters of each callable, stays importable from ``linflow``."""

import inspect

import linflow

# name -> "module", a type name, or the callable's parameter names (listed from the pre-restructuring tree)
PUBLIC = {
    "CentralFlow": ('problem', 'eta', 'unstable'),
    "EndToEndFlow": ('problem', 'depth', 'form'),
    "LayerFlow": ('problem',),
    "ModifiedFlow": ('problem', 'eta', 'order'),
    "Problem": ('X', 'Y', 'p', 'weight_decay'),
    "SOLVERS": "dict",
    "STATUSES": "tuple",
    "Trajectory": ('ts', 'end_to_end', 'loss', 'layers', 'imbalance', 'result', 'stop', 'stats', 'eta', 't1',
        'extras', 'kind', 'depth', 'solver'),
    "accuracy": "module",
    "apply_preconditioner": ('W', 'G', 'depth'),
    "balancedness": ('layers',),
    "catapult": "module",
    "central": "module",
    "central_flow": ('problem', 'layers0', 'eta', 't1', 'ts', 'n_save', 'solver', 'rtol', 'atol', 'max_steps',
        'max_switches'),
    "claim2_field": ('problem', 'W', 'depth'),
    "compare": ('problem', 'layers0', 'etas', 't1', 'points', 'tol', 'orders', 'solver', 'rtol', 'atol', 'max_steps',
        'modified_max_steps', 'lanczos_iters', 'central', 'curvature', 'progress'),
    "comparison": "module",
    "convnet": "module",
    "curvature": "module",
    "datasets": "module",
    "end_to_end": ('layers',),
    "end_to_end_descent": ('problem', 'W_e0', 'depth', 'eta', 'steps', 'save_every', 'form'),
    "end_to_end_field": ('problem', 'W', 'depth'),
    "end_to_end_flow": ('problem', 'W_e0', 'depth', 't1', 'form', 'options'),
    "exact": "module",
    "fields": "module",
    "gradient_descent": ('problem', 'layers0', 'eta', 'steps', 'save_every'),
    "gradient_descents": ('problem', 'layers0', 'etas', 'steps', 'save_every'),
    "gradient_flow": ('problem', 'layers0', 't1', 'options'),
    "gradient_flows": ('problem', 'layers0s', 't1', 'options'),
    "hessian_extremes": ('problem', 'layers', 'iters'),
    "hessian_vector_product": ('problem', 'layers', 'v'),
    "imbalance": ('layers',),
    "init": "module",
    "layer_field": ('problem', 'layers', 'depth'),
    "layer_gradients": ('problem', 'layers'),
    "linalg": "module",
    "modified_field_1": ('args', 'layers', 'depth'),
    "modified_field_2": ('args', 'layers', 'depth'),
    "modified_flow": ('problem', 'layers0', 'eta', 't1', 'order', 'options'),
    "network_gradient": ('problem', 'layers'),
    "network_loss": ('problem', 'layers'),
    "optax_descent": ('problem', 'layers0', 'optimizer', 'learning_rate', 'steps', 'save_every'),
    "optax_descents": ('problem', 'layers0', 'optimizer', 'learning_rates', 'steps', 'save_every'),
    "plot": "module",
    "preconditioner": ('W', 'depth'),
    "preconditioner_eigenvalues": ('W', 'depth'),
    "problems": "module",
    "psd_power": ('A', 'q'),
    "psd_powers": ('A', 'exponents'),
    "reproduce": "module",
    "section8": "module",
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
    "stochastic": "module",
    "sgd": ('problem', 'layers0', 'eta', 'steps', 'batch', 'key', 'sampling', 'save_every'),
    "sgd_ensemble": ('problem', 'layers0', 'eta', 'steps', 'batch', 'keys', 'sampling', 'save_every'),
    "svag": ('problem', 'layers0', 'eta', 'steps', 'batch', 'key', 'ell', 'sampling', 'save_every'),
    "svag_ensemble": ('problem', 'layers0', 'eta', 'steps', 'batch', 'keys', 'ell', 'sampling', 'save_every'),
    "sdes": "module",
    "sme": ('problem', 'layers0', 'eta', 't1', 'batch', 'key', 'sampling', 'order', 'dt', 'ts', 'path'),
    "sme_ensemble": ('problem', 'layers0', 'eta', 't1', 'batch', 'keys', 'sampling', 'order', 'dt', 'ts', 'path'),
}
# parameters added since to callables above (after the old ones, before a **options, each with a default)
ADDED_KEYWORDS = {"solve": ("settings",), "central_flow": ("settings",), "compare": ("settings",),
                  "end_to_end_flow": ("state",), "EndToEndFlow": ("state", "rank"), "sme": ("resolution",),
                  "sme_ensemble": ("resolution",), "apply_preconditioner": ("rank",),
                  "end_to_end_field": ("rank",)}


def test_public_names_and_signatures_are_unchanged():
    assert sorted(linflow.__all__) == sorted({**PUBLIC, **ADDED})
    for name, expected in {**PUBLIC, **ADDED}.items():
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
