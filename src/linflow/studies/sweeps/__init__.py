"""Parameter sweeps: declarative grids, resumable stores, local or Dask execution.

A sweep runs one *task* (``run``, ``compare``, ``accuracy`` or ``regime``) at every point of a grid (the product
of its axes) and collects scalar results into an ``xarray.Dataset`` with one dimension per axis.

The store is a folder:

* ``points/<index>.json``: one file per finished grid point (its parameters, results, status and
  reason of failure), each written atomically: a sweep killed at any moment (``kill -9`` included)
  loses at most the points in flight;
* ``result.nc``: the assembled Dataset (NaN where a point is not done or failed), rewritten
  atomically every ``flush_every`` seconds (10 by default) and at the end, so xarray can read it while
  the sweep grows; :func:`load` assembles the store as it is at any moment. A point costs one small
  file write whatever the number of finished points (the records are read once, at the start);
* ``sweep.json``: the grid, the fixed parameters and the task (a restart must match them).

Starting the same sweep again computes only the missing points and ends with the same store as an
uninterrupted run. A point that fails (divergence, a solver failure, bad parameters) is recorded
with its reason and does not stop the rest. Executors: ``local`` (in-process, one point after
another, or on a pool of ``n_workers`` spawned processes) or ``dask`` (``dask.distributed``: a
``LocalCluster`` by default, or any scheduler address).
The same grid gives the same numbers, bit for bit, on both. Points that differ only along a task's
batch axis (:data:`BATCH_AXIS`: ``eta`` for ``run``, ``eta_ratio`` for ``regime``) run as one batch: the
work they share once (``run``: one :func:`linflow.studies.overview.overview` of all the batch's etas; ``regime``: the gradient
flow and ``eta_crit``), then each point (:func:`run_points`).
"""

from .config import PARAMETERS, TASK_DEFAULTS, TASKS, load_config, validate
from .executors import sweep
from .figures import phase_diagram, regime_diagram
from .store import load
from .table import table
from .tasks import BATCH_AXIS, run_grid, run_point, run_points
from ...core.catalog import INITS, PROBLEMS

__all__ = ["sweep", "load", "load_config", "validate", "run_point", "run_points", "run_grid", "BATCH_AXIS", "PARAMETERS",
           "TASK_DEFAULTS",
           "TASKS", "PROBLEMS", "INITS", "phase_diagram", "regime_diagram", "table"]
