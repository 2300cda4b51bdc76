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
# # 09 · Momentum and Adam, continuous and discrete
#
# Gradient descent with a small step follows the gradient flow (notebook 03). The optimizers people run carry a
# memory: heavy ball and Nesterov a velocity, Adam two moving averages. Each has its own continuous model in flow
# time $t = k\eta$ (docs/math.md sections 13 and 14): a *leading* flow (heavy ball and Nesterov:
# $\dot\theta = -\nabla L / (1 - \beta)$, order 1 in $\eta$), a *second-order equation* that keeps the velocity, and
# the *modified flow* of its slow manifold (order 2). This notebook runs the four methods on one deep linear
# network with each one's flow beside it, shows the *initial layer* (what a run from rest does in its first steps),
# measures where the models stop describing the methods, what happens past heavy ball's stability edge, where
# Adam and RMSProp meet theirs, and what Adam follows when its betas are held fixed.

# %%
import matplotlib.pyplot as plt
import numpy as np
import optax

import linflow
from linflow import init, plot, problems
from linflow.studies import edges, momentum
# %matplotlib inline

# %% [markdown]
# ## 1. Four methods, each with its flow
# A depth-3 network on a whitened regression (target singular values 2, 1, 0.5), step $\eta = 0.01$, momentum
# $\beta = 0.5$; Adam with $1 - \beta_1 = 2\eta$ and $1 - \beta_2 = 4\eta$, the regime where its averages have a
# continuous limit. Dots: the methods (every 20th iterate); lines: the models.

# %%
prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
layers = init.balanced((3, 3, 3, 3), 0.3, seed=1)
eta, beta, T = 0.01, 0.5, 6.0
steps = round(T / eta)
b1, b2 = 1 - 2 * eta, 1 - 4 * eta

runs = {"GD": linflow.gradient_descent(prob, layers, eta, steps),
        "heavy ball": linflow.heavy_ball(prob, layers, eta, beta, steps),
        "Nesterov": linflow.nesterov(prob, layers, eta, beta, steps),
        "Adam": linflow.optax_descent(prob, layers, optax.adam(eta, b1, b2), eta, steps)}
ts = np.asarray(runs["GD"].ts)
flows = {"GD": linflow.modified_flow(prob, layers, eta, T, ts=ts),
         "heavy ball": linflow.heavy_ball_flow(prob, layers, eta, beta, T, ts=ts, start="initial_layer"),
         "Nesterov": linflow.nesterov_flow(prob, layers, eta, beta, T, ts=ts, start="initial_layer"),
         "Adam": linflow.adam_flow(prob, layers, eta, b1, b2, T, ts=ts)}
leading = linflow.heavy_ball_flow(prob, layers, eta, beta, T, ts=ts, model="leading")

fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
for i, name in enumerate(runs):
    ax.semilogy(ts[::20], np.asarray(runs[name].loss)[::20], "o", ms=3, color=f"C{i}", label=f"{name}")
    ax.semilogy(ts, np.asarray(flows[name].loss), "-", color=f"C{i}", lw=1.2)
ax.semilogy(ts, np.asarray(leading.loss), "k:", lw=1, label="leading flow of both momentum methods")
ax.set(xlabel="flow time t = k eta", ylabel="loss", title="dots: the methods; lines: their models")
ax.legend(fontsize=8);
for name in runs:
    gap = np.max(np.abs(np.asarray(flows[name].end_to_end) - np.asarray(runs[name].end_to_end)))
    print(f"{name:>10}: largest |W_e(model) - W_e(method)| = {gap:.2e}")

# %% [markdown]
# **What you should see:** heavy ball and Nesterov get down to the plateau at loss 0.125 (the target's third mode,
# 0.5, not yet learned from this small start: $\frac12 0.5^2$) twice as fast in flow time as GD: their leading flow
# is the gradient flow sped up by $1/(1 - \beta) = 2$ (dotted). Each method sits on its own model: GD on its modified
# flow (docs/math.md (5.1)), heavy ball and Nesterov on their slow manifold's flows (13.4), (13.8), started behind
# $\theta_0$ by the initial layer (next section); the printed gaps are their largest distances over the run. Adam,
# whose step does not shrink with the gradient, leaves the plateau near $t = 4.5$, long before the others; its model
# (14.1) does too, at a slightly different time, and there the two part by $O(1)$ (Adam's gap above): an escape from
# a plateau amplifies the $O(\eta)$ difference of a first-order model. Before it, they agree to $O(\eta)$.

