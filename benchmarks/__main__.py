"""linflow's benchmark: ``python -m benchmarks [--quick] [--out FILE]``.

Every figure is a ratio measured side by side in this one process run (never a hard-coded time):

* compile latency of the first call of each entry point, and the count of recompilations across new
  ``t1`` / ``eta`` / tolerance values (must be 0);
* linflow ``gradient_flow`` (Tsit5, compiled, warm) against SciPy ``solve_ivp`` (RK45, DOP853) driving a
  NumPy vector field written the way a user would, at equal achieved error (log-log interpolation of
  time against error over a tolerance sweep), on a small l2 problem and a gas-sensor-sized l4 problem;
* the solver's overhead over its limit: solve time / (nfev x one compiled vector-field evaluation in
  a loop); gradient descent time per step / one gradient evaluation;
* ``gradient_descent`` against a NumPy loop doing the same update;
* 32-wide sweeps: 32 learning rates (``gradient_descents``) and 32 seeds (``gradient_flows``) in one
  batched call against 32 sequential linflow calls and 32 sequential SciPy solves;
* scaling of the time per vector-field evaluation with d (layer flow, general end-to-end flow with
  its eigh, the k = 1 form), with m (p = 4) and with the depth, with fitted exponents.

Prints a table and writes JSON (default ``benchmarks/results.json``). ``--quick`` (under a minute)
shrinks every size and leaves out the gas-sized problem and the compilation-cache runs; CI runs it to
keep the script working, with no timing assertion.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import linflow
from linflow import descent, init, integrate, problems
from linflow.core.fields import claim2_field, end_to_end_field, layer_field

from ._timing import best_of, once
from .startup import report as startup_report
from .startup import compilation_cache, startup

# ----------------------------------------------------------------------------- problems
def small_l2():
    """d = 16, k = 4, depth 3 (overhead bound)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 16)) * np.logspace(0, -0.5, 16)
    Y = X @ rng.standard_normal((16, 4)) / 4 + 0.1 * rng.standard_normal((500, 4))
    prob = problems.Problem(X, Y, p=2)
    return "small l2 (m=500, d=16, k=4, depth 3, widths 16)", prob, init.balanced((16, 16, 16, 4), 0.4), 40.0


def gas_l4(quick):
    m, d = (600, 32) if quick else (2565, 128)
    prob = problems.synthetic(m=m, d=d, p=4)
    return (f"gas-sensor-sized l4 (m={m}, d={d}, k=1, depth 3, widths 32)", prob,
            init.balanced((d, 32, 32, 1), 0.4), 20.0)


# ----------------------------------------------------------------------------- a user's NumPy code
def numpy_layer_field(prob):
    """The layer gradient flow as a user writes it: residuals on the data, NumPy products."""
    X, Y, p, lam = np.asarray(prob.X), np.asarray(prob.Y), prob.p, float(prob.weight_decay)
    m = X.shape[0]

    def grads(Ws):
        We = Ws[2] @ Ws[1] @ Ws[0]
        R = X @ We.T - Y
        S = R if p == 2 else np.sign(R) * np.abs(R) ** (p - 1)
        g = S.T @ X / m
        return [(Ws[2] @ Ws[1]).T @ g + lam * Ws[0], Ws[2].T @ g @ Ws[0].T + lam * Ws[1],
                g @ (Ws[1] @ Ws[0]).T + lam * Ws[2]]

    return grads


def flat_numpy_rhs(prob, layers):
    shapes = [w.shape for w in layers]
    sizes = [int(np.prod(s)) for s in shapes]
    grads = numpy_layer_field(prob)

    def unflatten(y):
        out, i = [], 0
        for s, n in zip(shapes, sizes):
            out.append(y[i:i + n].reshape(s))
            i += n
        return out

    def rhs(t, y):
        return -np.concatenate([g.ravel() for g in grads(unflatten(y))])

    y0 = np.concatenate([np.asarray(w).ravel() for w in layers])
    return rhs, y0, unflatten


