"""Build the notebooks from the cell lists below and execute them (outputs are committed).

Run from the repository root: ``python notebooks/build.py``. Each notebook uses linflow's public API
only; the test suite executes them again with nbmake.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text):
    return nbformat.v4.new_code_cell(text.strip())


SETUP = code("""
import numpy as np
import matplotlib.pyplot as plt
import linflow
from linflow import problems, init
%matplotlib inline
""")

QUICKSTART = [
    md("""
# 01 · Quickstart: four trajectories of one run

A deep linear network `W_e = W_N ... W_1` trained on an lp regression loss can be followed in four ways:

1. the **gradient flow of the layers** (an ODE, integrated with an adaptive solver),
2. the **end-to-end flow** of Arora, Cohen & Hazan (2018), Theorem 1, an ODE on `W_e` alone,
3. **gradient descent** on the layers (step `eta`),
4. the **end-to-end update** (their Eq. 10), the discrete rule on `W_e` alone.

Time convention: GD iterate `k` sits at flow time `t = k * eta`.
"""),
    SETUP,
    md("The embedded default problem: 2000 samples, 32 features on very different scales, one output."),
    code("""
prob = problems.synthetic(p=2)
layers = init.balanced((prob.d, 16, 16, 1), scale=0.2, seed=0)   # exactly balanced start
print(prob.m, prob.d, prob.k, "imbalance at start:", float(linflow.imbalance(layers)))
"""),
    code("""
t1, eta = 60.0, 0.1
steps = int(t1 / eta)
flow = linflow.gradient_flow(prob, layers, t1, n_save=121)
e2e = linflow.end_to_end_flow(prob, linflow.end_to_end(layers), 3, t1, n_save=121)
gd = linflow.gradient_descent(prob, layers, eta, steps, save_every=5)
eq10 = linflow.end_to_end_descent(prob, linflow.end_to_end(layers), 3, eta, steps, save_every=5)
for tr in (flow, e2e, gd, eq10):
    print(tr)
"""),
    code("""
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(flow.ts, flow.loss, "k", lw=3, label="layer flow")
ax.plot(e2e.ts, e2e.loss, "r--", label="end-to-end flow (Thm 1)")
ax.plot(gd.ts, gd.loss, ".", ms=3, label=f"GD, eta={eta}")
ax.plot(eq10.ts, eq10.loss, ":", label="Eq. 10")
ax.set(yscale="log", xlabel="flow time t = k eta", ylabel="loss"); ax.legend();
"""),
    md("""
**What you should see:** the two flows lie on top of each other (Theorem 1: from a balanced start the
product of the layer flow *is* the end-to-end flow), and both discrete runs follow them closely at this
small `eta`. The gap between the flows is at the solver tolerance:
"""),
    code("""
gap = np.abs(flow.end_to_end - e2e.end_to_end).max() / np.abs(flow.end_to_end).max()
print(f"max relative gap between the two flows: {gap:.1e}")
"""),
    md("## Width does not matter, depth does"),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for w in (1, 4, 32):
    tr = linflow.gradient_flow(prob, init.balanced((prob.d, w, w, 1), 0.2, seed=0), t1, n_save=121)
    axes[0].plot(tr.ts, tr.loss, label=f"width {w}")
for N in (1, 2, 3, 4):
    dims = (prob.d,) + (16,) * (N - 1) + (1,)
    tr = linflow.gradient_flow(prob, init.balanced(dims, 0.2 ** (3 / N), seed=0), t1, n_save=121)
    axes[1].plot(tr.ts, tr.loss, label=f"depth {N}")
for ax, title in zip(axes, ("depth 3, several widths", "several depths, same start W_e")):
    ax.set(yscale="log", xlabel="t", ylabel="loss", title=title); ax.legend()
"""),
    md("""
**What you should see:** the three widths give the same curve (the end-to-end dynamics depends on the
depth only, and a balanced start with the same `W_e` gives the same flow); changing the depth changes
the curve, including the plateau near `W_e = 0` that deeper networks spend longer on.

## l2 against l4
"""),
    code("""
fig, ax = plt.subplots(figsize=(7, 4))
for p in (2, 4):
    pr = problems.synthetic(p=p)
    for N in (1, 3):
        dims = (pr.d,) + (16,) * (N - 1) + (1,)
        tr = linflow.gradient_flow(pr, init.balanced(dims, 0.2 ** (3 / N), seed=0), t1, n_save=121)
        ax.plot(tr.ts, tr.loss / tr.loss[0], label=f"l{p}, depth {N}")
ax.set(yscale="log", xlabel="t", ylabel="loss / initial loss"); ax.legend();
"""),
    md("""
**What you should see:** with the l4 loss the curvature near the minimum vanishes and depth-1 gradient
flow crawls; the preconditioning that depth adds (ACH18) changes the picture differently for l2 and l4.
"""),
]

