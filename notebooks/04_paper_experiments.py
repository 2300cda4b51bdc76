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
# # 04 · The paper's experiments
#
# Quick versions of `linflow reproduce` (the full runs: `linflow reproduce all --data PATH`). They use the
# UCI gas-sensor data when it is found beside the repository, and the embedded synthetic problem
# otherwise (every summary says which).

# %%
# %matplotlib inline

# %%
import os
from pathlib import Path
from linflow import reproduce

# the gas-sensor data beside the repository, as a path relative to this notebook (outputs never show
# where a machine keeps its files); None runs the embedded synthetic problem
found = next((p / "shared" / "data" / "gas_sensor" for p in Path.cwd().resolve().parents
              if (p / "shared" / "data" / "gas_sensor").is_dir()), None)
data = os.path.relpath(found) if found is not None else None
print("data:", data or "not found: the embedded synthetic problem")


def report(name):
    ds, summary, figs = reproduce.run(name, data=data, quick=True)
    print(f"[{name}] verdict: {summary['verdict']}\n  paper: {summary['paper']}\n  measured: {summary['measured']}"
          f"\n  rule: {summary['verdict_rule']}")
    return ds, summary


# %%
ds2, summary_fig2 = report("fig2")
print(ds2.distance_rel.sel(width=1, drop=True).to_dataframe().unstack("eta").round(5))

# %% [markdown]
# **What you should see (fig2):** GD on depth-2 and depth-3 networks (widths 1 and 4) and the end-to-end rule
# (Eq. 10) run to the same flow time over an eta grid. Left: the loss curves at the largest eta where every
# distance is below 1%; they coincide. Right: GD's maximum relative distance from Eq. 10 against eta, growing
# like eta (order 1, docs/math.md section 5) until the runs diverge (crosses at the top). The table above holds
# the distances (rows: p, depth; columns: eta; NaN: a run diverged).

# %%
ds3, summary_fig3 = report("fig3")
table = [(r["config"], f"l{int(r['p'])}", r["depth"], r["target"], r["iterations"], r["speedup_median"],
          r["predicted_speedup"]) for r in summary_fig3["table"] if r["depth"] > 1]
print(f"{'config':<12} {'loss':<4} {'depth':>5} {'target':>6}  {'iterations per seed':<24} {'speed-up':>8} {'predicted':>9}")
for c, p, N, q, its, sp, pr in table:
    print(f"{c:<12} {p:<4} {N:>5} {q:>6}  {str([int(i) if i < 1e12 else 'never' for i in its]):<24} {sp:>8.2f} {pr:>9.2f}")
print("orders of magnitude:", summary_fig3["orders_of_magnitude"])

# %% [markdown]
# **What you should see (fig3):** for each configuration (hidden width 1 as the paper describes, width 32 on
# whitened data as its 2019 follow-up, linflow's width 16) and each depth, the fewest iterations to 50%, 90%
# and 99% of the way from L(0) to the minimum with the best learning rate of the grid, per seed; the speed-up
# over depth 1 (median over seeds) and the speed-up the flows predict (flow time to the target times half the
# largest sharpness on the way). In quick mode (400 samples, 2,000 iterations, depths 1-2, two seeds) these are
# indications; the README gives the full run's table.

# %%
summary_section6 = report("section6")
