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
# # 03 · From gradient descent to gradient flow
#
# A teaching notebook: gradient descent is the forward Euler method for the gradient flow. We measure
# what that means on a deep linear network: the order of the error, the modified equation, the
# stability limit, and what happens to balancedness. Everything uses linflow's public API.

# %%
import numpy as np
import matplotlib.pyplot as plt
import linflow
from linflow import problems, init
# %matplotlib inline

# %% [markdown]
# ## 1. GD is Euler: the error falls like eta

# %%
prob = problems.whitened([2.0, 1.0, 0.5], seed=3)
layers = init.balanced((3, 3, 3, 3), 0.3, seed=1)
t1, points = 4.0, 41
spacing = t1 / (points - 1)
etas = [spacing / n for n in (1, 2, 4, 8, 16)]
cmp = linflow.compare(prob, layers, etas, t1, points=points, rtol=1e-12, atol=1e-14)
print(linflow.comparison.summary_text(cmp))

# %%
from linflow import plot
plot.deviation_vs_eta(cmp);

# %% [markdown]
# **What you should see:** on log-log axes the distance of GD from the gradient flow has slope 1
# (first order), from the **first-order modified flow** $-(g + \frac{\eta}{2} H g)$ slope 2, and from the
# second-order one slope 3: backward error analysis, measured.
#
# ## 2. The stability limit 2 / sharpness and a period-2 orbit
# For the scalar network $L = \frac12 (w_N \cdots w_1 - s)^2$ at its balanced minimum the sharpness is
# $N s^{2-2/N}$, so GD is stable only for $\eta < 2 / (N s^{2-2/N})$.

# %%
s, N = 1.5, 2
eta_crit = 2 / (N * s ** (2 - 2 / N))
scalar = linflow.Problem(np.array([[1.0]]), np.array([s]))
at_min = tuple(np.full((1, 1), s ** (1 / N)) for _ in range(N))
print("sharpness:", float(linflow.sharpness(scalar, at_min)), " N s^(2-2/N):", N * s ** (2 - 2 / N))
start = tuple(w * 1.001 for w in at_min)
fig, ax = plt.subplots(figsize=(7, 4))
for f in (0.95, 1.05):
    gd = linflow.gradient_descent(scalar, start, f * eta_crit, 400)
    ax.plot(gd.iterations, np.abs(gd.end_to_end[:, 0, 0] - s), label=f"eta = {f} eta_crit")
ax.set(yscale="log", xlabel="iteration", ylabel="|w2 w1 - s|  (distance from the minimum)",
       title="below and above 2 / sharpness")
ax.legend();

# %% [markdown]
# **What you should see:** at $0.95\, \eta_{\text{crit}}$ the distance from the minimum falls geometrically (the
# oscillation dies out); at 1.05 it grows until it levels off: GD has settled into a period-2 orbit,
# jumping between two points on either side of the minimum.
#
# ## 3. Balancedness: conserved by the flow, drifting under GD
# $D_j = W_{j+1}^\top W_{j+1} - W_j W_j^\top$ is constant along the flow; under GD it changes by exactly
# $\eta^2 (G_{j+1}^\top G_{j+1} - G_j G_j^\top)$ per step, the term ACH18 neglect.

# %%
plot.balancedness_drift(cmp);

# %% [markdown]
# **What you should see:** the measured imbalance (lines) and the accumulated $\eta^2$ terms (dots)
# coincide to round-off; the drift scales like $\eta$ over a fixed horizon.
#
# ## 4. The end-to-end preconditioner P_W
# Claim 1: $\operatorname{vec}(\dot W_e) = -P_W \operatorname{vec}(\nabla L^1)$, with eigenvalues
# $\sum_j \sigma_r^{2(N-j)/N} \sigma_{r'}^{2(j-1)/N}$.

# %%
W = np.diag([2.0, 1.0, 0.3]) @ np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
fig, ax = plt.subplots(figsize=(6, 4))
for N in (1, 2, 3, 6):
    P = np.asarray(linflow.linalg.preconditioner(W, N))
    ax.plot(np.sort(np.linalg.eigvalsh(P)), "o-", label=f"N = {N} (explicit P_W)")
    ax.plot(linflow.linalg.preconditioner_eigenvalues(W, N), "k.", ms=3)
ax.set(yscale="log", xlabel="index", ylabel="eigenvalue", title="spectrum of P_W (dots: closed form)")
ax.legend();

