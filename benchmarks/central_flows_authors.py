"""RMSProp at its edge side by side with the authors' code (issue 43): ``alex-damian/central_flows_jax`` (Cohen, Damian,
Talwalkar, Kolter & Lee's JAX implementation of the central flows, fetched, never vendored), run unmodified on a
problem linflow runs, against linflow's RMSProp, its edge readings (:mod:`linflow.studies.edges`) and its model
(:func:`linflow.rmsprop_flow`).

The problem: the whitened regression of ``tests/test_edges.py`` (target singular values 3, 2, 1, 0.5), a depth-3
network of width 4 from ``init.balanced(0.3, seed=0)``, RMSProp with step ``--eta``, ``decay = --beta2``, no epsilon
(theirs ``eps=0``; optax's ``eps=1e-300`` inside the root, the same to rounding) and the second moment started at
``--v0`` everywhere (optax's ``initial_scale``; theirs set in their state). Their loss function is the same
``(1/2m) sum |W_e x_i - y_i|^2`` written in their interpreter from the same data, on the same flat parameter vector.

Their code: ``Flow.discrete`` (RMSProp's iterates, the effective eigenvalues ``lambda(P^-1 H)`` with their
``P = sqrt(nu) / eta`` at the midpoint), ``Flow.stable`` (the stable flow: forward Euler in step time) and
``Flow.central`` (the central flow, their SDCP solved by cvxpy and CVXOPT), each step by step from the same start.
linflow's: optax's ``rmsprop`` on the one engine (``linflow.optax_descent``), ``stability_edge`` (readings at the
midpoint with the later step's ``P``, over ``2 / eta``: theirs over 2) and ``rmsprop_flow`` (14.2) in flow time
``t = k eta``.

It prints, and writes to a JSON file: the discrete runs' largest difference in ``W_e`` (and the first step where it
passes 1e-8: at the edge rounding differences grow), both edge readings' plateaus, the two stable flows' difference,
and how far the central and stable flows stay from the discrete run's running mean of ``W_e``.
``python -m benchmarks.central_flows_authors --authors CHECKOUT --python PY [--quick]``: ``CHECKOUT`` a checkout of
their repository, ``PY`` an interpreter with jax, jaxtyping, cvxpy and cvxopt (their ``pyproject.toml``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

# run in the authors' interpreter: their Flow and RMSProp, unmodified, on the problem's data
WRAPPER = textwrap.dedent('''
    import json, sys, time
    import numpy as np, jax, jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    jax.config.update("jax_enable_x64", True)
    src, instance, steps, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.path.insert(0, src)
    from central_flows_jax import Flow, RMSProp
    d = np.load(instance)
    X, Y = jnp.asarray(d["X"]), jnp.asarray(d["Y"])
    shapes = [tuple(int(x) for x in s) for s in d["shapes"]]
    def end_to_end(w):
        W, i = None, 0
        for s in shapes:
            n = s[0] * s[1]
            layer = w[i:i + n].reshape(s)
            i += n
            W = layer if W is None else layer @ W
        return W
    loss_fn = lambda w: 0.5 * jnp.sum((X @ end_to_end(w).T - Y) ** 2) / X.shape[0]
    opt = RMSProp(lr=float(d["eta"]), beta2=float(d["beta2"]), eps=0.0)
    w0 = jnp.asarray(d["w0"])
    opt.initialize_state(w0)  # sets their unflatten
    state0 = ravel_pytree({"t": jnp.array(0.0), "nu": jnp.full_like(w0, float(d["v0"]))})[0]
    flow = Flow(loss_fn, opt)
    U0 = jax.random.normal(jax.random.PRNGKey(0), (w0.size, 2))
    runs = {"discrete": (w0, state0, U0), "stable": (w0, state0, U0), "central": (w0, state0, U0)}
    out = {name: {"step": [], "loss": [], "eig": [], "end_to_end": [], "seconds": 0.0} for name in runs}
    out["central"]["loss_pred"] = []
    for k in range(steps + 1):
        for name in runs:
            if k % every == 0:
                out[name]["end_to_end"].append(np.asarray(end_to_end(runs[name][0])).tolist())
            if k == steps:
                continue
            t0 = time.perf_counter()
            if name == "discrete":
                runs[name], aux = flow.discrete(*runs[name], midpoint=True)
            elif name == "stable":
                runs[name], aux = flow.stable(*runs[name])
            else:
                runs[name], aux = flow.central(*runs[name])
            jax.block_until_ready(runs[name][0])
            out[name]["seconds"] += time.perf_counter() - t0
            if k % every == 0:
                eigs = np.asarray(aux["eigs"])
                out[name]["step"].append(k)
                out[name]["loss"].append(float(aux["L"]))
                out[name]["eig"].append(float(eigs.max()))
                if name == "central":
                    X_ = np.asarray(aux["X"])
                    out[name]["loss_pred"].append(float(aux["L"]) + 0.5 * float(np.sum(eigs * np.diag(X_))))
    print("RESULT " + json.dumps(out))
''')


def _check(python: str, authors: Path) -> str | None:
    """The one-line error, before anything runs, for a checkout or an interpreter that cannot run their code."""
    if not (authors / "src" / "central_flows_jax" / "flows.py").is_file():
        return f"--authors: {authors} is not a checkout of alex-damian/central_flows_jax (no src/central_flows_jax/flows.py)"
    try:
        probe = subprocess.run([python, "-c", "import jax, jaxtyping, cvxpy, cvxopt"], capture_output=True, text=True)
    except OSError as err:
        return f"--python: {python} cannot be run ({err.strerror})"
    if probe.returncode:
        return f"--python: {python} lacks what their code needs (jax, jaxtyping, cvxpy, cvxopt): {probe.stderr.strip()[-200:]}"
    return None


def _running_mean(x: np.ndarray, window: int) -> np.ndarray:
    """The mean of the last ``window`` rows at each row (fewer at the start)."""
    c = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), x]), axis=0)
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo).reshape((-1,) + (1,) * (x.ndim - 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.central_flows_authors", description=__doc__.split("\n\n")[0])
    ap.add_argument("--authors", required=True, help="a checkout of alex-damian/central_flows_jax")
    ap.add_argument("--python", default=sys.executable, help="an interpreter with jax, jaxtyping, cvxpy and cvxopt")
    ap.add_argument("--eta", type=float, default=0.003, help="RMSProp's step (default 0.003)")
    ap.add_argument("--beta2", type=float, default=0.999, help="RMSProp's decay (default 0.999)")
    ap.add_argument("--v0", type=float, default=1e-3, help="the second moment's start, everywhere (default 1e-3)")
    ap.add_argument("--steps", type=int, default=3000, help="steps (default 3000; --quick 600)")
    ap.add_argument("--every", type=int, default=10, help="record every this many steps (default 10)")
    ap.add_argument("--quick", action="store_true", help="600 steps")
    ap.add_argument("--out", default="central_flows_authors.json", help="the JSON file written")
    args = ap.parse_args(argv)
    steps = 600 if args.quick else args.steps
    if steps % args.every:
        print(f"--steps must be a multiple of --every = {args.every}; got {steps}", file=sys.stderr)
        return 2
    error = _check(args.python, Path(args.authors))
    if error:
        print(error, file=sys.stderr)
        return 2

    import optax
    from jax.flatten_util import ravel_pytree

    import linflow
    from linflow import init, problems
    from linflow.studies import edges

    prob = problems.whitened([3.0, 2.0, 1.0, 0.5])
    layers = init.balanced((4, 4, 4, 4), 0.3, seed=0)
    eps = 1e-300
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance.npz"
        np.savez(instance, X=np.asarray(prob.X), Y=np.asarray(prob.Y), shapes=np.array([w.shape for w in layers]),
                 w0=np.asarray(ravel_pytree(layers)[0]), eta=args.eta, beta2=args.beta2, v0=args.v0)
        t0 = time.perf_counter()
        done = subprocess.run([args.python, "-c", WRAPPER, str(Path(args.authors) / "src"), str(instance), str(steps),
                               str(args.every)], capture_output=True, text=True)
        theirs_wall = time.perf_counter() - t0
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode or line is None:
        print(f"their code failed: {done.stderr[-2000:]}", file=sys.stderr)
        return 1
    theirs = json.loads(line[len("RESULT "):])

    t0 = time.perf_counter()
    run = linflow.optax_descent(prob, layers, optax.rmsprop(args.eta, args.beta2, eps=eps, initial_scale=args.v0),
                                args.eta, steps, save_every=args.every)
    seconds_run = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = edges.stability_edge(prob, layers, "rmsprop", args.eta, steps, every=args.every, beta2=args.beta2, eps=eps,
                              initial_scale=args.v0)
    seconds_edge = time.perf_counter() - t0
    t0 = time.perf_counter()
    ts = np.arange(0, steps + 1, args.every) * args.eta
    model = linflow.rmsprop_flow(prob, layers, args.eta, args.beta2, steps * args.eta, eps=eps,
                                 initial_scale=args.v0, ts=ts, rtol=1e-10, atol=1e-12)
    seconds_model = time.perf_counter() - t0

    ours = np.asarray(run.end_to_end)
    disc = np.asarray(theirs["discrete"]["end_to_end"])
    gap = np.linalg.norm(ours - disc, axis=(1, 2))
    parted = np.flatnonzero(gap > 1e-8)
    steps_at = np.arange(0, steps + 1, args.every)
    window = max(1, 200 // args.every)
    mean = _running_mean(disc, window)
    norm = np.max(np.linalg.norm(disc, axis=(1, 2)))
    half = len(steps_at) // 2

    def distance(name):
        W = np.asarray(theirs[name]["end_to_end"])
        return float(np.mean(np.linalg.norm(W[half:] - mean[half:], axis=(1, 2))) / norm)

    their_eig = np.asarray(theirs["discrete"]["eig"]) / 2.0
    ours_ratio = ds.ratio.values[:-1]
    result = {
        "problem": "whitened regression, target singular values 3, 2, 1, 0.5; depth 3, width 4, balanced 0.3, seed 0",
        "rmsprop": {"eta": args.eta, "decay": args.beta2, "v0": args.v0, "eps": "0 (theirs) / 1e-300 inside the root "
                    "(optax)", "steps": steps},
        "discrete_max_gap_W_e": float(np.max(gap)),
        "discrete_first_step_apart_1e-8": int(steps_at[parted[0]]) if parted.size else None,
        "discrete_gap_before_that": float(np.max(gap[:parted[0]])) if parted.size else float(np.max(gap)),
        "edge_reading_median_second_half": {"theirs (eig / 2)": float(np.median(their_eig[half:])),
                                            "linflow (ratio)": float(np.nanmedian(ours_ratio[half:]))},
        "edge_summary_linflow": edges.edge_text(ds),
        "central_eig_median_second_half": float(np.median(np.asarray(theirs["central"]["eig"])[half:]) / 2.0),
        "stable_flows_max_gap_W_e_relative": float(np.max(np.linalg.norm(
            np.asarray(theirs["stable"]["end_to_end"]) - np.asarray(model.end_to_end), axis=(1, 2))) / norm),
        "stable_flows_gap_first_half_relative": float(np.max(np.linalg.norm(
            np.asarray(theirs["stable"]["end_to_end"])[:half] - np.asarray(model.end_to_end)[:half], axis=(1, 2)))
            / norm),
        "stable_flows_gap_second_half_relative": float(np.max(np.linalg.norm(
            np.asarray(theirs["stable"]["end_to_end"])[half:] - np.asarray(model.end_to_end)[half:], axis=(1, 2)))
            / norm),
        "distance_to_the_discrete_running_mean_second_half_relative": {
            "central (theirs)": distance("central"), "stable (theirs)": distance("stable"),
            "linflow rmsprop_flow": float(np.mean(np.linalg.norm(np.asarray(model.end_to_end)[half:] - mean[half:],
                                                                  axis=(1, 2))) / norm)},
        "loss_second_half_mean": {"discrete (theirs)": float(np.mean(theirs["discrete"]["loss"][half:])),
                                  "discrete (linflow)": float(np.mean(np.asarray(run.loss)[half:-1])),
                                  "central prediction": float(np.mean(theirs["central"]["loss_pred"][half:])),
                                  "central": float(np.mean(theirs["central"]["loss"][half:])),
                                  "stable (theirs)": float(np.mean(theirs["stable"]["loss"][half:]))},
        "loss_second_half_median": {"discrete (theirs)": float(np.median(theirs["discrete"]["loss"][half:])),
                                    "central prediction": float(np.median(theirs["central"]["loss_pred"][half:])),
                                    "central": float(np.median(theirs["central"]["loss"][half:]))},
        "seconds": {"theirs (discrete, stable, central)": [theirs[n]["seconds"] for n in ("discrete", "stable",
                                                                                          "central")],
                    "theirs wall (with start-up)": theirs_wall, "linflow rmsprop run": seconds_run,
                    "linflow edge readings": seconds_edge, "linflow rmsprop_flow": seconds_model},
        "model_status": str(model.status),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
