"""First-call (compile) latency and warm time of the core entry points, in one process.

Run: ``python -m benchmarks.latency``. Prints a table and writes ``benchmarks/latency.json``.
Each figure is measured here, in this run; the ratio first/warm is what compilation costs.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def timed(fn, repeats: int = 1) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> dict:
    t0 = time.perf_counter()
    import linflow
    from linflow import init, problems

    t_import = time.perf_counter() - t0
    prob = problems.synthetic()
    layers = init.balanced((prob.d, 16, 16, 1), 0.2)
    w_e = linflow.end_to_end(layers)
    entries = {
        "gradient_flow": lambda t1: linflow.gradient_flow(prob, layers, t1),
        "end_to_end_flow": lambda t1: linflow.end_to_end_flow(prob, w_e, 3, t1),
        "gradient_descent": lambda t1: linflow.gradient_descent(prob, layers, t1 / 1000, 1000, save_every=10),
        "end_to_end_descent": lambda t1: linflow.end_to_end_descent(prob, w_e, 3, t1 / 1000, 1000, save_every=10),
    }
    rows = {}
    for name, call in entries.items():
        first = timed(lambda: call(50.0))
        warm = timed(lambda: call(60.0), repeats=3)  # new t1 / eta: must not recompile
        rows[name] = {"first_call_s": first, "warm_call_s": warm, "compile_overhead_s": first - warm}
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''} ({sys.platform}), python {platform.python_version()}",
        "import_s": t_import,
        "problem": "synthetic(m=2000, d=32, p=2), depth 3, widths 16, t1 = 50",
        "entries": rows,
    }
    print(f"import linflow: {t_import:.2f} s")
    print(f"{'entry point':<22}{'first call (s)':>16}{'warm call (s)':>15}")
    for name, r in rows.items():
        print(f"{name:<22}{r['first_call_s']:>16.3f}{r['warm_call_s']:>15.4f}")
    Path(__file__).with_name("latency.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