# %% [markdown]
# **What you should see:** for N = 1 all eigenvalues are 1 (plain gradient descent); with depth they spread
# out, growing with the singular values of $W$: directions already learned are accelerated.
#
# ## 5. Theorem 2: the end-to-end field is not a gradient

# %%
from linflow import reproduce
ds, summary, figs = reproduce.run("theorem2", quick=True)   # the figure shows below the cell
print(summary["measured"])

# %% [markdown]
# **What you should see:** the loop integral of the field is zero for N = 1 and 2 (gradient fields for a
# linear loss) and equals the closed form $2 \lVert g \rVert r^{3-2/N} (N-1)(N-2)/(3N-2)$ for N = 3, 4: no loss
# function has this field as its gradient. The quadrature converges to the closed form as it is refined.

# %% [markdown]
# ## 6. Differentiating through a whole run: how does the loss after k steps depend on eta?
# Every linflow run is a JAX function of its inputs, so `jax.vmap` runs a whole family of learning rates
# in one compiled call and `jax.grad` differentiates the loss after k steps with respect to $\eta$ (through
# all k steps), or the flow's loss at t1 with respect to the initial scale (through the adaptive solver).
# The dots are central finite differences of the same runs: an independent check of the derivative.

# %%
import jax
import jax.numpy as jnp

k = 40


def loss_after(eta):
    return linflow.gradient_descent(prob, layers, eta, k, save_every=k).loss[-1]


eta_stable = linflow.comparison.summary(cmp)["stability_eta_predicted"]   # 2 / max sharpness along the flow
eta_grid = jnp.linspace(0.01, 0.95 * eta_stable, 60)
losses = jax.vmap(loss_after)(eta_grid)               # 60 runs, one compiled call
slopes = jax.vmap(jax.grad(loss_after))(eta_grid)     # d L_k / d eta at each eta
check = eta_grid[::6]
fd = [(loss_after(e + 1e-6) - loss_after(e - 1e-6)) / 2e-6 for e in check]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
a1.semilogy(eta_grid, losses)
a1.set(xlabel="eta", ylabel=f"loss after {k} GD steps", title=f"L_k(eta), eta up to 0.95 x {eta_stable:.3f}")
a2.plot(eta_grid, slopes, label="jax.grad through the run")
a2.plot(check, fd, "ko", ms=4, label="finite differences")
a2.axhline(0, color="0.6", lw=0.8)
a2.set(xlabel="eta", ylabel="d L_k / d eta", title="its derivative")
a2.legend();



def scale_loss(s):
    return linflow.gradient_flow(prob, tuple(s * w for w in layers), 2.0, n_save=2).loss[-1]


print(f"d L(t1 = 2) / d (init scale) at 1: {float(jax.grad(scale_loss)(1.0)):.6f} (autodiff), "
      f"{float((scale_loss(1 + 1e-5) - scale_loss(1 - 1e-5)) / 2e-5):.6f} (finite differences)")

# %%
long_run = linflow.gradient_descent(prob, layers, 0.2, 2000, save_every=2000)
print(f"after 2,000 GD steps at eta 0.2: loss {float(long_run.loss[-1]):.6f}, singular values of W_e "
      + ", ".join(f"{v:.3g}" for v in np.linalg.svd(np.asarray(long_run.end_to_end[-1]), compute_uv=False))
      + f"; target's singular values 2, 1, 0.5, so the missing mode costs (1/2) 0.5^2 = {0.5 * 0.5**2:.6f}")
assert abs(float(long_run.loss[-1]) - 0.125) < 1e-6  # the saddle, not the minimum (0): checked, as the text says

# %% [markdown]
# **What you should see:** the loss after k steps falls as eta grows (more flow time in k steps) and
# then flattens near 0.125. That plateau is not the minimum (the minimum loss is 0): it is a saddle.
# $W_e$ has learnt the target's two strong modes (singular values 2 and 1) while its third singular
# value sits near zero, so the weakest mode (0.5) is still missing and costs $\frac12 \cdot 0.5^2 = 0.125$;
# the line above shows the run still there after 2,000 steps. The derivative from `jax.grad` lies on
# the finite-difference dots. The grid stops below the stability limit $2 / \max S$ (section 1's
# summary): past it GD oscillates, $L_k(\eta)$ becomes jagged and its derivative explodes (try it).

