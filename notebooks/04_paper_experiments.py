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
    print(f"[{name}] agrees: {summary['agrees']}\n  paper: {summary['paper']}\n  measured: {summary['measured']}")
    return summary


# %%
summary_fig2 = report("fig2")

# %% [markdown]
# **What you should see (fig2):** GD on depth-2 and depth-3 networks of widths 1 and 4 follows the
# end-to-end rule: the curves coincide and the final losses do not depend on the width.

# %%
summary_fig3 = report("fig3")

# %% [markdown]
# **What you should see (fig3):** each depth with its best learning rate from the grid; the summary gives
# the speed-up over depth 1 for l2 and l4. In quick mode (400 samples, 400 iterations) these are indications,
# not the paper's numbers: run the full experiment for those.

# %%
summary_section6 = report("section6")
