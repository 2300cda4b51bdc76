"""Precompute the explorable pages' data (committed, small JSON files in docs/explorables/data).

    python docs/explorables/build.py            # every page's data (about a minute on 2 CPU cores)
    python docs/explorables/build.py leaving_the_flow

The docs build (docs/hooks/explorables.py) draws the pages from these files with Bokeh; it computes nothing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from linflow.studies import explorables

HERE = Path(__file__).resolve().parent
PAGES = {"leaving_the_flow": explorables.leaving_the_flow, "solver_accuracy": explorables.solver_accuracy,
         "attractor_map": explorables.attractor_map, "plateaus": explorables.plateaus}


def write(name: str) -> Path:
    """Compute one page's data and write it atomically (strict JSON)."""
    t0 = time.perf_counter()
    data = PAGES[name]()
    path = HERE / "data" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(data, tmp, allow_nan=False, separators=(",", ":"))
    os.replace(tmp.name, path)
    print(f"{name}: {path.stat().st_size / 1e6:.2f} MB in {time.perf_counter() - t0:.0f} s")
    return path


if __name__ == "__main__":
    for name in sys.argv[1:] or PAGES:
        write(name)
