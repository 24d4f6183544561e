# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Compare estimators from a results directory
# Reads `benchmark.csv` from any results directory — `results/` written by `make benchmark`, the full grid's
# `results/full/`, or one you produced on your own GPU — and shows, for a chosen model, wrt and N: the
# accuracy–cost trade-off (Pareto view), cost against N with the measured intervals, accuracy against N
# (cosine and norm ratio) and a "which estimator for which need" table computed from the data.
#
# Set `RESULTS`, `MODEL`, `WRT` and `STEPS` in the next cell (or the environment variables `SDO_RESULTS`,
# `SDO_MODEL`, `SDO_WRT`, `SDO_STEPS`); the defaults pick the first model and the largest N present.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

from analysis.plots import plot_cost_vs_steps, plot_pareto
from analysis.which import load_results, which_estimator

QUICK = os.environ.get("SDO_ANALYSIS_QUICK") == "1"
OUT = os.environ.get("SDO_ANALYSIS_OUT", "results/analysis")
RESULTS = os.environ.get("SDO_RESULTS", "results")
os.makedirs(OUT, exist_ok=True)
results = load_results(RESULTS)
MODEL = os.environ.get("SDO_MODEL") or results["model"].iloc[0]
WRT = os.environ.get("SDO_WRT") or "latent"
present = results[(results.model == MODEL) & (results.wrt == WRT)]
STEPS = int(os.environ.get("SDO_STEPS") or present["steps"].max())
print(f"{RESULTS}/benchmark.csv: {len(results)} ok rows; models {sorted(results.model.unique())}")
print(f"showing model={MODEL}, wrt={WRT}, N={STEPS}")

# %% [markdown]
# ## Accuracy against cost at one N
# Relative error to the exact gradient (exact estimators sit at the bottom) against time; marker area ∝ peak memory.

# %% tags=["figure"]
one = present[present.steps == STEPS]
plot_pareto(one, f"{MODEL}, wrt {WRT}, N = {STEPS} ({RESULTS})", f"{OUT}/compare_pareto.png")
plt.show()

# %% [markdown]
# ## Cost and accuracy against N

# %% tags=["figure"]
plot_cost_vs_steps(present, f"{MODEL}, wrt {WRT} ({RESULTS})", f"{OUT}/compare_vs_steps.png")
plt.show()

# %% [markdown]
# ## Which estimator for which need
# Read off the measurements above for every (model, wrt, N) in the directory; "none" where nothing qualifies.

# %%
table = which_estimator(results)
table.to_csv(f"{OUT}/which_estimator.csv", index=False)
pd.set_option("display.width", 160)
print(table[(table.model == MODEL) & (table.wrt == WRT)].to_string(index=False, float_format="%.3g"))
