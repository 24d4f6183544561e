"""Every estimator against BPTT: sdo.compare on the Gaussian mixture and a random-init unet-tiny.

    HF_HUB_OFFLINE=1 python -m analysis.compare_table [--models gmm unet-tiny] [--steps 10 50]

Prints one Markdown table per wrt: rows are estimators, columns (model, N); each cell is
"cosine / relative error" of the estimator's gradient to BPTT, all in float64 (sdo.compare).
"""

from __future__ import annotations

import argparse

import pandas as pd
from tqdm import tqdm

import sdo


def estimator_specs(wrt: str, steps: int, adaptive: bool = True) -> list:
    """Every registered estimator (with representative options) that is defined for this wrt; the
    adaptive (dopri5) adjoint only when `adaptive` (it took 710 NFE, 747 s on CPU for unet-tiny, N=10)."""
    specs = [
        "checkpoint",
        ("truncated", {"K": 1}),
        "alignprop",
        "sdo",
        "reversible",
        "adjoint",
    ]
    if adaptive:
        specs.append(("adjoint", {"method": "dopri5", "rtol": 1e-6, "atol": 1e-6}))
    if wrt in ("latent", "intermediate"):
        specs[4:4] = [("neumann", {"K": 1}), ("neumann", {"K": min(5, steps - 1)})]
    if wrt == "params":
        specs += [("draft", {"K": 1}), ("sdo", {"scale_by": "N"}), "sdo-all"]
    return specs


def problem_for(model: str, steps: int, wrt: str) -> sdo.Problem:
    """Target-MSE on a DDIM sampler; the model seeded (random init for the UNet)."""
    return sdo.Problem(
        sdo.models.get(model, seed=0),
        sdo.samplers.get("ddim", steps=steps),
        sdo.objectives.get("target-mse"),
        wrt=wrt,
        seed=0,
    )


def label(row) -> str:
    opts = row.options
    return row.estimator + (" " + ", ".join(f"{k}={v}" for k, v in opts.items()) if opts else "")


def cell(row) -> str:
    if row.status != "ok":
        return "unsupported" if "does not support" in row.error else row.status
    return f"{row.cosine:.4f} / {row.rel_err:.2e}"


def run(models: list[str], steps: list[int], wrts: list[str], adaptive: list[str]) -> dict[str, pd.DataFrame]:
    """{wrt: table with one row per estimator and one column per (model, N)}."""
    cases = [(w, m, n) for w in wrts for m in models for n in steps]
    frames: dict[str, list] = {w: [] for w in wrts}
    for wrt, model, n in tqdm(cases, desc="compare"):
        df = sdo.compare(problem_for(model, n, wrt), estimator_specs(wrt, n, model in adaptive))
        ref = df.ref_norm.iloc[0]
        col = f"{model} N={n} (\\|g\\|={ref:.2g})"
        frames[wrt].append(
            pd.Series([cell(r) for r in df.itertuples()], index=[label(r) for r in df.itertuples()], name=col)
        )
    return {w: pd.concat(cols, axis=1).fillna("-") for w, cols in frames.items()}


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (index as the first column)."""
    head = ["estimator", *table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([str(i), *map(str, row)]) + " |" for i, row in zip(table.index, table.values)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gmm", "unet-tiny"])
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 50])
    parser.add_argument("--wrt", nargs="+", default=["latent", "params"])
    parser.add_argument("--adaptive", nargs="*", default=["gmm"], help="models that also get adjoint dopri5")
    args = parser.parse_args(argv)
    for wrt, table in run(args.models, args.steps, args.wrt, args.adaptive).items():
        print(f"\n### wrt = {wrt}: cosine / relative error to BPTT (float64, DDIM, target-MSE)\n")
        print(markdown(table))


if __name__ == "__main__":
    main()