SOLVERS_NB = [
    md("""
# 02 · Solver accuracy: which ODE solver to trust on gradient flows

Work-precision diagrams with the methodology of SciML's DiffEqBenchmarks: reference from the exact
solution (whitened data, aligned balanced start), tolerances `rtol = 10^-k`, `atol = 10^-(k+3)`, RMS
error of `W_e` over 100 times, work in function evaluations and in wall time (compilation excluded).
SciPy's `solve_ivp` drives the same vector field.
"""),
    SETUP,
    code("""
from linflow import accuracy, plot
prob, layers, t1 = accuracy.case("exact")
wp = linflow.work_precision(prob, layers, t1, tolerances=(4, 6, 8, 10), repeats=1)
print(accuracy.table(wp, [4, 8, 10]))
"""),
    code("plot.work_precision_nfev(wp);"),
    code("plot.work_precision_time(wp);"),
    md("""
**What you should see:** the error falls as the tolerance tightens for every adaptive solver; at tight
tolerances the higher-order Dopri8 needs the fewest evaluations; Tsit5 is the fastest in wall time over
most of the range; the fixed-step Euler and Heun lines have slopes 1 and 2; the implicit Kvaerno5 pays
for its Newton iterations on this non-stiff flow.

## A stiff case: large weight decay
"""),
    code("""
prob_s, layers_s, t1_s = accuracy.case("weight_decay")
wp_s = linflow.work_precision(prob_s, layers_s, t1_s, solvers=("tsit5", "dopri8", "kvaerno5"),
                              scipy_solvers=("RK45", "Radau"), tolerances=(4, 6, 8), repeats=1)
print(accuracy.table(wp_s))
plot.work_precision_nfev(wp_s);
"""),
    md("## Long horizons: steps limited by stability"),
    code("""
prob_l, layers_l, _ = accuracy.case("long_horizon")
steps = accuracy.step_sizes(prob_l, layers_l, 200.0)
plot.step_size_figure(steps);
"""),
    md("""
**What you should see:** once the flow has converged, Tsit5's step sits near `3.5 / sharpness`: the
explicit solver is limited by stability, not accuracy, so its step count grows like `t1 * sharpness`.

**Advice.** For these flows use `tsit5` at `rtol` 1e-8 or looser; `dopri8` when you need 1e-10 and
below; an implicit solver only when weight decay or very long horizons make the flow stiff enough that
the explicit step is stability-bound for most of the run.
"""),
]

