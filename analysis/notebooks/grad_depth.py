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
# # Gradient norm vs backpropagation depth (the paper's Fig. 11a)
# Left: $\|\nabla_\theta J\|$ of truncated backpropagation through the last K steps, K = 1 … N (K = N is BPTT),
# with SDO (one random step, paper Eq. 17) and sdo-all (Eq. 16 summed) beside it, over many samples: median and
# the 10–90 % band. Right: the cotangent $\|\partial J/\partial \bar x_i\|$ along the sampler in $\bar x = x/\alpha$
# (where DDIM's frozen chain is the identity), BPTT against the frozen chain, so what remains is the network's own
# contraction or growth.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd
import torch
from tqdm import tqdm

import sdo
from analysis.depth import depth_profile
from analysis.plots import plot_depth_bands, plot_norm_vs_depth

QUICK = os.environ.get("SDO_ANALYSIS_QUICK") == "1"
OUT = os.environ.get("SDO_ANALYSIS_OUT", "results/analysis")
os.makedirs(OUT, exist_ok=True)
STEPS = 4 if QUICK else 20
DEPTHS = (1, 2, 4) if QUICK else (1, 2, 3, 5, 8, 12, 16, 20)
SAMPLES = range(2) if QUICK else range(16)
OBJECTIVE = "target-mse (a fixed random target image)"
names = ("digits-ddpm", "fmnist-ddpm-v2", "fmnist-ddpm")
models = {}
for name in names[:1] if QUICK else names:
    try:
        models[name] = sdo.models.get(name)
    except (ValueError, OSError) as err:
        print(f"skipping {name}: {err}")
if not models:
    models["gmm"] = sdo.models.get("gmm", dim=8)


def problem(model, seed, wrt="params"):
    target = sdo.objectives.get("target-mse", seed=7)
    return sdo.Problem(model, sdo.samplers.get("ddim", steps=STEPS), target, wrt=wrt, seed=seed)


# %%
rows = []
for name, model in models.items():
    for seed in tqdm(SAMPLES, desc=name):
        p = problem(model, seed)
        for K in DEPTHS:
            rows.append(
                {
                    "model": name,
                    "seed": seed,
                    "method": "truncated",
                    "depth": K,
                    "norm": sdo.grad(p, "truncated", K=K).norm(),
                }
            )
        for method in ("sdo", "sdo-all"):
            est = sdo.estimators.get(method, seed=seed) if method == "sdo" else sdo.estimators.get(method)
            rows.append({"model": name, "seed": seed, "method": method, "depth": 1, "norm": est(p).norm()})
norms = pd.DataFrame(rows)
norms.to_csv(f"{OUT}/grad_depth_params.csv", index=False)
summary = norms.groupby(["model", "method", "depth"])["norm"].describe()
print(summary[["count", "25%", "50%", "75%"]].to_string(float_format="%.3g"))

# %% tags=["figure"]
plot_norm_vs_depth(
    norms,
    f"N = {STEPS} DDIM steps, objective {OBJECTIVE}, wrt all network parameters",
    f"{OUT}/grad_depth_params.png",
)
plt.show()

# %%
profiles = []
for name, model in models.items():
    for seed in SAMPLES:
        prof = depth_profile(problem(model, seed, wrt="latent").to(torch.float64))
        profiles.append(prof.assign(model=name, seed=seed))
profiles = pd.concat(profiles, ignore_index=True)
profiles.to_csv(f"{OUT}/grad_depth_cotangent.csv", index=False)

# %% tags=["figure"]
plot_depth_bands(profiles, f"N = {STEPS} DDIM steps, objective {OBJECTIVE}, float64", f"{OUT}/grad_depth.png")
plt.show()

# %% [markdown]
# ## Reading the profiles

# %%
for name, g in profiles.groupby("model"):
    first = g[g.step == STEPS].set_index("seed")
    last = g[g.step == 0].set_index("seed")
    ratio = (first.bptt_xbar / last.bptt_xbar).median()
    print(
        f"{name}: median over samples of ||dJ/dx_bar_N|| / ||dJ/dx_bar_0||: BPTT {ratio:.3g}, frozen chain 1"
    )