# ----------------------------------------------------------------------------- sections
def compile_latency(prob, layers):
    w_e = linflow.end_to_end(layers)
    calls = {
        "gradient_flow": lambda t1, tol: linflow.gradient_flow(prob, layers, t1, rtol=tol),
        "end_to_end_flow": lambda t1, tol: linflow.end_to_end_flow(prob, w_e, 3, t1, rtol=tol),
        "gradient_descent": lambda t1, tol: linflow.gradient_descent(prob, layers, t1 / 500, 500, save_every=5),
        "end_to_end_descent": lambda t1, tol: linflow.end_to_end_descent(prob, w_e, 3, t1 / 500, 500, save_every=5),
        "modified_flow": lambda t1, tol: linflow.modified_flow(prob, layers, t1 / 500, t1, rtol=tol),
    }
    caches = [integrate._solve._cached, descent._descend._cached]
    out = {}
    for name, call in calls.items():
        first = once(lambda: call(10.0, 1e-8).end_to_end)
        before = [c._cache_size() for c in caches]
        warm = best_of(lambda: call(13.0, 1e-7).end_to_end, 2)  # new t1, eta (= t1 / 500) and tolerance
        recompiles = sum(c._cache_size() for c in caches) - sum(before)
        out[name] = {"first_call_s": first, "warm_call_s": warm, "recompilations": recompiles}
    return out


def time_at_error(errors, times, target):
    """Log-log interpolation of time against error at ``target`` (NaN outside the measured range)."""
    e, t = np.log(np.asarray(errors)), np.log(np.asarray(times))
    order = np.argsort(e)
    e, t = e[order], t[order]
    lt = np.log(target)
    if not e[0] <= lt <= e[-1]:
        return math.nan
    return float(np.exp(np.interp(lt, e, t)))


def versus_scipy(label, prob, layers, t1, ks, repeats):
    """Tolerance sweeps of linflow Tsit5 and SciPy RK45 / DOP853; times at equal achieved error."""
    ref = linflow.gradient_flow(prob, layers, t1, n_save=2, solver="dopri8", rtol=1e-13, atol=1e-16).end_to_end[-1]
    scale = np.abs(ref).max()
    rhs, y0, unflatten = flat_numpy_rhs(prob, layers)
    rows = {"linflow_tsit5": [], "linflow_dopri8": [], "scipy_RK45": [], "scipy_DOP853": []}
    for k in ks:
        rtol, atol = 10.0**-k, 10.0 ** -(k + 3)
        for solver in ("tsit5", "dopri8"):
            run = lambda: linflow.gradient_flow(prob, layers, t1, n_save=2, rtol=rtol, atol=atol,  # noqa: E731
                                                solver=solver)
            run()
            t = best_of(lambda: run().end_to_end, repeats)
            tr = run()
            rows[f"linflow_{solver}"].append((np.abs(tr.end_to_end[-1] - ref).max() / scale, t, int(tr.stats["nfev"])))
        for method in ("RK45", "DOP853"):
            best, sol = math.inf, None
            for _ in range(repeats):
                t0 = time.perf_counter()
                sol = solve_ivp(rhs, (0.0, t1), y0, method=method, rtol=rtol, atol=atol, t_eval=[t1])
                best = min(best, time.perf_counter() - t0)
            Ws = unflatten(sol.y[:, -1])
            err = np.abs(Ws[2] @ Ws[1] @ Ws[0] - ref).max() / scale
            rows[f"scipy_{method}"].append((err, best, sol.nfev))
    lin_err = [r[0] for r in rows["linflow_tsit5"]]
    target = float(np.exp(np.mean(np.log(lin_err))))  # mid-range achieved error
    t_lin = time_at_error(lin_err, [r[1] for r in rows["linflow_tsit5"]], target)
    out = {"problem": label, "tolerance_exponents": list(ks), "target_relative_error": target,
           "sweeps": {k: [{"error": e, "time_s": t, "nfev": n} for e, t, n in v] for k, v in rows.items()}}
    r8 = rows["linflow_dopri8"]
    t_lin8 = time_at_error([x[0] for x in r8], [x[1] for x in r8], target)
    for method in ("RK45", "DOP853"):
        r = rows[f"scipy_{method}"]
        t_sp = time_at_error([x[0] for x in r], [x[1] for x in r], target)
        out[f"speedup_vs_{method}"] = t_sp / t_lin if np.isfinite(t_sp) else math.nan
        out[f"dopri8_speedup_vs_{method}"] = t_sp / t_lin8 if np.isfinite(t_sp * t_lin8) else math.nan
    return out


