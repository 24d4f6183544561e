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
# # Gradient norms vs backpropagation depth
# $\|\partial J/\partial x_i\|$ along a 20-step DDIM sampler: full BPTT (through every network call) and the
# linear chain alone (every network output frozen — the path SDO keeps for all but one step, Eq. 18).
# In $x$ both grow like $1/\alpha_i$; in $\bar x = x/\alpha$ DDIM's linear chain is the identity, so the
# right panel isolates what the network Jacobians do to the cotangent along the depth.

# %%
import os

import torch

import sdo
from analysis.depth import depth_profile
from analysis.plots import plot_depth

OUT = os.environ.get("SDO_ANALYSIS_OUT", "results/analysis")
os.makedirs(OUT, exist_ok=True)
STEPS = int(os.environ.get("SDO_ANALYSIS_STEPS", "20"))
target = sdo.objectives.get("target-mse", seed=7)
models = {
    "gmm (exact, 16-d)": sdo.models.get("gmm", dim=16),
    "unet-tiny (random init)": sdo.models.get("unet-tiny"),
}
if "fmnist-ddpm" in sdo.models.names():
    try:
        models["fmnist-ddpm (trained)"] = sdo.models.get("fmnist-ddpm")
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"fmnist-ddpm not available: {err}")
profiles = {}
for name, model in models.items():
    problem = sdo.Problem(model, sdo.samplers.get("ddim", steps=STEPS), target, dtype=torch.float64)
    profiles[name] = depth_profile(problem)
    profiles[name].to_csv(f"{OUT}/grad_depth_{name.split()[0]}.csv", index=False)
    print(name)
    print(profiles[name].to_string(index=False, float_format=lambda v: f"{v:.4g}"))

# %%
plot_depth(profiles, f"{OUT}/grad_depth.png")

# %% [markdown]
# ## Reading the profiles

# %%
for name, df in profiles.items():
    first, last = df.iloc[0], df.iloc[-1]
    print(
        f"{name}: in x_bar, BPTT cotangent at x_N / at x_0 = {first.bptt_xbar / last.bptt_xbar:.3g}; "
        f"linear chain = {first.linear_chain_xbar / last.linear_chain_xbar:.3g}"
    )
