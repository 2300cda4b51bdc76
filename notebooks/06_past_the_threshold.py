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
# # 06 · Past the threshold: the whole map, from the flow to chaos
#
# A teaching notebook. Gradient descent with step $\eta$ is the gradient flow only in the limit $\eta \to 0$. As
# $\eta$ grows, the small-learning-rate picture breaks down in stages, and each stage has its own prediction:
# the flow (and its first-order correction), the edge of stability (the central flow), then a period-2 orbit,
# period doubling, chaos, and divergence. We walk the map from left to right on the smallest deep network there
# is, $f(u, v) = uv$ fitted to $y = 1$ (loss $(uv - 1)^2 / 2$), where every stage is visible. The mathematics
# is in `docs/math.md` sections 5, 8 and 11.

# %%
import numpy as np
import jax.numpy as jnp
import matplotlib.pyplot as plt
import linflow
from linflow import plot
from linflow.studies import atlas
# %matplotlib inline

problem = linflow.Problem(np.array([[1.0]]), np.array([1.0]))  # L = (1/2)(v u - 1)^2
start = (jnp.array([[0.5]]), jnp.array([[0.3]]))                 # u = 0.5 (layer 1), v = 0.3 (layer 2)

# %% [markdown]
# ## 1. The threshold is set by the flow's solution
# The gradient flow from $(u, v)$ conserves $c = u^2 - v^2$ and ends at the minimum with $uv = 1$ on that
# hyperbola; the sharpness there is $S = \sqrt{c^2 + 4}$ (the *GFS sharpness*). GD with $\eta < 2 / S$ can converge
# to that same point; above it, it cannot. `linflow.gfs_sharpness` integrates the flow to its end and measures it.

# %%
c = 0.5 ** 2 - 0.3 ** 2
S = float(linflow.gfs_sharpness(problem, start))
eta_crit = 2 / S
print(f"S(phi(w0)) = {S:.8f} (closed form sqrt(c^2 + 4) = {np.hypot(c, 2):.8f}); eta_crit = 2 / S = {eta_crit:.6f}")
assert abs(S - np.hypot(c, 2)) < 1e-6

# %% [markdown]
# ## 2. The whole map in one computation
# `linflow.atlas.atlas` runs GD for 241 learning rates at once (one compiled, `vmap`-ed loop of 24,000 steps),
# discards a transient, and reads what GD settled on: the period of its orbit, its largest Lyapunov exponent
# (positive means chaos: nearby starts separate exponentially), or divergence.
#
# What you should see, left to right: one point (GD converges) up to the dashed line $2 / S$; two branches (a
# period-2 orbit straddling the minimum); four, eight, ...: the period-doubling cascade, as in the logistic map;
# a cloud (chaos, positive Lyapunov exponent) with windows of order (period 3 among them); divergence past
# $\eta \approx 2$. The green band is where the central flow still predicts the mean of GD's orbit.

# %%
study = atlas.atlas(problem, start, central_points=6)
plot.bifurcation_diagram(study);
summary = atlas.summary(study)
print(atlas.summary_text(summary))

# %% [markdown]
# ## 3. Each stage against the prediction that holds there
# Below the threshold GD tracks the flow (its distance to it is $O(\eta)$). Just past it GD oscillates around the
# central flow's path. Deeper, the orbit doubles, then becomes chaotic: two GD runs from starts $10^{-10}$ apart
# separate like $e^{\Lambda k}$, with $\Lambda$ the Lyapunov exponent the map measured.

# %%
ratios = {"follows the flow": 0.5, "period 2 (edge of stability)": 1.1, "period 4": 1.26, "chaos": 1.6}
flow = linflow.gradient_flow(problem, start, 40.0, n_save=801)
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), layout="constrained")
for ax, (name, r) in zip(axes, ratios.items()):
    eta = r * eta_crit
    gd = linflow.gradient_descent(problem, start, eta, int(40 / eta))
    ax.plot(np.asarray(flow.ts), np.asarray(flow.end_to_end)[:, 0, 0], "k-", lw=1, label="gradient flow")
    ax.plot(np.asarray(gd.ts), np.asarray(gd.end_to_end)[:, 0, 0], ".", ms=3, label=f"GD, eta = {r} x 2 / S")
    if 1 < r < 1.2:
        cf = linflow.central_flow(problem, start, eta, 40.0, n_save=401)
        ax.plot(np.asarray(cf.ts), np.asarray(cf.end_to_end)[:, 0, 0], "-", color="tab:green", label="central flow")
    ax.set(title=name, xlabel="time t = k eta", ylim=(-0.1, 2.1))
    ax.legend(fontsize=7)
