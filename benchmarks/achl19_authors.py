"""ACHL19 side by side with the authors' code (issue 42): ``roosephu/deep_matrix_factorization`` (Arora, Cohen, Hu &
Luo's public code, fetched, never vendored) run unmodified on linflow's own instances, against linflow's layer flow.

For each instance (:func:`linflow.paper.achl19.instance`: target, mask, observed values), depth and seed:

- the authors' ``main.py`` (their model, their Gaussian start of scale ``--scale``, plain gradient descent by their
  ``configs/opt/SGD.toml``, learning rate ``--lr``) in float64 (``torch.set_default_dtype`` before their code runs;
  nothing of theirs edited), on the instance written in their file format (``gt.pt``; ``[(us, vs), ys]``), stopped
  where their training MSE falls below a threshold: their published ``1e-6`` (``--stop theirs``, the default) or
  ``FIT x`` the observed entries' mean square (``--stop linflow``: the stop linflow uses,
  :data:`linflow.paper.achl19.FIT`; GD's tail to it takes millions of steps);
- :func:`linflow.paper.achl19.flow_run` from the same kind of start (``("gaussian", scale)``: the same law, not the
  same draw: their start comes from their seed);
- the nuclear norm (:func:`linflow.paper.achl19.nuclear_norm_completion`).

It prints each run's relative error ``||W - W*||_F / ||W*||_F`` and wall time and writes a JSON file.
``python -m benchmarks.achl19_authors --authors CHECKOUT --python PY [--quick]``: ``CHECKOUT`` a checkout of their
repository, ``PY`` an interpreter with PyTorch, cvxpy, coloredlogs, toml, wrapt, fasteners and tensorboardX (their
``requirements.txt``; PyTorch's CPU wheel works). Quick mode: 30 x 30, rank 3, 300 entries, seed 0, depths 2-4.
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

# run in the authors' interpreter: their files from the instance, float64, their main.py as their README runs it
WRAPPER = textwrap.dedent('''
    import glob, json, os, runpy, sys, time
    import numpy as np, torch
    instance, authors, out, depth, seed, scale, lr, threshold = sys.argv[1:9]
    torch.set_default_dtype(torch.float64)
    d = np.load(instance)
    os.makedirs(out, exist_ok=True)
    torch.save(torch.from_numpy(d["target"]), f"{out}/gt.pt")
    torch.save([(torch.from_numpy(d["rows"]).long(), torch.from_numpy(d["cols"]).long()),
                torch.from_numpy(d["values"])], f"{out}/obs.pt")
    n = d["target"].shape[0]
    sys.path.insert(0, authors)
    os.chdir(authors)
    sys.argv = ["main.py", "--log_dir", f"{out}/log", "--config", "configs/mat-cmpl/run.toml",
                "--config", "configs/opt/SGD.toml", "--set", "gt_path", f"{out}/gt.pt", "--set", "obs_path",
                f"{out}/obs.pt", "--set", "shape", f"[{n}, {n}]", "--set", "depth", depth, "--set", "seed", seed,
                "--set", "init_scale", scale, "--set", "lr", lr, "--set", "train_thres", threshold,
                "--set", "n_iters", "3000000"]
    t0 = time.perf_counter()
    runpy.run_path("main.py", run_name="__main__")
    seconds = time.perf_counter() - t0
    W = torch.load(glob.glob(f"{out}/log/*/final.npy")[0]).detach().numpy()
    mse = float(np.mean((W[d["rows"], d["cols"]] - d["values"]) ** 2))
    print("RESULT " + json.dumps({"seconds": seconds, "W": W.tolist(), "train_mse": mse}))
''')


def _authors_run(python: str, authors: Path, instance: Path, work: Path, depth: int, seed: int, scale: float,
                 lr: float, threshold: float) -> dict:
    done = subprocess.run([python, "-c", WRAPPER, str(instance), str(authors), str(work), str(depth), str(seed),
                           repr(scale), repr(lr), repr(threshold)], capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"the authors' code failed (depth {depth}, seed {seed}): {done.stderr[-2000:]}")
    out = json.loads(line[len("RESULT "):])
    return {"seconds": out["seconds"], "W": np.asarray(out["W"]), "train_mse": out["train_mse"]}


def _check(python: str, authors: Path) -> str | None:
    """The one-line error, before anything runs, for a checkout or an interpreter that cannot run their code."""
    if not (authors / "main.py").is_file() or not (authors / "lunzi").is_dir():
        return (f"--authors: {authors} is not a checkout of roosephu/deep_matrix_factorization (no main.py and lunzi/ "
                f"there)")
    try:
        probe = subprocess.run([python, "-c", "import torch, cvxpy, coloredlogs, toml, wrapt, fasteners"],
                               capture_output=True, text=True)
    except OSError as err:
        return f"--python: {python} cannot be run ({err.strerror})"
    if probe.returncode:
        last = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit status {probe.returncode}"
        return f"--python: {python} cannot import the authors' requirements ({last})"
    return None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors", type=Path, required=True, help="a checkout of roosephu/deep_matrix_factorization")
    parser.add_argument("--python", default=sys.executable, help="an interpreter with their requirements")
    parser.add_argument("--quick", action="store_true", help="30 x 30 rank 3, 300 entries, seed 0, depths 2-4")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0 quick, 0,1 otherwise)")
    parser.add_argument("--scale", type=float, default=1e-3, help="the Gaussian start's scale (their init_scale)")
    parser.add_argument("--lr", type=float, default=0.01, help="their learning rate (configs/opt/SGD.toml: 0.01)")
    parser.add_argument("--stop", choices=["theirs", "linflow", "both"], default="theirs",
                        help="their published stop (training MSE 1e-6), linflow's (FIT x the start's), or both")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/achl19_authors.json"))
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1")).split(",")]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    problem = _check(args.python, args.authors.resolve())
    if problem:
        parser.exit(2, f"{problem}\n")

    from linflow.core.files import write_json
    from linflow.paper import achl19

    n, rank, count, depths = 30, 3, 300, (2, 3, 4)
    rows, printed = [], 0
    with tempfile.TemporaryDirectory(prefix="linflow-achl19-authors-") as tmp:
        for seed in seeds:
            prob = achl19.instance(n, rank, count, seed)
            W_star = np.asarray(prob.target_matrix)
            norm = np.linalg.norm(W_star)
            inst = Path(tmp) / f"instance{seed}.npz"
            values = np.asarray(prob.values)
            np.savez(inst, target=W_star, rows=np.asarray(prob.rows), cols=np.asarray(prob.cols), values=values)
            t0 = time.perf_counter()
            X, status = achl19.nuclear_norm_completion(prob)
            rows.append({"seed": seed, "method": "nuclear norm (cvxpy, SCS)", "error": float(np.linalg.norm(X - W_star) / norm),
                         "seconds": time.perf_counter() - t0, "stop": status})
            for depth in depths:
                t0 = time.perf_counter()
                run = achl19.flow_run(prob, depth, seed, ("gaussian", args.scale))
                rows.append({"seed": seed, "depth": depth, "method": "linflow, layer flow", "error": run["error"],
                             "seconds": time.perf_counter() - t0, "stop": f"{run['fate']} (loss {achl19.FIT:g} of its start)"})
                stops = {"their stop": 1e-6, "linflow's stop": achl19.FIT * float(np.mean(values**2))}
                for name, threshold in stops.items():
                    if args.stop != "both" and name != ("their stop" if args.stop == "theirs" else "linflow's stop"):
                        continue
                    out = _authors_run(args.python, args.authors.resolve(), inst, Path(tmp) / f"s{seed}d{depth}{name[:2]}",
                                       depth, seed, args.scale, args.lr, threshold)
                    rows.append({"seed": seed, "depth": depth, "method": f"authors' GD, lr {args.lr:g}",
                                 "error": float(np.linalg.norm(out["W"] - W_star) / norm), "seconds": out["seconds"],
                                 "stop": f"{name}: training MSE <= {threshold:.3g} (reached {out['train_mse']:.3g})"})
                print("\n".join(_line(r) for r in rows[printed:]), flush=True)
                printed = len(rows)
    result = {"instance": f"{n} x {n}, rank {rank}, {count} observed entries (linflow.paper.achl19.instance)",
              "start": f"Gaussian, scale {args.scale:g} (their init_scale; each code its own draw)",
              "authors_code": "roosephu/deep_matrix_factorization, main.py unmodified, float64", "rows": rows}
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return result


def _line(r: dict) -> str:
    depth = f"depth {r['depth']}" if "depth" in r else "       "
    return f"seed {r['seed']}  {depth}  {r['method']:<28} error {r['error']:.3g}  {r['seconds']:8.1f} s  {r['stop']}"


if __name__ == "__main__":
    main()