# %% [markdown]
# ## 2. The initial layer
# optax and PyTorch start heavy ball from rest (a zero velocity). For a few steps the velocity builds up like
# $1 - \beta^k$, so the run falls behind a flow started at $\theta_0$ by $\eta\beta\nabla L / (1 - \beta)^2$
# (13.5) and keeps that offset. A flow started that far behind (`start="initial_layer"`) follows the run at order 2.

# %%
hb = runs["heavy ball"]
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
for start, style in (("plain", "C1-"), ("initial_layer", "C2-")):
    flow = linflow.heavy_ball_flow(prob, layers, eta, beta, T, ts=ts, start=start)
    gap = np.linalg.norm(np.asarray(flow.end_to_end) - np.asarray(hb.end_to_end), axis=(1, 2))
    ax.semilogy(ts[1:], gap[1:], style, label=f"modified flow from {'theta_0' if start == 'plain' else 'the shifted start'}")
ode = linflow.heavy_ball_flow(prob, layers, eta, beta, T, ts=ts, model="second_order", start="rest")
gap = np.linalg.norm(np.asarray(ode.end_to_end) - np.asarray(hb.end_to_end), axis=(1, 2))
ax.semilogy(ts[1:], gap[1:], "C3--", label="second-order equation from rest")
ax.set(xlabel="flow time t", ylabel="|W_e(model) - W_e(heavy ball)|", title="heavy ball from rest against its models")
ax.legend(fontsize=8);

# %% [markdown]
# **What you should see:** after the first steps the modified flow from the shifted start (green) stays 3-10 times
# closer to the run than the same flow from $\theta_0$ (orange), whose extra error is the initial layer's $O(\eta)$
# offset. All three gaps peak in the fast descent near $t = 1$, where the curvature is largest. The second-order
# equation started from rest (red) relaxes onto its slow manifold too, but its own fast layer leaves
# $\eta (1 + \beta) \nabla L / (2 (1 - \beta)^2)$, not the method's $\eta \beta \nabla L / (1 - \beta)^2$: first
# order as well. Section 3 measures these orders over $\eta$.

# %% [markdown]
# ## 3. Where the models stop describing the methods
# `linflow.studies.momentum.breakdown` runs each method from rest and from its slow manifold over a grid of
# learning rates and each model from the start it is paired with; the deviation is read after the initial layer,
# its order fitted with a 95% interval, and the learning rate where it reaches 1% located (the command
# `linflow momentum` does the same on the default problem).

# %%
study = momentum.breakdown(prob, layers, [0.05, 0.02, 0.01, 0.005], beta, 1.0, method="heavy_ball")
plot.momentum_breakdown(study);
print(momentum.summary_text(study))

# %% [markdown]
# **What you should see:** the leading flow (dashed blue) falls with slope 1 and is already above 1% at the smallest
# learning rate; the models paired with the right start (solid) fall with slope 2, the second-order equation from the
# manifold lowest; the pairs with the wrong start (dashed) are first order at best. The printed table gives each
# order with its 95% interval and the verdict of the stated rule.

# %% [markdown]
# ## 4. Past the edge
# On a quadratic of curvature $\lambda$ heavy ball is stable while $\eta\lambda < 2(1 + \beta)$. Past that edge, a
# period-2 orbit $\{\theta_a, \theta_b\}$ of heavy ball solves $(1 + \beta)(\theta_b - \theta_a) = -\eta\nabla
# L(\theta_a)$ (and the same with $a$, $b$ exchanged): it is a period-2 orbit of GD with step $\eta/(1 + \beta)$, and
# the sharpness at its midpoint sits at the edge $2(1 + \beta)/\eta$, as GD's does at $2/\eta$ (notebook 06).

# %%
prob2 = problems.whitened([3.0, 0.5])
start2 = init.balanced((2, 2, 2), 0.3, seed=1)
eta2 = 1.05 * 2 * (1 + beta) / (2 * 3.0)  # 5% past the edge at the minimum, whose sharpness is 2 x 3
hb2 = linflow.heavy_ball(prob2, start2, eta2, beta, 4000)
gd2 = linflow.gradient_descent(prob2, start2, eta2 / (1 + beta), 4000)
orbit, gd_orbit = np.asarray(hb2.end_to_end)[-2:], np.asarray(gd2.end_to_end)[-2:]
middle = tuple(0.5 * (np.asarray(w)[-1] + np.asarray(w)[-2]) for w in hb2.layers)
S_mid = float(linflow.sharpness(prob2, middle))
same = min(np.max(np.abs(orbit - gd_orbit)), np.max(np.abs(orbit - gd_orbit[::-1])))
print(f"heavy ball's last two W_e differ by {np.max(np.abs(orbit[0] - orbit[1])):.3f} (a period-2 orbit); "
      f"GD at eta / (1 + beta) ends on the same orbit to {same:.1e}")
