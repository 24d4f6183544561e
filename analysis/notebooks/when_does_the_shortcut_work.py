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
# # When does the shortcut work?
# On random-init networks SDO's latent gradient has cosine ≈ 0.99 to the exact one; on trained models it does not.
# This notebook measures the accuracy of the approximate estimators against float64 BPTT of the same DDIM sampler
# (`reversible` too: its own coupled sampler differs from DDIM, so its row measures how far *its* gradient is
# from the DDIM gradient the others approximate) — over N, wrt $x_N$, $x_t$ ($t \approx 600$) and θ, and over
# **training progress**, from random init to trained, using the EMA snapshots saved during training.
#
# The mechanism: with ε frozen, DDIM's chain from $x_{N-1}$ to $x_0$ multiplies the cotangent by
# $\alpha_0/\alpha_{N-1}$ (≈ 157 on the usual schedule); BPTT multiplies it by the true Jacobian, which on a trained
# model contracts. The ratio of the two is roughly SDO's norm error.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

import sdo
from analysis.plots import plot_accuracy_vs_steps, plot_mechanism
from analysis.shortcut import accuracy_rows, make_problem, mechanism, snapshots, summarise
from sdo.train.recipes import work_dir

QUICK = os.environ.get("SDO_ANALYSIS_QUICK") == "1"
# SDO_ANALYSIS_FULL=1: N up to 50, 8 samples, every training snapshot at N = 10 and 50 (about 90 CPU-minutes);
# the defaults run in under 10 minutes on 2 cores
FULL = os.environ.get("SDO_ANALYSIS_FULL") == "1"
OUT = os.environ.get("SDO_ANALYSIS_OUT", "results/analysis")
os.makedirs(OUT, exist_ok=True)
TRAINED = ("digits-ddpm", "fmnist-ddpm-v2")
STEPS = (5,) if QUICK else (10, 25, 50) if FULL else (10, 25)
SEEDS = range(2) if QUICK else range(8) if FULL else range(4)
WRTS = ("latent",) if QUICK else ("latent", "intermediate", "params")
ESTIMATORS = ["sdo", ("truncated", {"K": 1}), ("neumann", {"K": 1}), "sdo-all", "adjoint", "reversible"]


def loadable(name, **options):
    try:
        sdo.models.get(name, **options)
        return True
    except (ValueError, OSError, TypeError) as err:
        print(f"skipping {name} {options or ''}: {err}")
        return False


models = {n: (lambda n=n: sdo.models.get(n)) for n in TRAINED if loadable(n)}
if QUICK:
    models = dict(list(models.items())[:1]) or {"gmm": lambda: sdo.models.get("gmm", dim=8)}
    ESTIMATORS = ESTIMATORS[:2]

# %% [markdown]
# ## 1. Accuracy vs N on the trained models

# %%
df = accuracy_rows(models, ESTIMATORS, STEPS, WRTS, SEEDS, progress="accuracy vs N")
df.to_csv(f"{OUT}/shortcut_vs_steps.csv", index=False)
by_steps = summarise(df[df.wrt != "params"] if "params" in WRTS else df, ["model", "wrt", "steps", "label"])
print(by_steps.to_string(index=False, float_format="%.3g"))

# %% tags=["figure"]
plot_accuracy_vs_steps(by_steps, hue="label", path=f"{OUT}/shortcut_vs_steps.png")
plt.show()

# %% [markdown]
# wrt θ (all network parameters; SDO's random step makes single draws noisy, `sdo-all` is its deterministic sum):

# %%
if "params" in WRTS:
    print(
        summarise(df[df.wrt == "params"], ["model", "steps", "label"]).to_string(
            index=False, float_format="%.3g"
        )
    )

# %% [markdown]
# ## 2. Accuracy vs training progress (random init → trained)

# %%
PROGRESS_STEPS = STEPS[-1:] if QUICK else (10, 50) if FULL else (10,)
PROGRESS_SEEDS = SEEDS[:1] if QUICK else SEEDS
rows = []
for name in TRAINED:
    snaps = snapshots(work_dir(name) / "snapshots")
    # every snapshot with FULL; otherwise every other one and the last (random init and trained are both in)
    snaps = snaps[:2] if QUICK else snaps if FULL else snaps[::2] + snaps[-1:] * (len(snaps) % 2 == 0)
    for step, path in snaps:
        if not loadable(name, weights=str(path)):
            continue
        factory = {f"{name}@{step}": lambda p=path, n=name: sdo.models.get(n, weights=str(p))}
        part = accuracy_rows(
            factory, ESTIMATORS, PROGRESS_STEPS, ("latent",), PROGRESS_SEEDS, progress=f"{name}@{step}"
        )
        rows.append(part.assign(model=name, training_step=step))
progress = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
if len(progress):
    progress.to_csv(f"{OUT}/shortcut_vs_training.csv", index=False)
    by_training = summarise(progress, ["model", "wrt", "steps", "training_step", "label"])
    print(by_training.to_string(index=False, float_format="%.3g"))
else:
    print("no training snapshots found (they are written by python -m sdo.train ddpm)")

# %% tags=["figure"]
if len(progress):
    for n in PROGRESS_STEPS:
        sub = by_training[by_training.steps == n].assign(wrt=f"latent, N = {n}")
        plot_accuracy_vs_steps(
            sub, hue="label", x="training_step", path=f"{OUT}/shortcut_vs_training_N{n}.png"
        )
        plt.show()

# %% [markdown]
# ## 3. The mechanism: frozen chain gain vs the true contraction

# %%
mech = []
for name, factory in models.items():
    model = factory()
    for n in STEPS:
        for seed in SEEDS:
            mech.append(
                {"model": name, "steps": n, "seed": seed, **mechanism(make_problem(model, n, "latent", seed))}
            )
mech = pd.DataFrame(mech)
mech["overshoot"] = mech["frozen_gain"] / mech["true_gain"]
mech.to_csv(f"{OUT}/shortcut_mechanism.csv", index=False)
print(
    mech.groupby(["model", "steps"])[["frozen_gain", "true_gain", "overshoot"]]
    .median()
    .to_string(float_format="%.3g")
)

# %% tags=["figure"]
plot_mechanism(mech, df[(df.estimator == "sdo") & (df.wrt == "latent")], path=f"{OUT}/shortcut_mechanism.png")
plt.show()
