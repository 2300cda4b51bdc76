# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Explorables, live: move $\eta$ past $2/S$, tighten a tolerance
#
# A teaching notebook with live controls (ipywidgets): the two explorables of the docs site, computed here by
# linflow in the kernel at every move of a control. Each computation is compiled once; the learning rate and the
# tolerances enter it as values, so a slider move never recompiles (the last cell measures it). Without a running
# kernel (on the docs site) the controls are inert: the figures under them show a few settings, drawn by the same
# functions. The mathematics is in `docs/math.md` sections 2, 5 and 7.

# %%
import time

import ipywidgets as widgets
import numpy as np
from IPython.display import display

import linflow
from linflow.studies import explorables

problem = explorables.plane_problem()            # two features: W_e is a point of the plane
start = explorables.plane_start(problem)          # depth 3, width 2, balanced
crit = 2 / float(linflow.gfs_sharpness(problem, start))   # 2 / S of the flow's limit
ts = np.linspace(0, explorables.HORIZON, 241)
flow = linflow.gradient_flow(problem, start, explorables.HORIZON, ts=ts, rtol=1e-10, atol=1e-12)
flow_we = np.asarray(flow.end_to_end)[:, 0, :]
print(f"2 / S = {crit:.4f}")

# %% [markdown]
# ## 1. Gradient descent leaves the flow
#
# The slider sets $\eta$ as a multiple of $2/S$, $S$ the sharpness of the flow's limit. Below $1$ the red iterates
# follow the black path at a distance $O(\eta)$; above it they cannot settle where the flow does.
#
# **What you should see** (the three settings under the slider, drawn by the same function): at $0.05 \times 2/S$
# the dots sit on the path; at $0.8 \times 2/S$ they lag and overshoot but still end at the flow's limit; at
# $1.5 \times 2/S$ gradient descent cannot stay at that limit (it is too sharp for this $\eta$) and goes elsewhere.


# %%
import matplotlib.pyplot as plt  # noqa: E402
# %matplotlib inline


def draw_plane(ratio):
    eta = ratio * crit
    gd = explorables.live_plane(eta, problem, start)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    ax.plot(flow_we[:, 0], flow_we[:, 1], "k-", lw=2, label="gradient flow")
    ax.plot(gd["w1"], gd["w2"], "o", color="crimson", ms=3, label=f"GD, eta = {eta:.3g}")
    ax.set(xlabel="W_e[0]", ylabel="W_e[1]", title=f"eta = {ratio:.2f} x 2/S: GD {gd['status']}")
    ax.legend(fontsize=8)
    bx.semilogy(ts, np.asarray(flow.loss), "k-", lw=2, label="gradient flow")
    bx.semilogy(gd["t"], gd["loss"], "o", color="crimson", ms=3, label="GD (t = k eta)")
    bx.set(xlabel="flow time t", ylabel="loss", title="loss")
    bx.legend(fontsize=8)
    plt.show()


ratio = widgets.FloatLogSlider(value=0.3, base=10, min=-1.7, max=0.4, step=0.01, description="eta / (2/S)")
display(widgets.VBox([ratio, widgets.interactive_output(draw_plane, {"ratio": ratio})]))
# three settings drawn by the same function (what the page shows without a kernel)
draw_plane(0.05)
draw_plane(0.8)
draw_plane(1.5)

# %% [markdown]
# ## 2. How accurate is my solver?
#
# Pick an adaptive solver and the tolerance exponent $k$ ($\text{rtol} = 10^{-k}$, $\text{atol} = 10^{-(k+3)}$):
# the curve is the error of $W_e(t)$ against the closed-form solution (docs/math.md section 4) on the layer flow of
# `whitened([2, 1, 0.5])`, depth 3.


# %%
def draw_accuracy(solver, k):
    out = explorables.live_accuracy(solver, k)
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    ax.semilogy(out["t"][1:], np.maximum(out["error"][1:], 1e-17), "-", lw=2)
    ax.axhline(10.0 ** -k, color="0.5", ls=":", label="rtol")
    ax.set(xlabel="t", ylabel="||W_e(t) - exact||", ylim=(1e-16, 1e-1),
           title=f"{solver}, rtol = 1e-{k}: {out['nfev']} evaluations, {out['steps']} steps ({out['status']})")
    ax.legend(fontsize=8)
    plt.show()


solver = widgets.Dropdown(options=["bosh3", "tsit5", "dopri5", "dopri8"], value="tsit5", description="solver")
k = widgets.IntSlider(value=6, min=3, max=12, description="k")
display(widgets.VBox([widgets.HBox([solver, k]),
                      widgets.interactive_output(draw_accuracy, {"solver": solver, "k": k})]))
# three settings drawn by the same function (what the page shows without a kernel)
draw_accuracy("tsit5", 4)
draw_accuracy("tsit5", 10)
draw_accuracy("dopri8", 10)

# %% [markdown]
# ## 3. A slider move costs milliseconds and never recompiles
#
# The time of one update's computation (the drawing comes on top), and the number of compiled programs before and
# after 20 moves of each control.

# %%
before = explorables.gd_on_the_plane._cache_size()
times = []
for r in np.geomspace(0.05, 2.0, 20):
    t0 = time.perf_counter()
    explorables.live_plane(r * crit, problem, start)
    times.append(time.perf_counter() - t0)
print(f"eta slider: median {1e3 * np.median(times):.1f} ms per move, compiled programs {before} -> "
      f"{explorables.gd_on_the_plane._cache_size()}")
times = []
for level in list(range(3, 13)) * 2:
    t0 = time.perf_counter()
    explorables.live_accuracy("tsit5", level)
    times.append(time.perf_counter() - t0)
print(f"tolerance slider: median {1e3 * np.median(times):.1f} ms per move")
