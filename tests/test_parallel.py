"""Independent runs over the cores (linflow.core.parallel): a batch spread over two CPU devices equals the vmapped
batch member for member, padding included; the device count follows LINFLOW_CORES. The suite's own processes keep
one device (tests/conftest.py): the two-device checks run in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linflow.core import parallel

SCRIPT = textwrap.dedent('''
    import json
    import jax  # imported first, as users do: linflow still sets the devices before JAX starts its backends
    import jax.numpy as jnp, numpy as np
    import linflow
    from linflow import init, problems
    from linflow.core import parallel

    def gap(a, b):
        return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))

    out = {"devices": len(jax.devices()), "cores": parallel.cores()}
    p = problems.synthetic(m=64, d=4, seed=1)
    layers = init.balanced((4, 3, 3, 1), 0.4, seed=0)
    etas = [0.01, 0.02, 0.05, 0.1, 2.0]  # five over two devices: one padded member; the last diverges
    runs = linflow.gradient_descents(p, layers, etas, 200, save_every=20)
    vm = jax.vmap(lambda e: linflow.gradient_descent(p, layers, e, 200, save_every=20))(jnp.asarray(etas)).unstack()
    out["gd_vs_vmap"] = max(gap(a.end_to_end, b.end_to_end) for a, b in zip(runs, vm))
    out["gd_status"] = [r.status for r in runs] == [r.status for r in vm]
    out["gd_diverged"] = runs[-1].status
    starts = [init.balanced((4, 3, 3, 1), s, seed=k) for k, s in enumerate((0.2, 0.4, 0.6))]
    flows = linflow.gradient_flows(p, starts, 5.0, n_save=6)
    single = [linflow.gradient_flow(p, s, 5.0, n_save=6) for s in starts]
    out["flow_vs_single"] = max(gap(a.end_to_end, b.end_to_end) for a, b in zip(flows, single))
    out["flow_steps"] = [int(a.stats["num_steps"]) for a in flows] == [int(b.stats["num_steps"]) for b in single]
    keys = jax.random.split(jax.random.PRNGKey(3), 7)
    ens = linflow.sgd_ensemble(p, layers, 0.05, 30, batch=8, keys=keys, save_every=10)
    one = [linflow.sgd(p, layers, 0.05, 30, batch=8, key=k, save_every=10) for k in keys]
    out["sgd_vs_single"] = max(gap(ens.end_to_end[i], r.end_to_end) for i, r in enumerate(one))
    from linflow.core import descent
    from linflow.core.fields import LayerFlow
    rule = descent.EulerRule(LayerFlow(p))
    grid = [0.2, 0.1, 0.05, 0.025, 0.02]  # dealt round-robin over two devices, one padded member
    mapped = descent.descend_on_grid(rule, layers, grid, 2.0, 11)
    each = [descent.descend(rule, layers, e, round(2.0 / e), save_every=round(0.2 / e)) for e in grid]
    out["map_vs_single"] = max(gap(a.end_to_end, b.end_to_end) for a, b in zip(mapped, each))
    out["map_times"] = [float(a.ts[-1]) for a in mapped]

    def flow(start):  # a Python-level task around a compiled solve; says which device computed it
        run = linflow.gradient_flow(p, start, 5.0, n_save=6)
        return np.asarray(run.end_to_end), int(run.stats["num_steps"]), run.end_to_end.devices().pop().id
    tasks = parallel.spread_tasks(flow, starts * 2)
    out["tasks_vs_single"] = max(gap(a[0], b.end_to_end) for a, b in zip(tasks, single * 2))
    out["tasks_steps"] = [a[1] for a in tasks] == [int(b.stats["num_steps"]) for b in single * 2]
    out["tasks_devices"] = sorted({a[2] for a in tasks})
    print(json.dumps(out))
''')


def _run(cores: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"} | {"LINFLOW_CORES": cores}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh process: about 9 s
def test_two_cores_give_the_vmapped_batch_member_for_member():
    out = _run("2")
    assert (out["devices"], out["cores"]) == (2, 2)
    assert out["gd_vs_vmap"] == 0.0 and out["gd_status"] and out["gd_diverged"] == "diverged"
    assert out["sgd_vs_single"] == 0.0  # every key's path, to the last bit
    assert out["flow_vs_single"] <= 1e-14 and out["flow_steps"]  # each start keeps its own adaptive steps
    assert out["map_vs_single"] == 0.0 and out["map_times"] == [2.0] * 5  # lax.map's members, dealt over devices
    # Python-level tasks, one thread per device: the same numbers, both devices used
    assert out["tasks_vs_single"] == 0.0 and out["tasks_steps"] and out["tasks_devices"] == [0, 1]


def test_spread_tasks_on_one_device_is_the_loop_in_order():
    finished = []
    assert parallel.spread_tasks(lambda x: x * x, [3, 1, 2], done=finished.append) == [9, 1, 4]
    assert finished == [0, 1, 2]


def test_a_failed_task_raises_its_own_error():
    def task(x):
        if x == 2:
            raise ValueError("job 2 failed")
        return x

    with pytest.raises(ValueError, match="job 2 failed"):
        parallel.spread_tasks(task, [1, 2, 3])


def test_one_core_keeps_one_device():
    """The suite's processes run with LINFLOW_CORES=1 (tests/conftest.py): JAX keeps its one CPU device."""
    assert os.environ["LINFLOW_CORES"] == "1" and parallel.cores() == len(jax.devices()) == 1


def test_spread_map_is_lax_map():
    xs = jnp.arange(5.0)
    np.testing.assert_array_equal(parallel.spread_map(lambda x: x**3 - x, xs), jax.lax.map(lambda x: x**3 - x, xs))


def test_spread_pads_a_batch_and_drops_the_padding():
    def run(x):
        return {"square": x**2, "pair": jnp.stack([x, -x])}

    xs = jnp.arange(5.0)
    out = parallel.spread(run, xs)
    ref = jax.vmap(run)(xs)
    np.testing.assert_array_equal(out["square"], ref["square"])
    np.testing.assert_array_equal(out["pair"], ref["pair"])
    assert parallel.cores() == len(jax.devices())