# %% [markdown]
# ## 7. Past the threshold: the period-2 orbit, its midpoint and the central flow
# Section 2 left GD in a period-2 orbit. Where is that orbit? On a depth-2 whitened problem with target
# singular values (1.5, 0.5) every minimum has sharpness at least $N s_1^{2-2/N} = 3$, so GD with
# $\eta = 0.72$ ($2 / \eta = 2.78$) can never converge. The **central flow** (Cohen et al., ICLR 2025) is an
# ODE for GD's time average: the gradient flow until the sharpness $S$ reaches $2 / \eta$, then the flow
# constrained to $S = 2 / \eta$, $\dot w = -\nabla L - \frac{\sigma^2}{2} \nabla S$, where $\sigma^2$ (the multiplier)
# predicts the variance of GD's oscillation along the top Hessian eigenvector.

# %%
prob7 = problems.whitened([1.5, 0.5])
start7 = init.balanced((2, 2, 2), 0.3, seed=1)   # seed 0 starts near a saddle: try it, all three linger there
eta7, T7 = 0.72, 30.0
cf = linflow.central_flow(prob7, start7, eta7, T7, n_save=241)
gf7 = linflow.gradient_flow(prob7, start7, T7, n_save=241)
gd7 = linflow.gradient_descent(prob7, start7, eta7, int(T7 / eta7))
mid = tuple(0.5 * (np.asarray(w)[1:] + np.asarray(w)[:-1]) for w in gd7.layers)   # mean of consecutive iterates
t_mid = 0.5 * (np.asarray(gd7.ts)[1:] + np.asarray(gd7.ts)[:-1])
S_gd, S_mid = linflow.sharpness(prob7, gd7.layers), linflow.sharpness(prob7, mid)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
a1.plot(gd7.ts, S_gd, ".", color="0.6", ms=3, label="GD iterates")
a1.plot(t_mid, S_mid, color="C1", lw=1.5, label="GD, mean of consecutive iterates")
a1.plot(gf7.ts, linflow.sharpness(prob7, gf7.layers), "C0--", label="gradient flow")
a1.plot(cf.ts, cf.extras["sharpness"], "C3", lw=2.5, alpha=0.6, label="central flow")
a1.axhline(2 / eta7, color="k", lw=0.8, ls=":", label="2 / eta")
a1.set(xlabel="flow time t = k eta", ylabel="sharpness S", title=f"sharpness, eta = {eta7}")
a1.legend(fontsize=8)
a2.semilogy(gd7.ts, gd7.loss, ".", color="0.6", ms=3, label="GD iterates")
a2.semilogy(t_mid, [float(prob7.loss(w2 @ w1)) for w1, w2 in zip(*mid)], color="C1", label="GD midpoints")
a2.semilogy(gf7.ts, gf7.loss, "C0--", label="gradient flow")
a2.semilogy(cf.ts, cf.loss, "C3", lw=2.5, alpha=0.6, label="central flow")
a2.set(xlabel="flow time t = k eta", ylabel="loss", title="loss", ylim=(1e-10, 3))
a2.legend(fontsize=8);
flat = np.concatenate([np.asarray(w).reshape(len(gd7.ts), -1) for w in gd7.layers], axis=1)
print(f"constraint switched on at t = {float(cf.stats['activated_at']):.3f}; final sigma^2 = "
      f"{float(cf.extras['sigma2'][-1]):.5f}; GD's squared half-amplitude = "
      f"{(0.5 * np.linalg.norm(flat[-1] - flat[-2])) ** 2:.5f}")
print(f"final loss: central flow {cf.final_loss:.5f}, GD midpoint "
      f"{float(prob7.loss(mid[1][-1] @ mid[0][-1])):.5f}, gradient flow {gf7.final_loss:.2e}")

# %% [markdown]
# **What you should see:** the gradient flow's sharpness climbs to 3 and its loss goes to 0. GD's
# iterates follow it until $S$ reaches $2 / \eta$, then oscillate: the grey dots split into two
# branches, but their midpoints (orange) sit on the central flow (red), whose sharpness stays exactly
# at $2 / \eta$ and whose loss levels off where GD's midpoints do. $\sigma^2$ predicts the squared
# half-amplitude of the orbit within about 10% (the central flow is a leading-order theory in the
# amplitude: here the ratio is 9/8 at every eta tried). The catapult, GD started *above* the threshold,
# is in `linflow.catapult`.
