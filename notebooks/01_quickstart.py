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
# # 01 · Quickstart: four trajectories of one run
#
# A deep linear network $W_e = W_N \cdots W_1$ trained on an lp regression loss can be followed in four ways:
#
# 1. the **gradient flow of the layers** (an ODE, integrated with an adaptive solver),
# 2. the **end-to-end flow** of Arora, Cohen & Hazan (2018), Theorem 1, an ODE on $W_e$ alone,
# 3. **gradient descent** on the layers (step $\eta$),
# 4. the **end-to-end update** (their Eq. 10), the discrete rule on $W_e$ alone.
#
# Time convention: GD iterate $k$ sits at flow time $t = k\eta$.

# %%
import numpy as np
import matplotlib.pyplot as plt
import linflow
from linflow import problems, init
# %matplotlib inline

# %% [markdown]
# The embedded default problem: 2000 samples, 32 features on very different scales, one output.

# %%
prob = problems.synthetic(p=2)
layers = init.balanced((prob.d, 16, 16, 1), scale=0.2, seed=0)   # exactly balanced start
print(prob.m, prob.d, prob.k, "imbalance at start:", float(linflow.imbalance(layers)))

# %%
t1, eta = 60.0, 0.1
steps = int(t1 / eta)
flow = linflow.gradient_flow(prob, layers, t1, n_save=121)
e2e = linflow.end_to_end_flow(prob, linflow.end_to_end(layers), 3, t1, n_save=121)
gd = linflow.gradient_descent(prob, layers, eta, steps, save_every=5)
eq10 = linflow.end_to_end_descent(prob, linflow.end_to_end(layers), 3, eta, steps, save_every=5)
for tr in (flow, e2e, gd, eq10):
    print(tr)

# %%
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(flow.ts, flow.loss, "k", lw=3, label="layer flow")
ax.plot(e2e.ts, e2e.loss, "r--", label="end-to-end flow (Thm 1)")
ax.plot(gd.ts, gd.loss, ".", ms=3, label=f"GD, eta={eta}")
ax.plot(eq10.ts, eq10.loss, ":", label="Eq. 10")
ax.set(yscale="log", xlabel="flow time t = k eta", ylabel="loss")
ax.legend();

# %% [markdown]
# **What you should see:** the two flows lie on top of each other (Theorem 1: from a balanced start the
# product of the layer flow *is* the end-to-end flow), and both discrete runs follow them closely at this
# small $\eta$. The gap between the flows is at the solver tolerance:

# %%
gap = np.abs(flow.end_to_end - e2e.end_to_end).max() / np.abs(flow.end_to_end).max()
print(f"max relative gap between the two flows: {gap:.1e}")

# %% [markdown]
# ## Width does not matter, depth does

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for w in (1, 4, 32):
    tr = linflow.gradient_flow(prob, init.balanced((prob.d, w, w, 1), 0.2, seed=0), t1, n_save=121)
    axes[0].plot(tr.ts, tr.loss, label=f"width {w}")
for N in (1, 2, 3, 4):
    dims = (prob.d,) + (16,) * (N - 1) + (1,)
    tr = linflow.gradient_flow(prob, init.balanced(dims, 0.2 ** (3 / N), seed=0), t1, n_save=121)
    axes[1].plot(tr.ts, tr.loss, label=f"depth {N}")
for ax, title in zip(axes, ("depth 3, several widths", "several depths, same start W_e")):
    ax.set(yscale="log", xlabel="t", ylabel="loss", title=title)
    ax.legend()

# %% [markdown]
# **What you should see:** the three widths give the same curve (the end-to-end dynamics depends on the
# depth only, and a balanced start with the same $W_e$ gives the same flow); changing the depth changes
# the curve, including the plateau near $W_e = 0$ that deeper networks spend longer on.
#
# ## l2 against l4

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for p in (2, 4):
    pr = problems.synthetic(p=p)
    for N in (1, 3):
        dims = (pr.d,) + (16,) * (N - 1) + (1,)
        tr = linflow.gradient_flow(pr, init.balanced(dims, 0.2 ** (3 / N), seed=0), t1, n_save=121)
        ax.plot(tr.ts, tr.loss / tr.loss[0], label=f"l{p}, depth {N}")
ax.set(yscale="log", xlabel="t", ylabel="loss / initial loss")
ax.legend();

# %% [markdown]
# **What you should see:** with the l4 loss the curvature near the minimum vanishes and depth-1 gradient
# flow crawls; the preconditioning that depth adds (ACH18) changes the picture differently for l2 and l4.
