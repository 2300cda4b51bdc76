"""Shared fixtures: small problems whose values are known independently of linflow's code.

Set-up of the test process (before JAX is imported): the test process, its subprocesses and the
notebook kernels share one persistent compilation cache for the run. It serves the small computations
only: a diffrax solve carries equinox's runtime checks (host callbacks), which JAX does not cache
(docs/guide/performance.md; with EQX_ON_ERROR=nan they would be cached, and the suite measured 9% slower).
"""

import atexit
import contextlib
import os
import shutil
import tempfile

_cache = tempfile.mkdtemp(prefix="linflow-tests-jax-cache-")
atexit.register(shutil.rmtree, _cache, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# one CPU device per process (JAX's default): the suite's two workers already hold the two cores;
# tests/test_parallel.py spreads over two devices in a process of its own
os.environ.setdefault("LINFLOW_CORES", "1")
# The suite is dominated by XLA compilation of many small computations, not by running them: LLVM's
# expensive optimization passes are skipped (about 25% less compile time measured) and XLA:CPU's older
# elemental emitters replace its fusion emitters (a diffrax solve compiles in 0.9 s instead of 1.6-2.0 s;
# tests/test_flows.py 199 -> 147 s). Numerics are unchanged (bit for bit on the runs compared; XLA's CPU
# fast-math stays off). Each process computes on one thread (XLA's Eigen pool off: the recipe of jax-ml/jax#743):
# the suite runs two workers, often beside notebook kernels, on two cores, and two processes each spreading over
# both cores run slower than two single-threaded ones (notebooks 04 and 03 side by side: 81 -> 72 s, measured).
# Users' runs keep XLA's defaults.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true --xla_cpu_use_fusion_emitters=false "
    "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings as _hypothesis  # noqa: E402

# Property tests (tests/test_properties.py): "fast" in the README's test command (a fixed set of examples: the same
# every run), "long" for a search (--hypothesis-profile=long, or LINFLOW_HYPOTHESIS_PROFILE=long). Each test asks
# for budget(n) examples: n in the fast profile, 25 n in the long one.
_hypothesis.register_profile("fast", max_examples=1, derandomize=True, deadline=None, print_blob=True)
_hypothesis.register_profile("long", max_examples=25, derandomize=False, deadline=None, print_blob=True)
_hypothesis.load_profile(os.environ.get("LINFLOW_HYPOTHESIS_PROFILE", "fast"))


def budget(n: int) -> int:
    """The examples a property test runs: ``n`` times the loaded profile's ``max_examples`` (1 fast, 25 long)."""
    return max(1, n * _hypothesis.default.max_examples)

import linflow  # noqa: F401, E402  (enables float64 before any array is made)
from linflow import problems  # noqa: E402


#: The files that run first, in this order: the README's command gives each worker a whole file at a time, in the
#: order collected, so the heaviest go first and the light ones fill in at the end (the two workers finish together
#: instead of one idling through a last heavy file). Seconds per file measured in a full run (2-core machine,
#: --durations=0, 2026-12-07), heaviest first, except notebook 04: it reruns two of test_reproduce's quick experiments
#: (fig2, section6; fig3's full run it reads from docs/results) and goes after it, so that it reads their compiled code
#: from the shared cache (side by side, both compiling, fig3's quick run took 79 s instead of 34 and the notebook 94 s
#: instead of 55). Files not listed keep their order after
#: these. Order only: no test depends on it.
FIRST = (
    "tests/test_reproduce.py", "tests/test_flows.py", "notebooks/08_sgd_and_its_sde.ipynb", "tests/test_sweeps.py",
    "tests/test_central.py", "notebooks/04_paper_experiments.ipynb", "tests/test_benchmarks.py",
    "tests/test_stochastic_study.py", "tests/test_properties.py", "tests/test_math_pages.py", "tests/test_composable.py",
    "notebooks/03_from_descent_to_flow.ipynb", "tests/test_saddles.py", "tests/test_cli.py", "tests/test_accuracy.py",
    "tests/test_sgd.py", "tests/test_compare.py", "notebooks/05_small_initialization.ipynb",
    "notebooks/02_solver_accuracy.ipynb", "notebooks/09_momentum_and_adam.ipynb", "tests/test_explorables.py",
    "tests/test_atlas.py",
    "notebooks/06_past_the_threshold.ipynb", "tests/test_sensing.py", "tests/test_settings.py", "tests/test_section8.py",
    "tests/test_faults.py", "tests/test_achl19.py", "notebooks/01_quickstart.ipynb", "tests/test_curvature.py",
)


#: doctests of seconds (a solve each): ``slow`` like the notebooks (central_flow's: 7.8 s measured)
SLOW_DOCTESTS = ("linflow.core.central.central_flow",)


def pytest_collection_modifyitems(config, items):
    """The notebooks run whole (nbmake) and :data:`SLOW_DOCTESTS`: each is ``slow``, left out of the fast tier
    (``-m "not slow"``). The files run heaviest first (:data:`FIRST`)."""
    for item in items:
        if str(item.fspath).endswith(".ipynb") or item.nodeid.split("::")[-1] in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(FIRST)))


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures made by a test are closed after it (pyplot keeps every open figure alive)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


RSS_LIMIT = 1.2e9  # bytes: above this after a test module, JAX's in-memory caches are emptied


def _rss() -> float:
    with open("/proc/self/status") as fh:
        return next((float(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:")), 0.0)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """JAX keeps every compiled computation: over the whole suite one process grows to several GB. After
    a module that leaves it above RSS_LIMIT the caches are emptied (recompiling is cheaper than never
    freeing: the persistent cache above serves the XLA part again)."""
    yield
    if not os.path.exists("/proc/self/status") or _rss() < RSS_LIMIT:
        return
    import ctypes
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    try:  # hand the freed heap back to the system (glibc keeps it otherwise, and RSS never falls)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def small_regression(m=40, d=5, k=1, p=2.0, weight_decay=0.0, seed=0):
    """A generic regression problem with unequal feature scales."""
    r = np.random.default_rng(seed)
    X = r.standard_normal((m, d)) * np.linspace(1.0, 0.3, d)
    Y = r.standard_normal((m, k))
    return problems.Problem(X, Y, p=p, weight_decay=weight_decay)


def loss_numpy(X, Y, W, p):
    """Independent lp loss: (1/m) sum_i (1/p) sum_c |(W x_i - y_i)_c|^p."""
    R = X @ W.T - Y
    return np.sum(np.abs(R) ** p) / (p * X.shape[0])


def grad_numpy(X, Y, W, p):
    R = X @ W.T - Y
    return (np.sign(R) * np.abs(R) ** (p - 1)).T @ X / X.shape[0]


def central_difference(f, x, h=1e-6):
    """Numerical gradient of a scalar function of a matrix."""
    x = np.array(x, dtype=float)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def strict_json(path):
    """Parse a JSON file as a strict reader does: NaN, Infinity and -Infinity are not JSON."""
    import json
    from pathlib import Path

    def reject(token):
        raise ValueError(f"{path}: {token} is not standard JSON")

    return json.loads(Path(path).read_text(), parse_constant=reject)


@contextlib.contextmanager
def traces():
    """The names of the functions JAX traces for ``jit`` inside the block, from ``jax.monitoring``'s public trace
    event: a call that reuses its compiled computation traces nothing (counts compilations without reading a
    private cache)."""
    import jax

    names = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            names.append(kwargs.get("fun_name", ""))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
