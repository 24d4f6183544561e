"""reversible-mf against its coupling parameter lam: how exactly the coupled sampler inverts, and how close
its (exact) gradient is to the gradient of the plain, uncoupled sampler (BPTT), in float64.

Inversion error: max |x_N rebuilt by inverting all N steps - x_N| / max |x_N|. Gradient accuracy: cosine,
relative error and norm ratio of reversible-mf's gradient to BPTT of the problem's own sampler; sample gap:
||x_0 coupled - x_0 plain|| / ||x_0 plain||. The EDICT `reversible` (mix 0.93, native DDIM) is one reference
row per model.

    python -m analysis.reversible_lambda --out results/analysis
"""

from __future__ import annotations

import argparse
import os

import pandas as pd
import torch

import sdo
from sdo.compare import accuracy
from sdo.estimators.reversible_mf import Coupling, coupled_sample
from sdo.loop import Rollout

LAMS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
CASES = (  # model, samplers, lams (fewer on the trained UNet: float64 convolutions on a CPU)
    ("gmm", ("ddim", "dpm++2m", "euler"), LAMS),
    ("gmm-flow", ("flow-euler",), LAMS),
    ("fmnist-ddpm", ("ddim", "dpm++2m"), (0.5, 0.8, 0.9, 0.99, 0.999)),
)


def make(model: str, sampler: str, steps: int) -> sdo.Problem:
    """Target-MSE (seed 1) on `model` (seed 0) with `sampler`, N = `steps`, float64."""
    return sdo.Problem(
        sdo.models.get(model, seed=0),
        sdo.samplers.get(sampler, steps=steps),
        sdo.objectives.get("target-mse", seed=1),
        dtype=torch.float64,
    )


def inversion_error(problem: sdo.Problem, lam: float) -> float:
    """Relative max error of x_N rebuilt by running the coupled sampler and inverting every step."""
    rollout = Rollout(problem)
    x = rollout.solver.init_scale * problem.latent
    coupling = Coupling.build(rollout, problem.steps, lam)
    with torch.no_grad():
        y, z = coupled_sample(coupling, x, problem.steps)
        for i in range(1, problem.steps + 1):
            y, z = coupling.invert(i, y, z)
    return float((y - x).abs().max() / x.abs().max())


def row(problem, name: str, options: dict, ref, label: str) -> dict:
    """Gradient accuracy and sample gap of one estimator run against the plain sampler's BPTT."""
    res = sdo.grad(problem, name, **options)
    acc = accuracy(res, ref)
    gap = float((res.x0 - ref.x0).norm() / ref.x0.norm())
    return dict(estimator=label, **{k: acc[k] for k in ("cosine", "rel_err", "norm_ratio")}, sample_gap=gap)


def measure(model: str, samplers, steps: int, lams=LAMS) -> list[dict]:
    """One row per (sampler, lam), plus the EDICT reference row on native DDIM."""
    rows = []
    for sampler in samplers:
        problem = make(model, sampler, steps)
        ref = sdo.grad(problem, "bptt")
        base = dict(model=model, sampler=sampler, steps=steps)
        for lam in lams:
            r = row(problem, "reversible-mf", {"lam": lam}, ref, "reversible-mf")
            rows.append(base | dict(lam=lam, inversion_error=inversion_error(problem, lam)) | r)
        if sampler == "ddim":
            r = row(problem, "reversible", {}, ref, "reversible (EDICT, mix 0.93)")
            rows.append(base | dict(lam=float("nan"), inversion_error=float("nan")) | r)
    return rows


def plot(df: pd.DataFrame, path: str) -> None:
    """Inversion error and gradient relative error (to the plain sampler's BPTT) against lam."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mf = df[df.estimator == "reversible-mf"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (model, sampler), g in mf.groupby(["model", "sampler"], sort=False):
        label = f"{model} / {sampler}"
        axes[0].semilogy(g.lam, g.inversion_error.clip(lower=1e-17), "o-", label=label)
        axes[1].semilogy(g.lam, g.rel_err, "o-", label=label)
        axes[2].plot(g.lam, g.cosine, "o-", label=label)
    for ax, title in zip(
        axes,
        (
            "inversion error (rel. max), float64",
            "gradient rel. error to plain BPTT",
            "gradient cosine to plain BPTT",
        ),
    ):
        ax.set_xlabel("lam")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=7)
    steps = int(df.steps.iloc[0])
    fig.suptitle(f"reversible-mf (McCallum-Foster coupling) against lam, N = {steps}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.reversible_lambda", description=__doc__)
    parser.add_argument("--out", default="results/analysis")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--models", nargs="*", default=None, help="subset of: gmm gmm-flow fmnist-ddpm")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    cases = [c for c in CASES if args.models is None or c[0] in args.models]
    df = pd.DataFrame(
        [r for model, samplers, lams in cases for r in measure(model, samplers, args.steps, lams)]
    )
    df.to_csv(os.path.join(args.out, "reversible_lambda.csv"), index=False)
    plot(df, os.path.join(args.out, "reversible_lambda.png"))
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
