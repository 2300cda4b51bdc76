r"""Independent runs over the machine's cores: a batch of runs (an eta grid, an ensemble of seeds or keys, many
starts) split across JAX's CPU devices, one run per core at a time.

A batched run is ``jax.vmap`` of one run over a leading axis. :func:`spread` shards that axis over the devices
(``jax.shard_map`` of the ``vmap``: each device runs its share as one vmapped program, on one thread); with one device
it is the ``vmap`` itself. Each member's arithmetic is the same whichever device runs it, so a spread batch equals the
vmapped one member for member (to the last bit on the runs compared, ``tests/test_parallel.py``). Splitting a batch
of adaptive solves also cuts the lock-step waste of a vmapped while loop: each device's share stops with its own
slowest member, not the whole batch's.

The devices are set when linflow is imported before JAX: ``LINFLOW_CORES`` (default: the cores this process may run
on) CPU devices, each computing on one thread (XLA's intra-op thread pool off: two threads per small operation
contend, measured slower; ``benchmarks/cores.py``). ``LINFLOW_CORES=1`` keeps JAX's single CPU device and its
thread pool. Where JAX was imported first, its own setting stands and :func:`spread` uses the devices it has.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

__all__ = ["spread", "spread_map", "spread_calls", "cores"]

_AXIS = "runs"


def cores() -> int:
    """How many devices :func:`spread` splits a batch over (JAX's devices of the default backend)."""
    return len(jax.devices())


def spread(run, batch):
    r"""``jax.vmap(run)(batch)``, with the batch's leading axis split over the devices.

    ``batch`` is a pytree whose leaves share a leading axis of length $n$; a batch that the device count does not
    divide is padded with copies of its last member, whose results are dropped. Works under ``jax.jit`` (and is
    traced once per shape there)."""
    leaves = jax.tree_util.tree_leaves(batch)
    n = int(leaves[0].shape[0])
    devices = jax.devices()
    k = min(len(devices), n)
    if k < 2:
        return jax.vmap(run)(batch)
    pad = (-n) % k
    if pad:
        batch = jax.tree_util.tree_map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), batch)
    mesh = Mesh(np.asarray(devices[:k]), (_AXIS,))
    out = jax.shard_map(jax.vmap(run), mesh=mesh, in_specs=PartitionSpec(_AXIS), out_specs=PartitionSpec(_AXIS),
                        check_vma=False)(batch)
    return jax.tree_util.tree_map(lambda a: a[:n], out) if pad else out


def spread_map(run, batch):
    r"""``jax.lax.map(run, batch)``, the members dealt round-robin over the devices, each device mapping over its own
    share one member after another (runs of different lengths, e.g. GD at etas with their own step counts, share the
    work evenly; each member is computed by the same program as in ``lax.map``)."""
    leaves = jax.tree_util.tree_leaves(batch)
    n = int(leaves[0].shape[0])
    devices = jax.devices()
    k = min(len(devices), n)
    if k < 2:
        return jax.lax.map(run, batch)
    m = -(-n // k)
    order = np.arange(m * k).reshape(m, k).T.ravel()  # device j gets members j, j + k, j + 2k, ...
    order = np.minimum(order, n - 1)  # padding: copies of the last member, dropped below
    dealt = jax.tree_util.tree_map(lambda a: a[order], batch)
    mesh = Mesh(np.asarray(devices[:k]), (_AXIS,))
    out = jax.shard_map(lambda b: jax.lax.map(run, b), mesh=mesh, in_specs=PartitionSpec(_AXIS),
                        out_specs=PartitionSpec(_AXIS), check_vma=False)(dealt)
    back = np.argsort(np.arange(m * k).reshape(m, k).T.ravel())[:n]  # position of member i in the dealt order
    return jax.tree_util.tree_map(lambda a: a[back], out)


def spread_calls(member, batch, *args, **kwargs):
    r"""``[member(b, *args, **kwargs) for b in batch]`` as one compiled program, the batch spread over the devices
    (:func:`spread`): the batched runs of the public API (an eta grid, an ensemble of keys, many starts).

    ``member`` is a module-level function (compiled once per shapes and static options, by its identity); Python
    floats among the options travel as float64 arrays, so a new value (a horizon, a tolerance) does not recompile."""
    args, kwargs = jax.tree_util.tree_map(_traced_float, (args, kwargs))
    return _spread_jit(member, batch, args, kwargs)


def _traced_float(x):
    return jnp.asarray(x, jnp.float64) if isinstance(x, float) else x


@eqx.filter_jit
def _spread_jit(member, batch, args, kwargs):
    return spread(lambda b: member(b, *args, **kwargs), batch)
