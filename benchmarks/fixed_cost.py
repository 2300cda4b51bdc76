"""The fixed cost of a warm public call: validation, dispatch and result assembly around a tiny computation.

Run: ``python -m benchmarks.fixed_cost [--json PATH]``. On a small network (d = 16, depth 3, widths 16,
synthetic p = 2 data) each public run does almost no work (one Euler step, one GD step, a two-point
Tsit5 solve over a short horizon), so its warm wall time is what every call pays on top of the
mathematics. Each figure is the median of 200 warm calls (after 5 warm-up calls), and the table also
gives the ratio to a compiled no-op ``jax.jit(lambda x: x + 1)`` measured in the same run: the floor
of any JAX dispatch on this machine. Only public functions with the same signature before and after
the composable-core redesign are called, so the script runs unchanged on older trees.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def median_time(fn, calls: int = 200, warmup: int = 5) -> float:
    import jax

    def block(out):
        jax.block_until_ready(out.loss if hasattr(out, "loss") else out)

    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    import jax
    import jax.numpy as jnp

    import linflow
    from linflow import init, problems

    prob = problems.synthetic(m=200, d=16, seed=0)
    layers = init.balanced((16, 16, 16, 1), 0.3)
    w_e = linflow.end_to_end(layers)
    noop = jax.jit(lambda x: x + 1)
    x = jnp.ones(3)
    calls = {
        "jit no-op (floor)": lambda: noop(x),
        "gradient_flow, 1 Euler step": lambda: linflow.gradient_flow(prob, layers, 1e-3, n_save=2, solver="euler",
                                                                      dt0=1e-3),
        "gradient_flow, tsit5 on [0, 1e-3]": lambda: linflow.gradient_flow(prob, layers, 1e-3, n_save=2),
        "end_to_end_flow, 1 Euler step": lambda: linflow.end_to_end_flow(prob, w_e, 3, 1e-3, n_save=2, solver="euler",
                                                                          dt0=1e-3),
        "gradient_descent, 1 step": lambda: linflow.gradient_descent(prob, layers, 1e-3, 1),
    }
    rows = {name: median_time(fn, args.calls) for name, fn in calls.items()}
    floor = rows["jit no-op (floor)"]
    print(f"{'warm call (median of ' + str(args.calls) + ')':<40}{'ms':>9}{'x floor':>9}")
    for name, t in rows.items():
        print(f"{name:<40}{1e3 * t:>9.3f}{t / floor:>9.1f}")
    result = {"problem": "synthetic(m=200, d=16, p=2), dims (16, 16, 16, 1)",
              "warm_call_s": rows, "ratio_to_floor": {k: v / floor for k, v in rows.items()}}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