TEACHING = [
    md("""
# 03 · From gradient descent to gradient flow

A teaching notebook: gradient descent is the forward Euler method for the gradient flow. We measure
what that means on a deep linear network: the order of the error, the modified equation, the
stability limit, and what happens to balancedness. Everything uses linflow's public API.
"""),
    SETUP,
    md("## 1. GD is Euler: the error falls like eta"),
    code("""
prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
layers = init.balanced((3, 3, 3, 3), 0.3, seed=1)
t1, points = 4.0, 41
spacing = t1 / (points - 1)
etas = [spacing / n for n in (1, 2, 4, 8, 16)]
cmp = linflow.compare(prob, layers, etas, t1, points=points, rtol=1e-12, atol=1e-14)
print(linflow.comparison.summary_text(cmp))
"""),
    code("from linflow import plot\nplot.deviation_vs_eta(cmp);"),
    md("""
**What you should see:** on log-log axes the distance of GD from the gradient flow has slope 1
(first order), from the **first-order modified flow** `-(g + (eta/2) H g)` slope 2, and from the
second-order one slope 3: backward error analysis, measured.

## 2. The stability limit 2 / sharpness and a period-2 orbit
For the scalar network `L = (1/2)(w_N ... w_1 - s)^2` at its balanced minimum the sharpness is
`N s^(2-2/N)`, so GD is stable only for `eta < 2 / (N s^(2-2/N))`.
"""),
    code("""
s, N = 1.5, 2
eta_crit = 2 / (N * s ** (2 - 2 / N))
scalar = linflow.Problem(np.array([[1.0]]), np.array([s]))
at_min = tuple(np.full((1, 1), s ** (1 / N)) for _ in range(N))
print("sharpness:", float(linflow.sharpness(scalar, at_min)), " N s^(2-2/N):", N * s ** (2 - 2 / N))
start = tuple(w * 1.001 for w in at_min)
fig, ax = plt.subplots(figsize=(7, 4))
for f in (0.95, 1.05):
    gd = linflow.gradient_descent(scalar, start, f * eta_crit, 400)
    ax.plot(gd.iterations, gd.end_to_end[:, 0, 0] - s, label=f"eta = {f} eta_crit")
ax.set(xlabel="iteration", ylabel="w2 w1 - s", title="below and above 2 / sharpness"); ax.legend();
"""),
    md("""
**What you should see:** at 0.95 `eta_crit` the oscillation around the minimum dies out; at 1.05 it
grows until GD settles into a period-2 orbit, jumping between two points on either side of the minimum.

## 3. Balancedness: conserved by the flow, drifting under GD
`D_j = W_{j+1}^T W_{j+1} - W_j W_j^T` is constant along the flow; under GD it changes by exactly
`eta^2 (G_{j+1}^T G_{j+1} - G_j G_j^T)` per step, the term ACH18 neglect.
"""),
    code("plot.balancedness_drift(cmp);"),
    md("""
**What you should see:** the measured imbalance (lines) and the accumulated `eta^2` terms (dots)
coincide to round-off; the drift scales like `eta` over a fixed horizon.

## 4. The end-to-end preconditioner P_W
Claim 1: `vec(dW_e/dt) = -P_W vec(grad)`, with eigenvalues `sum_j sigma_r^(2(N-j)/N) sigma_r'^(2(j-1)/N)`.
"""),
    code("""
W = np.diag([2.0, 1.0, 0.3]) @ np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
fig, ax = plt.subplots(figsize=(6, 4))
for N in (1, 2, 3, 6):
    P = np.asarray(linflow.preconditioner(W, N))
    ax.plot(np.sort(np.linalg.eigvalsh(P)), "o-", label=f"N = {N} (explicit P_W)")
    ax.plot(linflow.preconditioner_eigenvalues(W, N), "k.", ms=3)
ax.set(yscale="log", xlabel="index", ylabel="eigenvalue", title="spectrum of P_W (dots: closed form)"); ax.legend();
"""),
    md("""
**What you should see:** for N = 1 all eigenvalues are 1 (plain gradient descent); with depth they spread
out, growing with the singular values of `W`: directions already learned are accelerated.

## 5. Theorem 2: the end-to-end field is not a gradient
"""),
    code("""
from linflow import reproduce
ds, summary, figs = reproduce.run("theorem2", quick=True)
print(summary["measured"])
figs["theorem2"]
"""),
    md("""
**What you should see:** the loop integral of the field is zero for N = 1 and 2 (gradient fields for a
linear loss) and equals the closed form `2 ||g|| r^(3-2/N) (N-1)(N-2)/(3N-2)` for N = 3, 4: no loss
function has this field as its gradient. The quadrature converges to the closed form as it is refined.
"""),
]

PAPER = [
    md("""
# 04 · The paper's experiments

Quick versions of `linflow reproduce` (the full runs: `linflow reproduce all --data PATH`). They use the
UCI gas-sensor data when it is found beside the repository, and the embedded synthetic problem
otherwise (every summary says which).
"""),
    SETUP,
    code("""
from pathlib import Path
from linflow import reproduce
data = next((str(p / "shared" / "data" / "gas_sensor") for p in Path.cwd().resolve().parents
             if (p / "shared" / "data" / "gas_sensor").is_dir()), None)
print("data:", data)
"""),
    code("""
results = {}
for name in ("fig2", "fig3", "section6"):
    ds, summary, figs = reproduce.run(name, data=data, quick=True)
    results[name] = (summary, figs)
    print(f"[{name}] agrees: {summary['agrees']}\\n  paper: {summary['paper']}\\n  measured: {summary['measured']}\\n")
"""),
    code("results['fig2'][1]['fig2']"),
    md("""
**What you should see (fig2):** GD on depth-2 and depth-3 networks of widths 1 and 4 follows the
end-to-end rule: the curves coincide and the final losses do not depend on the width.
"""),
    code("results['fig3'][1]['fig3']"),
    md("""
**What you should see (fig3):** each depth with its best learning rate from the grid; the summary gives
the speed-up over depth 1 for l2 and l4. In quick mode (400 samples, 400 iterations) these are indications,
not the paper's numbers: run the full experiment for those.
"""),
    code("results['section6'][1]['section6']"),
]

NOTEBOOKS = {"01_quickstart": QUICKSTART, "02_solver_accuracy": SOLVERS_NB, "03_from_descent_to_flow": TEACHING,
             "04_paper_experiments": PAPER}


def build(names=None, execute=True):
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                            "language": "python"}})
        if execute:
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
            print(f"{name}: executed in {time.perf_counter() - t0:.0f} s")
        nbformat.write(nb, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    build(sys.argv[1:] or None)
