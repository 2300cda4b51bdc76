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
# (first order), from the **first-order modified flow** `-(g + (eta/2) H g)` slope 2, and from the
# second-order one slope 3: backward error analysis, measured.
#
# ## 2. The stability limit 2 / sharpness and a period-2 orbit
# For the scalar network `L = (1/2)(w_N ... w_1 - s)^2` at its balanced minimum the sharpness is
# `N s^(2-2/N)`, so GD is stable only for `eta < 2 / (N s^(2-2/N))`.

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
# **What you should see:** at 0.95 `eta_crit` the distance from the minimum falls geometrically (the
# oscillation dies out); at 1.05 it grows until it levels off: GD has settled into a period-2 orbit,
# jumping between two points on either side of the minimum.
#
# ## 3. Balancedness: conserved by the flow, drifting under GD
# `D_j = W_{j+1}^T W_{j+1} - W_j W_j^T` is constant along the flow; under GD it changes by exactly
# `eta^2 (G_{j+1}^T G_{j+1} - G_j G_j^T)` per step, the term ACH18 neglect.

# %%
plot.balancedness_drift(cmp);

# %% [markdown]
# **What you should see:** the measured imbalance (lines) and the accumulated `eta^2` terms (dots)
# coincide to round-off; the drift scales like `eta` over a fixed horizon.
#
# ## 4. The end-to-end preconditioner P_W
# Claim 1: `vec(dW_e/dt) = -P_W vec(grad)`, with eigenvalues `sum_j sigma_r^(2(N-j)/N) sigma_r'^(2(j-1)/N)`.

# %%
W = np.diag([2.0, 1.0, 0.3]) @ np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
fig, ax = plt.subplots(figsize=(6, 4))
for N in (1, 2, 3, 6):
    P = np.asarray(linflow.preconditioner(W, N))
    ax.plot(np.sort(np.linalg.eigvalsh(P)), "o-", label=f"N = {N} (explicit P_W)")
    ax.plot(linflow.preconditioner_eigenvalues(W, N), "k.", ms=3)
ax.set(yscale="log", xlabel="index", ylabel="eigenvalue", title="spectrum of P_W (dots: closed form)")
ax.legend();

# %% [markdown]
# **What you should see:** for N = 1 all eigenvalues are 1 (plain gradient descent); with depth they spread
# out, growing with the singular values of `W`: directions already learned are accelerated.
#
# ## 5. Theorem 2: the end-to-end field is not a gradient

# %%
from linflow import reproduce
ds, summary, figs = reproduce.run("theorem2", quick=True)   # the figure shows below the cell
print(summary["measured"])

# %% [markdown]
# **What you should see:** the loop integral of the field is zero for N = 1 and 2 (gradient fields for a
# linear loss) and equals the closed form `2 ||g|| r^(3-2/N) (N-1)(N-2)/(3N-2)` for N = 3, 4: no loss
# function has this field as its gradient. The quadrature converges to the closed form as it is refined.

# %% [markdown]
# ## 6. Differentiating through a whole run: how does the loss after k steps depend on eta?
# Every linflow run is a JAX function of its inputs, so `jax.vmap` runs a whole family of learning rates
# in one compiled call and `jax.grad` differentiates the loss after k steps with respect to eta (through
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

# %% [markdown]
# **What you should see:** the loss after k steps falls as eta grows (more flow time in k steps) and
# flattens once the run has reached the minimum; the derivative from `jax.grad` lies on the
# finite-difference dots. The grid stops below the stability limit `2 / max S` (section 1's summary):
# past it GD oscillates, `L_k(eta)` becomes jagged and its derivative explodes (try it).
