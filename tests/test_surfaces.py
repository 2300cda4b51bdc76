"""What users touch first: import side effects, start-up, the public namespace, output formats."""

import math
import subprocess
import sys

import numpy as np
import pytest

import linflow
from linflow.core import catalog as _catalog
from linflow.core import files as _io
from linflow import init, problems
from conftest import strict_json


def run_python(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


@pytest.mark.slow
def test_importing_every_module_leaves_the_matplotlib_backend_alone():
    out = run_python(
        "import importlib, pkgutil, matplotlib\n"
        "matplotlib.use('svg')\n"
        "import linflow\n"
        "for m in pkgutil.walk_packages(linflow.__path__, 'linflow.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "import matplotlib.pyplot as plt\n"
        "print(matplotlib.get_backend())"
    )
    assert out.lower() == "svg"


def test_command_line_help_imports_no_numerical_library():
    out = run_python(
        "import sys\n"
        "from linflow import cli\n"
        "parser = cli.build_parser()\n"
        "parser.format_help()\n"
        "print(','.join(m for m in ('jax', 'numpy', 'xarray', 'matplotlib', 'scipy', 'diffrax') if m in sys.modules))"
    )
    assert out == ""


def test_help_texts_are_plain_text():
    for args in (["--help"], ["run", "--help"], ["compare", "--help"], ["accuracy", "--help"],
                 ["reproduce", "--help"], ["sweep", "--help"]):
        res = subprocess.run([sys.executable, "-m", "linflow", *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "``" not in res.stdout and ":func:" not in res.stdout and ":mod:" not in res.stdout, args
    assert "linflow run" in subprocess.run([sys.executable, "-m", "linflow", "run", "--help"], capture_output=True,
                                           text=True).stdout


@pytest.mark.parametrize("order", ["linflow first", "jax first"])
def test_float64_is_enabled_whichever_is_imported_first(order):
    first = "import linflow; import jax.numpy as jnp" if order == "linflow first" else \
        "import jax.numpy as jnp; import linflow"
    assert run_python(f"{first}; print(jnp.ones(2).dtype)") == "float64"


def test_public_namespace_is_lazy_and_complete():
    # lazy: importing linflow loads none of its floors; the first public name loads its module and no study
    out = run_python("import sys, linflow\n"
                     "floors = lambda: sorted({m.split('.')[1] for m in sys.modules if m.count('.') >= 1 and "
                     "m.startswith('linflow.')})\n"
                     "print(floors()); linflow.gradient_flow; print(floors())")
    assert out.splitlines() == ["[]", "['core']"]
    # complete: every public name is the object its module defines (tests/test_api.py lists the names)
    import importlib

    from test_api import type_checking_view

    for name, (module, attr) in type_checking_view().items():
        owner = importlib.import_module(module)
        expected = getattr(owner, attr) if hasattr(owner, attr) else importlib.import_module(f"{module}.{attr}")
        assert getattr(linflow, name) is expected, name
    assert "gradient_flow" in dir(linflow) and "plot" in dir(linflow)
    with pytest.raises(AttributeError, match="no attribute 'gradient_flw'"):
        linflow.gradient_flw  # noqa: B018


def test_the_command_line_catalog_matches_the_registries():
    from linflow import accuracy, integrate, reproduce

    assert set(_catalog.SOLVER_NAMES) == set(integrate.SOLVERS)
    assert list(_catalog.ACCURACY_CASES) == list(accuracy.CASES)
    assert set(_catalog.ACCURACY_SOLVERS) <= set(integrate.SOLVERS)
    assert list(_catalog.EXPERIMENTS) == list(reproduce.EXPERIMENTS)


def test_json_is_standard_nan_and_inf_become_null(tmp_path):
    path = _io.write_json({"a": math.nan, "b": [1.0, math.inf, -math.inf], "c": np.float64("nan"),
                           "d": np.array([1.5, np.nan]), "e": np.int64(3), "status": "why"}, tmp_path / "x.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert strict_json(path) == {"a": None, "b": [1.0, None, None], "c": None, "d": [1.5, None], "e": 3,
                                 "status": "why"}
    with pytest.raises(ValueError, match="not standard JSON"):
        (tmp_path / "bad.json").write_text('{"a": NaN}')
        strict_json(tmp_path / "bad.json")


def test_to_xarray_names_each_dimension_once():
    prob = problems.synthetic(m=50, d=4)
    layers = init.balanced((4, 3, 2, 1), 0.3, seed=0)
    ds = linflow.gradient_descent(prob, layers, 0.1, 5).to_xarray()
    assert ds.end_to_end.dims == ("t", "n3", "n0")
    assert ds.W1.dims == ("t", "n1", "n0") and ds.W3.dims == ("t", "n3", "n2")
    assert ds.sizes == {"t": 6, "n0": 4, "n1": 3, "n2": 2, "n3": 1}
    # one name per dimension: W_e = W3 W2 W1 computed with xarray's named-dimension products
    w21 = (ds.W2.rename(n1="k") * ds.W1.rename(n1="k")).sum("k")
    w321 = (ds.W3.rename(n2="k") * w21.rename(n2="k")).sum("k")
    np.testing.assert_allclose(w321.transpose("t", "n3", "n0").values, ds.end_to_end.values, rtol=1e-12)


@pytest.mark.slow  # seconds (measured 3.4-7.7 s): the full command only (the fast tier's 3 minutes)
def test_the_command_line_keeps_compiled_code_in_a_persistent_cache(tmp_path):
    env = {**__import__("os").environ, "LINFLOW_CACHE": str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    code = ("import jax, jax.numpy as jnp\n"
            "from linflow import cli\n"
            "folder = cli.compilation_cache()\n"
            "jax.jit(lambda x: jnp.sin(x) * 2)(jnp.ones(3)).block_until_ready()\n"
            "print(folder)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    folder = tmp_path / "cache" / "jax"
    assert res.stdout.strip() == str(folder) and any(folder.iterdir())
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**env, "LINFLOW_COMPILATION_CACHE": "0"})
    assert off.returncode == 0 and off.stdout.strip() == "None"