axes[0].set_ylabel("W_e = v u");

# %%
eta = 1.6 * eta_crit
near = (start[0] + 1e-10, start[1])
a = linflow.gradient_descent(problem, start, eta, 120)
b = linflow.gradient_descent(problem, near, eta, 120)
gap = np.abs(np.asarray(a.end_to_end) - np.asarray(b.end_to_end))[:, 0, 0]
lam = float(study.lyapunov.sel(eta=eta, method="nearest"))
k = np.arange(len(gap))
plt.figure(figsize=(6, 3.6))
plt.semilogy(k, gap, label="|W_e(a) - W_e(b)|, starts 1e-10 apart")
plt.semilogy(k, 1e-10 * np.exp(lam * k), "--", label=f"exp(lambda k), lambda = {lam:.3f} (from the map)")
plt.ylim(1e-11, 10)
plt.xlabel("GD step k")
plt.title("chaos: nearby starts separate at the Lyapunov rate, until the orbit's size")
plt.legend(fontsize=8);
assert lam > 0.1 and gap[60] > 1e-7  # chaos: the two runs separate by orders of magnitude within 60 steps

# %% [markdown]
# ## 4. What to take away
# - The small-learning-rate assumption fails in stages. $2 / S$ of the *flow's solution* (not of the start;
#   `linflow.gfs_sharpness` measures it) is where GD can no longer converge to the flow's own minimum. It is the
#   first stage boundary here only because this start's $S_{\text{GFS}} = 2.006$ is next to the flattest minimum's
#   $S = 2$ (every minimum $uv = 1$ has $S = u^2 + v^2 \ge 2$): no flatter minimum is left for GD to land on. From a
#   start whose flow ends at a sharp minimum, GD past $2 / S_{\text{GFS}}$ still converges, to a flatter minimum
#   (the next cell); it stops converging only past $2 / 2 = 1$, the flattest minimum's threshold.
# - Past it, GD is a nonlinear map with the logistic map's route to chaos. The central flow describes the
#   period-2 stage (and the mean of the orbit somewhat beyond); nothing continuous describes the chaotic stage.
# - On wider networks the map is less kind: `linflow atlas --values 1.5,1.4 --width 2` shows GD diverging soon
#   after the threshold, where extra unstable directions open (see the README).

# %%
far = (jnp.array([[2.0]]), jnp.array([[0.1]]))  # u = 2, v = 0.1: the flow ends at a sharp minimum
far_map = atlas.atlas(problem, far, ratios=[1.1, 1.3, 1.6], transient=4_000, record=1_000, central_points=0)
S_far = 2 / float(far_map.attrs["eta_crit"])
end_S = far_map.sharpness.values[:, -1]
for r, a, s_end in zip([1.1, 1.3, 1.6], far_map.attractor.values, end_S):
    print(f"from (2, 0.1): eta = {r} x 2 / S_GFS (S_GFS = {S_far:.3f}): {a}, sharpness at the end {s_end:.3f} "
          f"<= 2 / eta = {S_far / r:.3f}")
assert abs(S_far - np.hypot(4 - 0.01, 2)) < 1e-6
assert list(far_map.attractor.values) == ["fixed point"] * 3  # GD converges past 2 / S_GFS ...
assert np.all(end_S < S_far / np.array([1.1, 1.3, 1.6])) and np.all(end_S >= 2 - 1e-9)  # ... to flatter minima

# %%
cascade = summary["cascade"]["first_eta_of_period"]
assert [int(p) for p in cascade][:3] == [1, 2, 4]
assert abs(cascade["2"] / eta_crit - 1) < 0.01  # period 2 begins at the threshold
