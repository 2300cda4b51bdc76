"""Plateaus from a small start: gradient descent against adaptive solvers to the same escapes (issue 27).

Run: ``python -m benchmarks.plateaus [--quick]``. Whitened regression with target singular values 3, 1, 0.3, depth 3
(and 4), the aligned start ``W_e(0) = alpha U V^T`` for alpha = 1e-4, 1e-6, 1e-8: GD at ``eta = 1 / S`` (half its
stability limit, ``S = N s_1^(2-2/N)`` once the first mode is learned) to the last escape, against the layer flow to
the same escapes by Tsit5 and by Kvaerno5 with Newton's method for its stages (rtol 1e-8, atol 1e-10). Each row: the
steps and the warm wall times (minimum of ``repeats``, after a warm-up, same process), their ratios, and each
method's largest relative escape-time error against the closed form (GD's is its O(eta) shift).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ._timing import best_of


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    from linflow import init, problems
    from linflow.core.settings import SolverSettings, with_newton
    from linflow.studies import saddles

    s = (3.0, 1.0, 0.3)
    cases = [(3, 1e-4), (3, 1e-6)] if args.quick else [(3, 1e-4), (3, 1e-6), (3, 1e-8), (4, 1e-6), (4, 1e-8)]
    repeats = 1 if args.quick else 3
    prob = problems.whitened(s)
    rows = []
    for N, alpha in cases:
        eta = 1.0 / (N * s[0] ** (2 - 2 / N))
        exact = saddles.exact_escape_times(s, alpha, N)
        layers = init.aligned(prob, N, alpha)
        gd = lambda: saddles.gd_escapes(s, N, alpha, (eta,), solvers=())  # noqa: E731
        g = gd()
        row = {"depth": N, "alpha": alpha, "eta": eta, "gd_steps": int(g.gd_steps[0]), "gd_status": str(g.status[0].values),
               "gd_error": float(np.max(np.abs(g.relative_escape_shift.values))), "gd_s": best_of(gd, repeats)}
        for name, solver in (("tsit5", "tsit5"), ("kvaerno5_newton", with_newton("kvaerno5"))):
            settings = SolverSettings(solver, rtol=1e-8, atol=1e-10, max_steps=2_000_000)
            run = lambda: saddles.escape_times(prob, layers, 1.2 * exact[-1], settings=settings)  # noqa: E731
            out = run()
            row[f"{name}_steps"] = out["num_steps"]
            row[f"{name}_error"] = float(np.max(np.abs(out["times"] / exact - 1)))
            row[f"{name}_s"] = best_of(lambda: run()["times"], repeats)
            row[f"gd_over_{name}_steps"] = row["gd_steps"] / max(out["num_steps"], 1)
            row[f"gd_over_{name}_time"] = row["gd_s"] / row[f"{name}_s"]
        rows.append(row)
        print(f"N={N} alpha={alpha:g}: GD {row['gd_steps']} steps ({row['gd_s']:.2f} s, error {row['gd_error']:.1e}); "
              f"tsit5 {row['tsit5_steps']} ({row['tsit5_s']:.2f} s); kvaerno5+Newton {row['kvaerno5_newton_steps']} "
              f"({row['kvaerno5_newton_s']:.2f} s): GD/kvaerno5 {row['gd_over_kvaerno5_newton_steps']:.0f}x steps, "
              f"{row['gd_over_kvaerno5_newton_time']:.1f}x time")
    result = {"problem": "whitened, target singular values 3, 1, 0.3, aligned start", "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
