r"""Independent runs over the machine's cores: a batch of runs (an eta grid, an ensemble of seeds or keys, many
starts) split across JAX's CPU devices, one run per core at a time.

A batched run is ``jax.vmap`` of one run over a leading axis. :func:`spread` deals that axis over the devices
(``jax.shard_map`` of the ``vmap``: each device runs its share as one vmapped program, on one thread); with one device
it is the ``vmap`` itself. :func:`spread_map` does the same for ``jax.lax.map``; :func:`spread_tasks` runs Python-level
tasks (loops around compiled solves) one thread per device. Each member's arithmetic is the
same whichever device runs it, so a spread batch equals the vmapped one member for member (to the last bit on the
runs compared, ``tests/test_parallel.py``). Splitting a batch of adaptive solves also cuts the lock-step waste of a
vmapped while loop: each device's share stops with its own slowest member, not the whole batch's.

The devices are set when linflow is imported before JAX: ``LINFLOW_CORES`` (default: the cores this process may run
on) CPU devices, each computing on one thread (XLA's intra-op thread pool off: two threads per small operation
contend, measured slower; ``benchmarks/cores.py``). ``LINFLOW_CORES=1`` keeps JAX's single CPU device and its
thread pool. Where JAX was imported first, its own setting stands and :func:`spread` uses the devices it has.
"""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor, as_completed

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

__all__ = ["spread", "spread_map", "spread_calls", "spread_tasks", "cores"]

_AXIS = "runs"


def cores() -> int:
    """How many devices :func:`spread` splits a batch over (JAX's devices of the default backend)."""
    return len(jax.devices())


def spread(run, batch):
    r"""``jax.vmap(run)(batch)``, with the batch split over the devices in contiguous shares (:func:`_dealt`), each
    device running its share as one vmapped program (neighbouring members, e.g. starts of similar scale, lock-step
    together: 18.2% of a batch of 32 flows' steps wasted in two contiguous shares, 22.9% dealt round-robin).

    ``batch`` is a pytree whose leaves share a leading axis of length $n$. Works under ``jax.jit`` (and is traced
    once per shape there)."""
    return _dealt(jax.vmap(run), batch, contiguous=True)


def spread_map(run, batch):
    r"""``jax.lax.map(run, batch)``, the members dealt over the devices (:func:`_dealt`), each device mapping over its
    own share one member after another (runs of different lengths, e.g. GD at etas with their own step counts, share
    the work evenly; each member is computed by the same program as in ``lax.map``)."""
    return _dealt(lambda share: jax.lax.map(run, share), batch, contiguous=False)


def _dealt(run_share, batch, *, contiguous: bool):
    """``run_share(batch)`` with the members split over the ``k`` devices, in contiguous shares or dealt round-robin
    (device ``j`` gets members ``j``, ``j + k``, ``j + 2k``, ...), a batch that ``k`` does not divide padded with
    copies of its last member, whose results are dropped; the results put back in order. ``run_share`` itself on one
    device."""
    n = int(jax.tree_util.tree_leaves(batch)[0].shape[0])
    devices = jax.devices()
    k = min(len(devices), n)
    if k < 2:
        return run_share(batch)
    m = -(-n // k)
    # position p of the split batch holds member dealt[p]
    dealt = np.arange(m * k) if contiguous else np.arange(m * k).reshape(m, k).T.ravel()
    shares = jax.tree_util.tree_map(lambda a: a[np.minimum(dealt, n - 1)], batch)
    mesh = Mesh(np.asarray(devices[:k]), (_AXIS,))
    out = jax.shard_map(run_share, mesh=mesh, in_specs=PartitionSpec(_AXIS), out_specs=PartitionSpec(_AXIS),
                        check_vma=False)(shares)
    back = np.argsort(dealt)[:n]  # where member i sits in the dealt batch
    return jax.tree_util.tree_map(lambda a: a[back], out)


def spread_calls(member, batch, *args, **kwargs):
    r"""``[member(b, *args, **kwargs) for b in batch]`` as one compiled program, the batch spread over the devices
    (:func:`spread`): the batched runs of the public API (an eta grid, an ensemble of keys, many starts).

    ``member`` is a module-level function (compiled once per shapes and static options, by its identity); Python
    floats among the options travel as float64 arrays, so a new value (a horizon, a tolerance) does not recompile."""
    args, kwargs = jax.tree_util.tree_map(_traced_float, (args, kwargs))
    return _spread_jit(member, batch, args, kwargs)


def spread_tasks(task, jobs, done=None) -> list:
    r"""``[task(job) for job in jobs]`` for tasks that are Python loops around compiled runs (an adaptive solve
    continued by another solver, a run read between passages): one thread per device, each task computed on the
    device its thread holds (``jax.default_device``), the next job taken by whichever device is free, so tasks of
    very different lengths share the cores (jobs listed longest first finish soonest). Each task's arithmetic is the
    same program whichever device runs it: the results equal the sequential ones to the last bit. ``done(i)`` is
    called (in the calling thread) as job ``i`` finishes; one device: the plain loop, in order."""
    jobs = list(jobs)
    devices = jax.devices()
    if len(devices) < 2 or len(jobs) < 2:
        out = []
        for i, job in enumerate(jobs):
            out.append(task(job))
            if done is not None:
                done(i)
        return out
    free: queue.SimpleQueue = queue.SimpleQueue()
    for device in devices:
        free.put(device)

    def on_a_free_device(job):
        device = free.get()
        try:
            with jax.default_device(device):
                return task(job)
        finally:
            free.put(device)

    with ThreadPoolExecutor(len(devices)) as pool:
        futures = {pool.submit(on_a_free_device, job): i for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                future.result()  # a failed task raises here, at once
                if done is not None:
                    done(futures[future])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return [future.result() for future in futures]


def _traced_float(x):
    return jnp.asarray(x, jnp.float64) if isinstance(x, float) else x


@eqx.filter_jit
def _spread_jit(member, batch, args, kwargs):
    return spread(lambda b: member(b, *args, **kwargs), batch)
