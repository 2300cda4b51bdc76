"""The notebooks' live controls (notebook 07, issue 30): one slider move, computed and drawn.

Run: ``python -m benchmarks.live [--quick]``. For the eta slider (:func:`linflow.studies.explorables.live_plane`)
and the tolerance slider (:func:`~linflow.studies.explorables.live_accuracy`, Tsit5): the first call (it compiles),
then ``moves`` moves to new values, each timed for the computation alone and for the computation plus the notebook's
matplotlib drawing (Agg, to a PNG in memory, what the inline backend does); the compiled programs are counted before
and after the moves (a move must not recompile). Reported: medians, and the ratio of the first call to a move.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np


def _draw(xs, ys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(xs, np.maximum(np.abs(ys), 1e-300), "o", ms=3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)


def _moves(compute, values, draw_of):
    first_t0 = time.perf_counter()
    compute(values[0])
    first = time.perf_counter() - first_t0
    compute_s, total_s = [], []
    for v in values[1:]:
        t0 = time.perf_counter()
        out = compute(v)
        t1 = time.perf_counter()
        _draw(*draw_of(out))
        compute_s.append(t1 - t0)
        total_s.append(time.perf_counter() - t0)
    return first, float(np.median(compute_s)), float(np.median(total_s))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from linflow.studies import explorables

    moves = 5 if args.quick else 40
    problem = explorables.plane_problem()
    start = explorables.plane_start(problem)
    rows = {}
    cache0 = explorables.gd_on_the_plane._cache_size()
    etas = list(np.geomspace(0.01, 1.6, moves + 1))
    first, comp, total = _moves(lambda e: explorables.live_plane(e, problem, start), etas,
                                lambda out: (out["t"], out["loss"]))
    rows["eta_slider"] = {"first_call_s": first, "move_compute_s": comp, "move_with_drawing_s": total,
                          "first_over_move": first / comp, "compiled_before": cache0 + 1,
                          "compiled_after": explorables.gd_on_the_plane._cache_size()}
    levels = [3 + (i % 10) for i in range(moves + 1)]
    first, comp, total = _moves(lambda k: explorables.live_accuracy("tsit5", k), levels,
                                lambda out: (out["t"], out["error"]))
    rows["tolerance_slider"] = {"first_call_s": first, "move_compute_s": comp, "move_with_drawing_s": total,
                                "first_over_move": first / comp}
    for name, r in rows.items():
        print(f"{name}: first call {r['first_call_s']:.2f} s; a move {1e3 * r['move_compute_s']:.1f} ms computed, "
              f"{1e3 * r['move_with_drawing_s']:.1f} ms with the drawing ({r['first_over_move']:.0f}x faster than the "
              "first call)" + (f"; compiled programs {r['compiled_before']} -> {r['compiled_after']}"
                               if "compiled_after" in r else ""))
    result = {"moves": moves, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
