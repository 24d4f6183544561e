"""Adjoint gradients against BPTT as the number of sampler steps N grows (float64).

`adjoint` (torchdiffeq's Euler adjoint on the sampler's grid: the VJP at the low-noise end of each step, at
the forward states torchdiffeq keeps) and `adjoint-deis` (the first-order exponential-integrator adjoint,
states rebuilt by inversion, by fixed-point sweeps, or stored) on a Gaussian mixture (VP, epsilon), a
rectified-flow mixture (velocity; native DDIM, which is flow-Euler) and the trained fmnist-ddpm.

    python -m analysis.adjoint_convergence --out results/analysis
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
import torch

import sdo
from sdo.compare import accuracy

STEPS = (5, 10, 20, 50, 100)
ESTIMATORS = (
    ("adjoint", {}),
    ("adjoint-deis", {"states": "inversion"}),
    ("adjoint-deis", {"states": "fixed-point", "iterations": 3}),
    ("adjoint-deis", {"states": "stored"}),
)
CASES = (  # model, sampler, wrt
    ("gmm", "ddim", "latent"),
    ("gmm", "ddim", "params"),
    ("gmm-flow", "ddim", "latent"),
    ("gmm-flow", "ddim", "params"),
    ("fmnist-ddpm", "ddim", "latent"),
)


def label(name: str, options: dict) -> str:
    """'adjoint' or 'adjoint-deis/inversion' etc."""
    return name if "states" not in options else f"{name}/{options['states']}"


def timed(problem, name: str, options: dict):
    t0 = time.perf_counter()
    res = sdo.grad(problem, name, **options)
    return res, time.perf_counter() - t0


def measure_case(model: str, sampler: str, wrt: str, steps=STEPS) -> list[dict]:
    """One row per (N, estimator): relative error, cosine and norm ratio to BPTT, wall times."""
    rows = []
    for N in steps:
        problem = sdo.Problem(
            sdo.models.get(model, seed=0),
            sdo.samplers.get(sampler, steps=N),
            sdo.objectives.get("target-mse", seed=1),
            wrt=wrt,
            dtype=torch.float64,
        )
        ref, ref_s = timed(problem, "bptt", {})
        for name, options in ESTIMATORS:
            res, wall = timed(problem, name, options)
            acc = accuracy(res, ref)
            rows.append(
                dict(model=model, sampler=sampler, wrt=wrt, steps=N, estimator=label(name, options))
                | {k: acc[k] for k in ("rel_err", "cosine", "norm_ratio")}
                | dict(wall_s=wall, bptt_wall_s=ref_s, status=res.status)
            )
    return rows


def slopes(df: pd.DataFrame, min_steps: int = 1) -> pd.DataFrame:
    """Fitted log-log slope of rel_err and of 1 - cosine vs N per (model, wrt, estimator), N >= min_steps."""
    out = []
    for key, g in df[df.steps >= min_steps].groupby(["model", "sampler", "wrt", "estimator"]):
        n = np.log(g.steps.to_numpy(float))
        row = dict(zip(["model", "sampler", "wrt", "estimator"], key), from_steps=int(g.steps.min()))
        for col, values in (("rel_err", g.rel_err), ("one_minus_cosine", 1 - g.cosine)):
            v = values.to_numpy(float)
            ok = v > 1e-13  # at rounding level there is no slope to fit
            row[f"slope_{col}"] = float(np.polyfit(n[ok], np.log(v[ok]), 1)[0]) if ok.sum() >= 2 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def plot(df: pd.DataFrame, fits: pd.DataFrame, path: str) -> None:
    """Rows: model / wrt; columns: relative error and 1 - cosine vs N, log-log; legend: slopes fitted on N >= 20."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(df.groupby(["model", "wrt"], sort=False))
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 2.8 * len(groups)), squeeze=False)
    for (key, g), ax_row in zip(groups, axes):
        for est, ge in g.groupby("estimator", sort=False):
            fit = fits[(fits.model == key[0]) & (fits.wrt == key[1]) & (fits.estimator == est)].iloc[0]
            for ax, col, values in (
                (ax_row[0], "rel_err", ge.rel_err),
                (ax_row[1], "one_minus_cosine", 1 - ge.cosine),
            ):
                ax.loglog(
                    ge.steps, values.clip(lower=1e-17), "o-", label=f"{est} ({fit['slope_' + col]:.2f})"
                )
        ax_row[0].set_ylabel(f"{key[0]}, wrt {key[1]}")
        for ax, title in zip(ax_row, ("relative error to BPTT", "1 - cosine to BPTT")):
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("N")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.adjoint_convergence", description=__doc__)
    parser.add_argument("--out", default="results/analysis")
    parser.add_argument("--models", nargs="*", default=None, help="subset of: gmm gmm-flow fmnist-ddpm")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for model, sampler, wrt in CASES:
        if args.models is None or model in args.models:
            rows += measure_case(model, sampler, wrt)
            print(f"done {model} {wrt}", flush=True)
    df = pd.DataFrame(rows)
    fits = pd.concat([slopes(df), slopes(df, min_steps=20)], ignore_index=True)
    df.to_csv(os.path.join(args.out, "adjoint_convergence.csv"), index=False)
    fits.to_csv(os.path.join(args.out, "adjoint_convergence_slopes.csv"), index=False)
    plot(df, fits[fits.from_steps == 20], os.path.join(args.out, "adjoint_convergence.png"))
    print(fits.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
