"""SDE paths of the first-order SME: diffrax against a plain ``lax.scan`` Euler-Maruyama loop (issue 31).

Run: ``python -m benchmarks.sde [--quick] [--out FILE]``. The default problem (synthetic, m = 2000, d = 32, depth 3,
hidden widths 16, balanced start of scale 0.2: P = 784 parameters), eta = 0.05, minibatches of B = 32 with
replacement, flow time 1 at dt = eta (20 Euler-Maruyama steps). ``paths`` (1,000) SME paths in one compiled, vmapped
call by each Brownian path of :func:`linflow.sme_ensemble` (diffrax with ``VirtualBrownianTree``, diffrax with
``UnsafeBrownianPath``, linflow's ``lax.scan`` loop), all with the diffusion applied as one backward pass
(``noise_product``); beside them the loop a user would write with the explicit ``P x m`` factor of per-sample
gradients (on fewer paths: 1,000 of them would hold 1,000 x 2000 x 784 numbers), and SGD's ensemble over the same 20
steps. Each row: compile time, warm time (minimum of ``repeats``), time per path, ratio to the scan loop's.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from ._timing import best_of, once


def _explicit_loop(problem, layers0, eta, steps, batch):
    """Euler-Maruyama written plainly: per-sample gradients (``m x P``), their centred factor, ``theta += dt drift +
    sqrt(eta) D z``; a compiled function of the keys, vmapped over them."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from linflow.core.sme import noise_factor
    from linflow.core.fields import network_gradient

    flat0, unravel = ravel_pytree(tuple(layers0))

    def path(key):
        def step(theta, k):
            layers = unravel(theta)
            D = noise_factor(problem, layers, batch, "replacement")
            z = jnp.sqrt(eta) * jax.random.normal(jax.random.fold_in(key, k), (problem.m,))
            drift = -ravel_pytree(network_gradient(problem, layers))[0]
            return theta + eta * drift + jnp.sqrt(eta) * (D @ z), None

        return jax.lax.scan(step, flat0, jnp.arange(steps))[0]

    return jax.jit(jax.vmap(path))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import jax

    import linflow
    from linflow.core import specs
    from linflow.core.sme import sme_pair_ensemble

    if args.quick:
        problem, paths, explicit_paths, repeats = specs.problem("synthetic", m=200, d=8), 64, 16, 1
    else:
        problem, paths, explicit_paths, repeats = specs.problem("synthetic"), 1000, 50, 3
    layers = specs.start(problem, 3)
    eta, batch, t1 = 0.05, 32, 1.0
    steps = int(round(t1 / eta))
    keys = jax.random.split(jax.random.PRNGKey(0), paths)
    ts = [0.0, t1]
    runs = {f"diffrax_{p}": (lambda p=p: linflow.sme_ensemble(problem, layers, eta, t1, batch=batch, keys=keys, ts=ts,
                                                               path=p).end_to_end) for p in ("virtual", "unsafe")}
    runs["scan"] = lambda: linflow.sme_ensemble(problem, layers, eta, t1, batch=batch, keys=keys, ts=ts,
                                                path="scan").end_to_end
    # the weak-error study's Richardson pair (steps eta / 2 and eta / 4 on one Brownian grid): two calls, or one loop
    # that draws each Gaussian cell once
    runs["pair_two_calls"] = lambda: [linflow.sme_ensemble(problem, layers, eta, t1, batch=batch, keys=keys, ts=ts,
                                                           dt=eta / (2 * r), path="scan", resolution=eta / 4).end_to_end
                                      for r in (1, 2)]
    runs["pair_one_loop"] = lambda: [r.end_to_end for r in sme_pair_ensemble(problem, layers, eta, t1, batch=batch,
                                                                              keys=keys, dt=eta / 2, ts=ts)]
    runs["sgd"] = lambda: linflow.sgd_ensemble(problem, layers, eta, steps, batch=batch, keys=keys,
                                               sampling="replacement", save_every=steps).end_to_end
    few = keys[:explicit_paths]
    explicit = _explicit_loop(problem, layers, eta, steps, batch)
    runs["explicit_factor_loop"] = lambda: explicit(few)
    rows = []
    for name, fn in runs.items():
        n = explicit_paths if name == "explicit_factor_loop" else paths
        first = once(fn)
        warm = best_of(fn, repeats)
        rows.append({"method": name, "paths": n, "first_call_s": first, "warm_s": warm, "per_path_ms": 1e3 * warm / n})
    scan = next(r for r in rows if r["method"] == "scan")["per_path_ms"]
    for r in rows:
        r["per_path_over_scan"] = r["per_path_ms"] / scan
        print(f"{r['method']:>22}: {r['paths']:5d} paths, first call {r['first_call_s']:6.2f} s, warm {r['warm_s']:7.3f} s,"
              f" {r['per_path_ms']:8.3f} ms per path ({r['per_path_over_scan']:.2f}x the scan loop)")
    pair = {r["method"]: r["warm_s"] for r in rows}
    pair_ratio = pair["pair_two_calls"] / pair["pair_one_loop"]
    print(f"the Richardson pair in one loop: {pair_ratio:.2f}x the two calls")
    result = {"pair_two_calls_over_one_loop": pair_ratio}
    result |= {"problem": f"synthetic m={problem.m} d={problem.d}, depth 3, widths 16, balanced 0.2 (P = "
                         f"{sum(int(w.size) for w in layers)})",
              "eta": eta, "batch": batch, "t1": t1, "steps": steps, "repeats": repeats, "rows": rows,
              "machine": {"cpus": jax.local_device_count(), "backend": jax.default_backend(),
                          "platform": platform.platform()}}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
