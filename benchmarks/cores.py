"""Independent runs on both cores against one (issue 41): each workload in a fresh process, once pinned to one core
with one device (``taskset -c 0``, ``LINFLOW_CORES=1``) and once free on every core (``LINFLOW_CORES`` unset: one
device per core), warm minimum of 3 calls each, ratios within this run; and the wasted-step fraction of the 32 flows
(``sum_i (N_max - N_i) / (n N_max)`` over a lock-stepped batch: one batch on one device, one share per device).

``python -m benchmarks.cores [--quick]`` prints a table and writes ``benchmarks/cores.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

WORKLOADS = {
    "gd16": "an eta grid: 16 GD runs, d = 16, depth 3, 2,000 steps",
    "sgd1024": "an ensemble: 1,024 SGD paths, m = 512, d = 16, depth 3, B = 32, 200 steps",
    "flow32": "32 small flows (d = 16, depth 3, Tsit5, t1 = 20) from 32 start scales",
}

CHILD = textwrap.dedent('''
    import json, sys, time
    import linflow, jax, jax.numpy as jnp, numpy as np
    from linflow import init, problems
    quick = sys.argv[1] == "quick"
    prob = problems.synthetic(m=512, d=16, seed=0)
    layers = init.balanced((16, 16, 16, 1), 0.3, seed=0)
    n_gd, steps = (16, 400) if quick else (16, 2000)
    n_sgd, sgd_steps = (128, 50) if quick else (1024, 200)
    etas = list(np.linspace(0.005, 0.08, n_gd))
    keys = jax.random.split(jax.random.PRNGKey(0), n_sgd)
    starts = tuple(jnp.stack([s * w for s in np.linspace(0.3, 1.5, 32)]) for w in layers)
    calls = {
        "gd16": lambda: [r.loss for r in linflow.gradient_descents(prob, layers, etas, steps, save_every=100)],
        "sgd1024": lambda: linflow.sgd_ensemble(prob, layers, 0.02, sgd_steps, batch=32, keys=keys, save_every=10).loss,
        "flow32": lambda: [r.loss for r in linflow.gradient_flows(prob, starts, 20.0, n_save=11)],
    }
    out = {"devices": len(jax.devices())}
    for name, call in calls.items():
        jax.block_until_ready(call())
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            jax.block_until_ready(call())
            times.append(time.perf_counter() - t0)
        out[name] = min(times)
    flows = linflow.gradient_flows(prob, starts, 20.0, n_save=11)
    out["flow_steps"] = [int(r.stats["num_steps"]) for r in flows]
    print(json.dumps(out))
''')


def _child(pinned: bool, quick: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS", "LINFLOW_CORES")}
    cmd = [sys.executable, "-c", CHILD, "quick" if quick else "full"]
    if pinned:
        env["LINFLOW_CORES"] = "1"
        cmd = ["taskset", "-c", "0", *cmd]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def wasted_fraction(steps, shares: int) -> float:
    """``sum_i (N_max - N_i) / (n N_max)`` with ``N_max`` the largest count of each member's share (members split in
    ``shares`` contiguous shares, as :func:`linflow.core.parallel.spread` splits them)."""
    steps = [int(s) for s in steps]
    size = -(-len(steps) // shares)
    waste = total = 0
    for i in range(0, len(steps), size):
        part = steps[i:i + size]
        waste += sum(max(part) - s for s in part)
        total += len(part) * max(part)
    return waste / total


def main(quick: bool = False) -> dict:
    one, both = _child(True, quick), _child(False, quick)
    rows = {name: {"what": what, "one_core_s": one[name], "all_cores_s": both[name],
                   "speedup": one[name] / both[name]} for name, what in WORKLOADS.items()}
    result = {"cores": both["devices"], "workloads": rows,
              "wasted_step_fraction": {"one batch": wasted_fraction(one["flow_steps"], 1),
                                       f"{both['devices']} shares": wasted_fraction(both["flow_steps"], both["devices"])}}
    print(f"devices free: {both['devices']} (pinned: {one['devices']})")
    for name, row in rows.items():
        print(f"{name:>8}  one core {row['one_core_s'] * 1e3:8.1f} ms   all cores {row['all_cores_s'] * 1e3:8.1f} ms   "
              f"{row['speedup']:.2f}x   ({row['what']})")
    for k, v in result["wasted_step_fraction"].items():
        print(f"wasted-step fraction of the 32 flows, {k}: {v:.1%}")
    Path(__file__).with_name("cores.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