def vf_eval_time(field, args, y, depth, n=200, repeats=3):
    """Time of one compiled vector-field evaluation, from a loop of ``n`` dependent evaluations."""

    @jax.jit
    def loop(y):
        return jax.lax.fori_loop(0, n, lambda i, y: jax.tree_util.tree_map(lambda a, b: a + 1e-300 * b, y,
                                                                           field(args, y, depth)), y)

    jax.block_until_ready(loop(y))
    return best_of(lambda: loop(y), repeats) / n


def overhead(label, prob, layers, t1, repeats):
    t_eval = vf_eval_time(layer_field, prob, layers, 3)
    run = lambda: linflow.gradient_flow(prob, layers, t1, n_save=2, rtol=1e-8, atol=1e-11)  # noqa: E731
    tr = run()
    t_solve = best_of(lambda: run().end_to_end, repeats)
    steps = 2000
    gd = lambda: linflow.gradient_descent(prob, layers, 1e-3, steps, save_every=steps)  # noqa: E731
    gd()
    t_gd = best_of(lambda: gd().end_to_end, repeats) / steps
    nfev = int(tr.stats["nfev"])
    return {"problem": label, "vf_eval_s": t_eval, "solve_s": t_solve, "nfev": nfev,
            "solver_overhead": t_solve / (nfev * t_eval), "gd_step_s": t_gd,
            "gd_overhead": t_gd / t_eval}


def versus_numpy_loop(label, prob, layers, steps, repeats):
    eta = 1e-3
    grads = numpy_layer_field(prob)

    def numpy_gd():
        Ws = [np.array(w) for w in layers]
        for _ in range(steps):
            G = grads(Ws)
            Ws = [w - eta * g for w, g in zip(Ws, G)]
        return Ws[0]

    t_np = best_of(numpy_gd, repeats)
    run = lambda: linflow.gradient_descent(prob, layers, eta, steps, save_every=steps)  # noqa: E731
    run()
    t_lin = best_of(lambda: run().end_to_end, repeats)
    return {"problem": label, "steps": steps, "numpy_steps_per_s": steps / t_np, "linflow_steps_per_s": steps / t_lin,
            "speedup": t_np / t_lin}


def sweeps32(label, prob, layers, t1, steps, repeats):
    etas = list(np.linspace(1e-3, 5e-3, 32))
    batched = lambda: linflow.gradient_descents(prob, layers, etas, steps, save_every=steps)  # noqa: E731
    seq = lambda: [linflow.gradient_descent(prob, layers, e, steps, save_every=steps) for e in etas]  # noqa: E731
    batched(), seq()
    tb, ts = best_of(lambda: [r.end_to_end for r in batched()], repeats), best_of(lambda: [r.end_to_end for r in seq()],
                                                                                  repeats)
    dims = (layers[0].shape[1], *(w.shape[0] for w in layers))
    starts = [init.balanced(dims, 0.4, seed=s) for s in range(32)]
    fb = lambda: linflow.gradient_flows(prob, starts, t1, n_save=2, rtol=1e-8, atol=1e-11)  # noqa: E731
    fs = lambda: [linflow.gradient_flow(prob, s, t1, n_save=2, rtol=1e-8, atol=1e-11) for s in starts]  # noqa: E731
    fb(), fs()
    tfb = best_of(lambda: [r.end_to_end for r in fb()], repeats)
    tfs = best_of(lambda: [r.end_to_end for r in fs()], repeats)
    t0 = time.perf_counter()
    for s in starts:
        rhs, y0, _ = flat_numpy_rhs(prob, s)
        solve_ivp(rhs, (0.0, t1), y0, method="RK45", rtol=1e-8, atol=1e-11, t_eval=[t1])
    tsp = time.perf_counter() - t0
    return {"problem": label, "gd_32_etas_batched_s": tb, "gd_32_sequential_s": ts, "gd_speedup": ts / tb,
            "flow_32_seeds_batched_s": tfb, "flow_32_sequential_s": tfs, "flow_speedup_vs_linflow": tfs / tfb,
            "scipy_rk45_32_sequential_s": tsp, "flow_speedup_vs_scipy": tsp / tfb}


