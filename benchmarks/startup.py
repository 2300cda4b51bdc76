"""Start-up of the command line and of ``import linflow``, against a bare interpreter, in fresh processes.

Run alone: ``python -m benchmarks.startup``; ``python -m benchmarks`` includes it. Each figure is the
minimum wall time over repeated fresh processes, and its ratio to ``python -c pass`` measured in the
same run.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "linflow --help": ["-m", "linflow", "--help"],
    "linflow --version": ["-m", "linflow", "--version"],
    "import linflow": ["-c", "import linflow"],
    "import linflow.core.integrate (JAX, diffrax)": ["-c", "import linflow.core.integrate"],
}


def startup(repeats: int = 5) -> dict:
    out = {}
    for name, args in COMMANDS.items():
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, *args], check=True, capture_output=True)
            best = min(best, time.perf_counter() - t0)
        out[name] = {"wall_s": best}
    base = out["python -c pass"]["wall_s"]
    for r in out.values():
        r["vs_bare_interpreter"] = r["wall_s"] / base
    return out


def compilation_cache(args=("run", "--quick")) -> dict:
    """``linflow run --quick`` twice in fresh processes sharing a new, empty persistent compilation cache:
    the second run loads what the first compiled."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LINFLOW_CACHE": tmp}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        walls = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "linflow", *args, "--out", os.path.join(tmp, "out")], check=True,
                           capture_output=True, env=env)
            walls.append(time.perf_counter() - t0)
    return {"command": "linflow " + " ".join(args), "cold_s": walls[0], "warm_s": walls[1],
            "speedup": walls[0] / walls[1]}


def report(rows: dict, cache: dict | None = None) -> str:
    lines = ["start-up in a fresh process (minimum over repeats; ratio to a bare interpreter):"]
    for name, r in rows.items():
        lines.append(f"  {name:<42} {r['wall_s'] * 1e3:8.0f} ms  ({r['vs_bare_interpreter']:.1f}x)")
    if cache:
        lines.append(f"  {cache['command']}: first run {cache['cold_s']:.1f} s, second run (persistent compilation "
                     f"cache) {cache['warm_s']:.1f} s ({cache['speedup']:.2f}x)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(startup(), compilation_cache()))
