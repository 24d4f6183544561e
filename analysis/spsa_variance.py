"""SPSA's error against BPTT as the number of antithetic samples S grows, over several seeds.

For a near-quadratic objective each sample's term is u u^T g, so the squared relative error of the mean
of S samples is (D + 1) / S in expectation (D: the number of variables): `predicted_rel_err` is its root.

    python -m analysis.spsa_variance --out results/analysis
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import pandas as pd
import torch

import sdo
from sdo.compare import accuracy

SAMPLES = (1, 4, 16, 64)
CASES = (  # model, N, dtype, sigma, seeds
    ("gmm", 10, torch.float64, 1e-2, 20),
    ("fmnist-ddpm", 10, torch.float32, 1e-2, 4),
)


def measure(model: str, steps: int, dtype, sigma: float, seeds: int, samples=SAMPLES) -> list[dict]:
    """One row per (S, seed): rel_err, cosine and norm ratio to BPTT of the same problem."""
    problem = sdo.Problem(
        sdo.models.get(model, seed=0),
        sdo.samplers.get("ddim", steps=steps),
        sdo.objectives.get("target-mse", seed=1),
        dtype=dtype,
    )
    t0 = time.perf_counter()
    ref = sdo.grad(problem, "bptt")
    bptt_s = time.perf_counter() - t0
    dim = problem.latent.numel()
    rows = []
    for S in samples:
        for seed in range(seeds):
            t0 = time.perf_counter()
            res = sdo.grad(problem, "spsa", samples=S, sigma=sigma, seed=seed)
            wall = time.perf_counter() - t0
            acc = accuracy(res, ref)
            rows.append(
                dict(model=model, steps=steps, dtype=str(dtype).removeprefix("torch."), dim=dim, sigma=sigma)
                | dict(samples=S, seed=seed, predicted_rel_err=math.sqrt((dim + 1) / S))
                | {k: acc[k] for k in ("rel_err", "cosine", "norm_ratio")}
                | dict(nfe_fwd=res.stats["nfe_fwd_nograd"], wall_s=wall, bptt_wall_s=bptt_s)
            )
    return rows


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, S): RMS relative error, mean cosine, and the fitted slope of mean squared error vs S."""
    agg = (
        df.assign(sq=df.rel_err**2)
        .groupby(["model", "samples"])
        .agg(rms_rel_err=("sq", lambda v: float(np.sqrt(v.mean()))), mean_cosine=("cosine", "mean"))
        .reset_index()
    )
    agg = agg.merge(df.groupby(["model", "samples"]).predicted_rel_err.first().reset_index())
    slope = {
        m: float(np.polyfit(np.log(g.samples), np.log(g.rms_rel_err**2), 1)[0])
        for m, g in agg.groupby("model")
    }
    return agg.assign(mse_slope=agg.model.map(slope))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.spsa_variance", description=__doc__)
    parser.add_argument("--out", default="results/analysis")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    df = pd.DataFrame([row for case in CASES for row in measure(*case)])
    df.to_csv(os.path.join(args.out, "spsa_variance.csv"), index=False)
    table = summary(df)
    table.to_csv(os.path.join(args.out, "spsa_variance_summary.csv"), index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
