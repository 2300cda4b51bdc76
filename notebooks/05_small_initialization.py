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
# # 05 · Learning from a small start: saddles, plateaus, one mode at a time
#
# A teaching notebook. A deep linear network started near zero does not learn its target all at once: it
# learns the target's singular modes one after another, the strongest first, and between two modes the loss
# sits on a plateau near a saddle point. How long a plateau lasts depends on how small the start is, and on the
# depth. Everything below uses linflow's public API; the mathematics is in `docs/math.md` sections 4 and 10.

# %%
import numpy as np
import linflow
from linflow import plot, problems, init
from linflow.studies import saddles
# %matplotlib inline

# %% [markdown]
# ## 1. One mode at a time
# Whitened regression with a target of singular values 3, 1 and 0.3, a depth-3 network whose product starts as
# $\alpha$ times the target's singular vectors ($\alpha = 10^{-6}$). Each singular value then obeys its own equation,
# $\dot\sigma = N \sigma^{2-2/N} (s - \sigma)$, and its *escape time* (when it reaches half of $s$) has a closed form.

# %%
study = saddles.saddle_to_saddle((3.0, 1.0, 0.3), depths=(2, 3), alphas=(1e-2, 1e-4, 1e-6, 1e-8), curve_points=61)
plot.saddle_curves(study, depth=3, alpha=1e-6);

# %% [markdown]
# **What you should see:** three drops of the loss, each to the next dotted level $\sum_{i>j} s_i^2 / 2$; the
# singular values rise one at a time, each crossing its dotted line $s_i / 2$ at a red line (the closed-form
# escape); the effective rank falls from 3 (a tiny start with three equal singular values) to 1 as the first mode
# is learned, then steps up at each escape (to 2.17 at the end: the effective rank of singular values 3, 1, 0.3).
# Between the escapes the network is close to a saddle point of the loss, and it stays there a long time.

# %%
summary = saddles.summary(study)
for flow, acc in summary["accuracy"].items():
    print(f"{flow:>10} flow: largest relative error of an escape time against the closed form = {acc['max_relative_error']:.1e}")
assert all(acc["passes"] for acc in summary["accuracy"].values())
assert max(summary["plateaus"]["relative_deviation"][3]) < 1e-3  # the plateaus sit at their levels

# %% [markdown]
# ## 2. Smaller starts, longer plateaus
# At depth 2 an escape takes $\ln(1/\alpha) / (2 s)$; at depth $N \ge 3$ it takes about $\alpha^{-(1-2/N)} / ((N-2) s)$,
# a power of $1 / \alpha$. The flows (markers) sit on the closed form (lines); the random start (crosses: the same
# singular values $\alpha$, random orientation) escapes a little later.

# %%
plot.escape_scaling(study);
for row in summary["exponents"]:
    if row["flow"] == "layers":
        print(f"depth {row['depth']}, mode {row['mode']}: fitted exponent {row['exponent']:.3f} (theory {row['theory']:.3f})")
assert summary["exponents_pass"]

# %% [markdown]
# ## 3. Why the end-to-end flow needs care here
# Theorem 1's flow of $W_e$ itself is exact mathematics, but from $\alpha = 10^{-10}$ its state is a matrix whose
# entries sit below any absolute tolerance, and after the first escape a weak mode of $10^{-10}$ beside a strong one
# of order 1 is at the strong one's rounding level. linflow's *root state* stores
# $\Theta = U \operatorname{diag}(\theta) V^\top$ with $\theta = \sigma^{1/N}$
# instead (the weak mode as $\alpha^{1/N}$, as the layers do).

# %%
prob = problems.whitened([3.0, 1.0, 0.3])
W0 = linflow.end_to_end(init.aligned(prob, 2, 1e-10))
exact = saddles.exact_escape_times([3.0, 1.0, 0.3], 1e-10, 2)
for state in ("dense", "root"):
    flow = linflow.EndToEndFlow(prob, 2, state=state)
    out = linflow.first_passages(flow, flow.start(W0), np.array([3.0, 1.0, 0.3]) / 2, 1.2 * exact[-1])
    print(f"{state:>5} state: relative errors of the escape times {np.abs(out['times'] / exact - 1)}")

# %% [markdown]
# ## 4. Gradient descent shifts the escapes, and pays for the plateaus
# GD with step $\eta$ follows the flow at $t = k\eta$ up to $O(\eta)$: each escape moves by an amount proportional
# to $\eta$. And every plateau costs GD $\text{length} / \eta$ steps, where an adaptive solver strides across it.

# %%
gd = saddles.gd_escapes((3.0, 1.0, 0.3), depth=3, alpha=1e-6, etas=(0.04, 0.02, 0.01))
plot.gd_escape_shift(gd);
print("fitted order of the shift in eta per mode:", np.round(gd.shift_order.values, 3))
print("GD steps at eta = 0.01:", int(gd.gd_steps.sel(eta=0.01)))
print("solver steps:", {str(k): int(v) for k, v in zip(gd.solver.values, gd.solver_steps.values)})
assert np.allclose(gd.shift_order.values, 1.0, atol=0.1)

# %% [markdown]
# **What you should see:** straight lines of slope 1 (the shift is first order in $\eta$, as backward error
# analysis says), and GD needing many times the solver's steps. The explicit solver is limited by the same
# stability bound as GD once the strong mode is learned (the sharpness then is $N s_1^{2-2/N}$); the implicit
# one is not, provided its stage equations are solved by Newton's method (`kvaerno5-newton`): diffrax's default
# chord iteration keeps one Jacobian per step, fails on this flow and rejects steps.
#
# ## 5. Beyond regression
# The same flows run on matrix sensing and matrix completion (`linflow.sensing`). In Razin & Cohen's 2 x 2
# completion problem the loss goes to zero while every norm of $W_e$ grows without bound: run
# `linflow reproduce razin-cohen` (its figure and verdict; about a minute in quick mode).