print(f"sharpness at the orbit's midpoint {S_mid:.4f}, the edge 2 (1 + beta) / eta = {2 * (1 + beta) / eta2:.4f}")
assert same < 1e-10 and abs(S_mid / (2 * (1 + beta) / eta2) - 1) < 0.01

# %% [markdown]
# **What you should see:** the two runs end on the same two points, and the midpoint's sharpness is within 1% of
# heavy ball's edge. The loss does not reach the minimum: like GD at the edge of stability, heavy ball keeps
# oscillating across a valley whose sharpness it cannot exceed.

# %% [markdown]
# ## 5. Adam and RMSProp at their edges
# Frozen with its preconditioner $P$ held ($\sqrt{\hat v} + \varepsilon$ for Adam, $\sqrt{v + \varepsilon}$ for
# RMSProp), each adaptive method is stable while $\lambda_1(P^{-1} H) < (2 + 2\beta_1) / ((1 - \beta_1)\eta)$ (Adam:
# heavy ball with step $\eta (1 - \beta_1)$) or $2/\eta$ (RMSProp) (docs/math.md (14.5)-(14.6)). Their $P$ shrinks
# with the gradient, so near a minimum $\lambda_1(P^{-1} H)$ grows until it meets the edge (Cohen et al. 2022).
# `linflow.studies.edges.stability_edge` runs optax's Adam ($\beta_1 = 0.9$, $\beta_2 = 0.999$) and RMSProp
# (decay 0.999) on a depth-3 network and reads $\lambda_1(P^{-1} H)$ every 100 steps, at the midpoint of consecutive
# iterates.

# %%
prob3 = problems.whitened([3.0, 2.0, 1.0, 0.5])
start3 = init.balanced((4, 4, 4, 4), 0.3, seed=0)
at_edge = [edges.stability_edge(prob3, start3, "adam", 0.01, 10_000),
           edges.stability_edge(prob3, start3, "rmsprop", 0.003, 10_000)]
plot.stability_edges(at_edge);
for ds in at_edge:
    print(edges.edge_text(ds))

# %% [markdown]
# **What you should see:** Adam's reading climbs for 4,500 steps as its second moment decays, then hovers at
# $38/\eta$ (median 1.001 of it); RMSProp's starts far above its edge (its $P$ starts near 0: the initial layer of
# section 14) and settles at $2/\eta$ (1.015) within a few hundred steps, with one excursion to 2.4 where its
# iterate sat at a minimum until the instability grew. Both stay at the edge instead of converging: the continuous
# models of section 3 describe neither there. On larger problems RMSProp still holds its edge while Adam hovers 5-18%
# below it (docs/math.md section 14 has the table).

# %% [markdown]
# ## 6. Adam with its betas held fixed
# Section 1 let Adam's averages scale with the step. People hold $\beta_1, \beta_2$ fixed instead; then as
# $\eta \to 0$ the averages follow the gradient within a few steps and Adam follows the *memoryless flow*
# $\dot\theta = -F$, $F = g / (\sqrt{g^{\odot 2} + \varepsilon_r} + \varepsilon)$ (a smoothed sign descent; optax's
# `eps_root` is $\varepsilon_r$), and to second order the modified equation (14.8): its memory and its steps add
# $-\eta\, c \odot \nabla \Vert \nabla L\Vert_{1,\varepsilon_r}$, the perturbed one-norm of the gradient
# (Cattaneo, Klusowski & Shigida 2024). `momentum.adam_fixed_breakdown` runs optax's Adam ($\beta_1 = 0.5$,
# $\beta_2 = 0.8$, $\varepsilon_r = 1$, $\varepsilon = 0$) on the network of section 1 against both.

# %%
fixed = momentum.adam_fixed_breakdown(prob, layers, [0.02, 0.01, 0.005, 0.0025], 0.5, 0.8, 1.0)
plot.momentum_breakdown(fixed);
print(momentum.summary_text(fixed))

# %% [markdown]
# **What you should see:** the memoryless flow's deviation (dashed) halves with $\eta$, the modified equation's
# (solid) quarters, and is about 90 times lower at the smallest $\eta$. The expansion needs
# $\eta \beta_2 / (1 - \beta_2)$ small against the scale on which $F$ turns: with the betas people use (0.9 and
# 0.99 or 0.999) and a small $\varepsilon_r$ neither model describes Adam at these step sizes
# (docs/guide/momentum.md has the measurement): the correction, of size $1/|g_i|$, becomes unstable where a gradient
# component crosses zero.
