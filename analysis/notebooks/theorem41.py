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
# # How tight is Theorem 4.1?
# The paper bounds the error of the one-step gradient wrt $x_N$ by $\lambda^2\rho/(1-\lambda)$, where
# $\lambda = \|\partial F/\partial X\|$ is the contraction constant of the Picard operator (Eq. 8) and
# $\rho = \|\partial J/\partial X\|$. The proof gives $\rho\,\lambda\,\|\partial F/\partial x_N\|/(1-\lambda)$.
# We form every matrix explicitly for flow-matching Euler (Eq. 10) on an exact Gaussian-mixture velocity,
# so both the error and the bounds are exact numbers.

# %%
import os

from analysis.plots import plot_theorem
from analysis.theorem41 import theorem_table

OUT = os.environ.get("SDO_ANALYSIS_OUT", "results/analysis")
os.makedirs(OUT, exist_ok=True)
df = theorem_table(steps=(5, 10, 20, 40), scales=(0.1, 0.3, 1.0), dim=2, seeds=(0, 1, 2))
df.to_csv(f"{OUT}/theorem41.csv", index=False)
cols = ["steps", "scale", "lam", "rho", "lip", "error", "bound_stated", "bound_proof", "cosine"]
print(df.groupby(["scale", "steps"])[cols[2:]].mean().round(4).to_string())

# %%
plot_theorem(df, f"{OUT}/theorem41.png")

# %% [markdown]
# ## What the numbers say

# %%
contractive = df[df["lam"] < 1]
print(f"cases: {len(df)}; contractive (lambda < 1): {len(contractive)}")
print(
    f"proof's bound holds in {(contractive['tight_proof'] <= 1).mean():.0%} of contractive cases; "
    f"median tightness error/bound = {contractive['tight_proof'].median():.3f}"
)
print(
    f"stated bound holds in {(contractive['tight_stated'] <= 1).mean():.0%} of contractive cases; "
    f"max error/bound = {contractive['tight_stated'].max():.2f}"
)
print("mean cosine(SDO, exact) by data scale:", df.groupby("scale")["cosine"].mean().round(4).to_dict())
