"""A sweep of 16 learning rates: one batched call against 16 sequential calls, in one process.

Run: ``python -m benchmarks.sweep [--quick]``. Two comparisons, both warm (compiled first):

* ``compare`` with 16 etas against 16 ``compare`` calls with one eta each (what a user would write
  without batching; each call recomputes the flows, as it must);
* the discrete part alone: ``jax.vmap`` of ``gradient_descent`` over 16 etas (``gradient_descents``;
  each eta its own steps through a traced steps-per-save) against 16 ``gradient_descent`` calls.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

from ._timing import best_of


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import linflow
    from linflow import descent, init, problems

    if args.quick:
        prob, dims, t1, points, divisors, repeats = problems.synthetic(m=300, d=6), (6, 4, 4, 1), 4.0, 21, range(1, 17), 1
    else:
        prob, dims, t1, points, divisors, repeats = problems.synthetic(), (32, 16, 16, 1), 20.0, 101, range(1, 17), 3
    layers = init.balanced(dims, 0.2)
    spacing = t1 / (points - 1)
    etas = [spacing / n for n in divisors]
    opts = dict(points=points, orders=(1, 2))
    batched = lambda: linflow.compare(prob, layers, etas, t1, **opts)  # noqa: E731
    sequential = lambda: [linflow.compare(prob, layers, [e], t1, **opts) for e in etas]  # noqa: E731
    batched()
    sequential()
    t_batch, t_seq = best_of(batched, repeats), best_of(sequential, repeats)

    per_save = [descent.steps_per_save(e, t1, points) for e in etas]
    rule = descent.EulerRule(linflow.LayerFlow(prob))
    batched_gd = jax.jit(jax.vmap(lambda e, n: descent.iterate(rule, layers, e, n, points - 1)))
    gd_batched = lambda: jax.block_until_ready(batched_gd(jax.numpy.asarray(etas),  # noqa: E731
                                                          jax.numpy.asarray(per_save)))
    gd_seq = lambda: [linflow.gradient_descent(prob, layers, e, n * (points - 1), save_every=n)  # noqa: E731
                      for e, n in zip(etas, per_save)]
    gd_batched()
    gd_seq()
    g_batch, g_seq = best_of(gd_batched, repeats), best_of(gd_seq, repeats)
    result = {
        "problem": f"synthetic(m={prob.m}, d={prob.d}), dims {dims}, t1 = {t1}, {len(etas)} etas "
                   f"from {min(etas):.4g} to {max(etas):.4g}",
        "compare_batched_s": t_batch,
        "compare_sequential_s": t_seq,
        "compare_speedup": t_seq / t_batch,
        "gd_batched_s": g_batch,
        "gd_sequential_s": g_seq,
        "gd_speedup": g_seq / g_batch,
        "quick": args.quick,
    }
    print(f"{result['problem']}")
    print(f"compare, 16 etas: batched {t_batch:.3f} s, 16 sequential calls {t_seq:.3f} s, ratio {t_seq / t_batch:.2f}x")
    print(f"gradient descent alone: batched {g_batch:.3f} s, sequential {g_seq:.3f} s, ratio {g_seq / g_batch:.2f}x")
    if not args.quick:
        Path(__file__).with_name("sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