def fit_exponent(xs, ts):
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def scaling(quick):
    out = {}
    ds = [16, 32, 64] if quick else [16, 32, 64, 128, 256, 512, 1024]
    rows = {"layer_flow": [], "end_to_end_general": [], "claim2_k1": []}
    for d in ds:
        rng = np.random.default_rng(d)
        X = rng.standard_normal((max(2 * d, 64), d))
        prob1 = problems.Problem(X, X @ rng.standard_normal(d) / np.sqrt(d))
        prob4 = problems.Problem(X, X @ rng.standard_normal((d, 4)) / np.sqrt(d))
        layers = init.balanced((d, d, d, 1), 0.5)
        rows["layer_flow"].append(vf_eval_time(layer_field, prob1, layers, 3, n=50))
        w4 = jnp.asarray(rng.standard_normal((4, d)) / np.sqrt(d))
        rows["end_to_end_general"].append(vf_eval_time(end_to_end_field, prob4, w4, 3, n=20))
        w1 = jnp.asarray(rng.standard_normal((1, d)) / np.sqrt(d))
        rows["claim2_k1"].append(vf_eval_time(claim2_field, prob1, w1, 3, n=200))
    out["d"] = {"values": ds, **{k: {"eval_s": v, "exponent": fit_exponent(ds, v)} for k, v in rows.items()}}
    ms = [500, 1000, 2000] if quick else [500, 1000, 2000, 4000, 8000, 16000]
    t_m = []
    for m in ms:
        prob = problems.synthetic(m=m, d=32, p=4)
        t_m.append(vf_eval_time(layer_field, prob, init.balanced((32, 16, 16, 1), 0.5), 3, n=50))
    out["m_p4"] = {"values": ms, "eval_s": t_m, "exponent": fit_exponent(ms, t_m)}
    Ns = [1, 2, 4] if quick else [1, 2, 3, 4, 6, 8, 12]
    t_n = []
    prob = problems.synthetic(m=500, d=32)
    for N in Ns:
        t_n.append(vf_eval_time(layer_field, prob, init.balanced((32,) + (32,) * (N - 1) + (1,), 0.5), N, n=100))
    out["depth"] = {"values": Ns, "eval_s": t_n, "exponent": fit_exponent(Ns, t_n)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute (CI)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")), help="JSON output file")
    args = parser.parse_args(argv)
    q = args.quick
    repeats = 1 if q else 3
    started = time.perf_counter()
    small = small_l2()
    gas = gas_l4(q)
    res = {"machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "python": platform.python_version(), "jax": jax.__version__,
                       "device": str(jax.devices()[0]), "cpu_count": __import__("os").cpu_count()},
           "quick": q}
    res["startup"] = startup(1 if q else 5)
    res["compilation_cache"] = None if q else compilation_cache()  # two CLI runs: full mode only
    res["compile_latency"] = compile_latency(small[1], small[2])
    ks = (6, 9) if q else (5, 6, 7, 8, 9, 10)
    problems_ = [small] if q else [small, gas]  # quick mode: the small problem only (it keeps the script working)
    res["vs_scipy"] = [versus_scipy(*pr, ks, repeats) for pr in problems_]
    res["overhead"] = [overhead(*pr, repeats) for pr in problems_]
    res["vs_numpy_loop"] = [versus_numpy_loop(pr[0], pr[1], pr[2], steps, repeats)
                            for pr, steps in zip(problems_, (200 if q else 2000, 500))]
    res["sweeps32"] = sweeps32(small[0], small[1], small[2], 5.0 if q else small[3], 100 if q else 1000, repeats)
    res["scaling"] = scaling(q)
    res["wall_time_s"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(report(res))
    print(f"\nwrote {args.out} ({res['wall_time_s']:.0f} s)")
    return res


def report(res) -> str:
    L = [f"machine: {res['machine']['processor']}, {res['machine']['cpu_count']} cores, device {res['machine']['device']}, "
         f"jax {res['machine']['jax']}", "", startup_report(res["startup"], res["compilation_cache"]), "",
         "compile latency (first call) and recompilations across new t1/eta/tol:"]
    for name, r in res["compile_latency"].items():
        L.append(f"  {name:<20} first {r['first_call_s']:6.2f} s   warm {r['warm_call_s'] * 1e3:8.2f} ms   "
                 f"recompilations {r['recompilations']}")
    L.append("\nlinflow gradient_flow vs scipy solve_ivp with a NumPy field, at equal achieved error (time ratios):")
    for r in res["vs_scipy"]:
        L.append(f"  {r['problem']}: relative error {r['target_relative_error']:.1e}: tsit5 {r['speedup_vs_RK45']:.1f}x "
                 f"RK45, {r['speedup_vs_DOP853']:.1f}x DOP853; dopri8 {r['dopri8_speedup_vs_RK45']:.1f}x RK45, "
                 f"{r['dopri8_speedup_vs_DOP853']:.1f}x DOP853")
    L.append("\noverhead over the limit (1.0 = only vector-field evaluations):")
    for r in res["overhead"]:
        L.append(f"  {r['problem']}: solver {r['solver_overhead']:.2f}x  (nfev {r['nfev']}, eval "
                 f"{r['vf_eval_s'] * 1e6:.1f} us);  GD step {r['gd_overhead']:.2f}x one gradient")
    L.append("\ngradient_descent vs a NumPy loop doing the same update:")
    for r in res["vs_numpy_loop"]:
        L.append(f"  {r['problem']}: {r['linflow_steps_per_s']:.0f} vs {r['numpy_steps_per_s']:.0f} steps/s "
                 f"({r['speedup']:.1f}x)")
    s = res["sweeps32"]
    L.append(f"\n32-wide sweeps ({s['problem']}):\n  GD, 32 etas batched vs 32 calls: {s['gd_speedup']:.1f}x\n"
             f"  flow, 32 seeds batched vs 32 linflow calls: {s['flow_speedup_vs_linflow']:.1f}x, "
             f"vs 32 scipy RK45 solves: {s['flow_speedup_vs_scipy']:.1f}x")
    sc = res["scaling"]
    L.append("\nscaling of one vector-field evaluation (fitted exponents):")
    L.append(f"  d = {sc['d']['values']}: layer flow d^{sc['d']['layer_flow']['exponent']:.2f}, general "
             f"end-to-end (eigh) d^{sc['d']['end_to_end_general']['exponent']:.2f}, k = 1 form "
             f"d^{sc['d']['claim2_k1']['exponent']:.2f}")
    L.append(f"  m = {sc['m_p4']['values']} (p = 4): m^{sc['m_p4']['exponent']:.2f};  depth N = "
             f"{sc['depth']['values']}: N^{sc['depth']['exponent']:.2f}")
    return "\n".join(L)


if __name__ == "__main__":
    main()
