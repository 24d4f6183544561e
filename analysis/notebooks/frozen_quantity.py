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
# # Which network output should the shortcut freeze?
# SDO keeps one network call's graph and runs the others as $\mathrm{sg}(m_i)$. *Which* output is held fixed is a
# choice: the paper freezes the network's own output (ε for ε-models). On DDIM ($\eta = 0$) the frozen step is
# affine in $x_i$, with gain $\alpha_{i-1}/\alpha_i$ (ε frozen), $\sigma_{i-1}/\sigma_i$ ($\hat x_0$ frozen) or
# $\alpha_{i-1}\alpha_i + \sigma_{i-1}\sigma_i$ (v frozen), so the chain from $x_{N-1}$ to $x_0$ multiplies the
# cotangent by $\alpha_0/\alpha_{N-1} \approx 157$, $\sigma_0/\sigma_{N-1} = 0$ or $\prod\cos\Delta\varphi \approx 1$.
# `sdo.grad(problem, "sdo", freeze="eps" | "x0" | "v")` (native `ddim`). Which is closest to the exact gradient
# on trained models is an empirical question, answered below with float64 BPTT as reference.

# %%
import os

import matplotlib.pyplot as plt

import sdo
from analysis.plots import plot_accuracy_vs_steps
from analysis.shortcut import accuracy_rows, summarise

QUICK = os.environ.get("SDO_ANALYSIS_QUICK") == "1"
FULL = os.environ.get("SDO_ANALYSIS_FULL") == "1"  # 16 samples per case (about 20 CPU-minutes)
OUT = os.environ.get("SDO_ANALYSIS_OUT", "results/analysis")
os.makedirs(OUT, exist_ok=True)
TRAINED = ("digits-ddpm", "fmnist-ddpm-v2", "fmnist-ddpm")
STEPS = (5,) if QUICK else (10, 25, 50)
SEEDS = range(2) if QUICK else range(16) if FULL else range(8)
WRTS = ("latent",) if QUICK else ("latent", "intermediate")
ESTIMATORS = [("sdo", {"freeze": f}) for f in ("eps", "v", "x0")]


def available(names):
    """Trained models whose weights are present (a missing one is named, not fatal)."""
    found = {}
    for name in names:
        try:
            sdo.models.get(name)
            found[name] = lambda name=name: sdo.models.get(name)
        except (ValueError, OSError) as err:
            print(f"skipping {name}: {err}")
    return found


models = available(TRAINED[:1] if QUICK else TRAINED)
if QUICK and not models:
    models = {"gmm": lambda: sdo.models.get("gmm", dim=8)}

# %%
df = accuracy_rows(models, ESTIMATORS, STEPS, WRTS, SEEDS, progress="frozen quantity")
df["freeze"] = [o["freeze"] for o in df.options]
df.to_csv(f"{OUT}/frozen_quantity.csv", index=False)
table = summarise(df, ["model", "wrt", "steps", "freeze"])
print(table.to_string(index=False, float_format="%.3g"))

# %% tags=["figure"]
plot_accuracy_vs_steps(table, hue="freeze", path=f"{OUT}/frozen_quantity.png")
plt.show()

# %% [markdown]
# ## Which one wins?
# On DDIM every frozen step is a scalar gain, so for wrt $x_N$ and $x_k$ the choice only rescales SDO's gradient:
# the cosines above are identical across freezes (x̂₀ aside, whose chain is exactly 0 through the clean last step)
# and only the norm ratio can differ. The winner is the freeze whose median norm ratio is closest to 1 (in log),
# per model, wrt and N; a clear win needs the same winner at every N.

# %%
import numpy as np  # noqa: E402

table["log_ratio_error"] = np.abs(np.log(table["norm_ratio"].where(table["norm_ratio"] > 0)))
best = table.loc[table.groupby(["model", "wrt", "steps"])["log_ratio_error"].idxmin().dropna()]
print(
    best[["model", "wrt", "steps", "freeze", "norm_ratio", "cosine"]].to_string(
        index=False, float_format="%.3g"
    )
)
spread = (
    table[table.freeze != "x0"].groupby(["model", "wrt", "steps"])["cosine"].agg(lambda c: c.max() - c.min())
)
print(
    "largest cosine difference between the eps and v freezes:",
    f"{spread.max():.2e}" if len(spread) else "n/a",
)
