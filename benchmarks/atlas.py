"""The attractor map in one compiled call against one call per learning rate (issue 28).

Run: ``python -m benchmarks.atlas [--quick] [--out FILE]``. The default problem (``linflow run``'s: synthetic,
m = 2000, d = 32, depth 3, hidden widths 16, balanced start of scale 0.2; 784 parameters), 400 learning rates from
0.9 to 2.1 times ``eta_crit = 2 / S`` of the flow's limit, 20,000 GD steps each (16,000 transient, 4,000 recorded,
with the Lyapunov exponent's tangent vector): :func:`linflow.core.attractors.orbits` over all 400 etas in one
``jax.vmap``-ed call, against 400 calls of one eta each (the same compiled function, warm). Quick: 12 etas x 1,000
steps. Each time is the warm wall time (after a compiling call), in this process.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ._timing import once


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from linflow.core import specs
    from linflow.core.attractors import orbits, period_of
    from linflow.core.curvature import sharpness
    from linflow.core.gfs import gfs_limit

    n_etas, steps, record = (12, 1_000, 250) if args.quick else (400, 20_000, 4_000)
    prob = specs.problem("synthetic")
    layers = specs.start(prob, 3, [16, 16], "balanced", 0.2, 0)
    eta_crit = 2.0 / float(sharpness(prob, gfs_limit(prob, layers)["layers"]))
    etas = jnp.asarray(eta_crit * np.linspace(0.9, 2.1, n_etas))
    flat, _ = ravel_pytree(layers)
    direction = jax.random.normal(jax.random.PRNGKey(0), flat.shape)
    kw = {"transient": steps - record, "record": record, "window": 128}
    batched = lambda: orbits(prob, layers, etas, direction, **kw)  # noqa: E731
    compile_batched = once(batched)
    batched_s = once(batched)
    single = lambda e: orbits(prob, layers, etas[e:e + 1], direction, **kw)  # noqa: E731
    compile_single = once(lambda: single(0))
    t0 = time.perf_counter()
    outs = [jax.block_until_ready(single(e)) for e in range(n_etas)]
    separate_s = time.perf_counter() - t0
    out = jax.device_get(batched())
    # vmapped and single calls round differently (batched matrix products): compare the exponents, not their bits
    gap = max(abs(float(np.asarray(o["lyapunov"])[0]) - float(out["lyapunov"][e])) for e, o in enumerate(outs))
    periods = [period_of(s) if b < 0 else -1 for s, b in zip(out["states"], out["diverged_at"])]
    result = {"problem": "synthetic(m=2000, d=32), depth 3, widths 16, balanced(0.2): 784 parameters",
              "etas": n_etas, "steps": steps, "eta_crit": eta_crit, "batched_s": batched_s,
              "batched_compile_s": compile_batched, "separate_s": separate_s, "separate_compile_s": compile_single,
              "separate_over_batched": separate_s / batched_s, "per_eta_step_us": 1e6 * batched_s / (n_etas * steps),
              "largest_lyapunov_difference": gap, "diverged": int(np.sum(out["diverged_at"] >= 0)),
              "periods_seen": sorted({int(p) for p in periods})}
    print(f"{n_etas} etas x {steps} steps: one call {batched_s:.1f} s (compile {compile_batched:.1f} s), {n_etas} calls "
          f"{separate_s:.1f} s: {result['separate_over_batched']:.2f}x; {result['per_eta_step_us']:.2f} us per eta-step; "
          f"Lyapunov exponents differ by at most {gap:.1e}; diverged {result['diverged']}; periods {result['periods_seen']}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
