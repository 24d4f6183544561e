"""Every estimator against float64 BPTT on one model: exactness, memory class, accuracy and time.

    HF_HUB_OFFLINE=1 python -m analysis.compare_table [--model fmnist-ddpm] [--steps 10 50] [--wrt latent]
        [--rounds 3] [--out results/analysis/compare_table.csv]

Prints one Markdown table: a row per estimator configuration; columns: exact?, the memory class its
prediction gives (sdo.theory), then per N "cosine / norm ratio ||g_hat||/||g||" to BPTT of the same DDIM
sampler and the median time over `rounds` calls relative to BPTT's (one process, the load it ran under is
printed: times are indicative, the benchmark's interleaved rounds are the citable ones).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd
import torch
from tqdm import tqdm

import sdo
from sdo.compare import accuracy

from .shortcut import label, make_problem


def estimator_specs(wrt: str, steps: int) -> list[tuple[str, dict]]:
    """Every registered estimator with representative options, for this wrt."""
    specs = [
        ("bptt", {}),
        ("checkpoint", {}),
        ("bptt-offload", {}),
        ("sdo", {}),
        ("sdo", {"memory": "floor"}),
        ("sdo", {"freeze": "v"}),
        ("truncated", {"K": 1}),
        ("alignprop", {}),
        ("neumann", {"K": 1}),
        ("neumann", {"K": 1, "tau": 0.5}),
        ("sdo-all", {}),
        ("adjoint", {}),
        ("adjoint-deis", {}),
        ("adjoint-deis", {"states": "stored"}),
        ("reversible", {}),
        ("reversible-mf", {}),
        ("tweedie", {}),
        ("spsa", {"samples": 16}),
    ]
    if wrt == "params":
        specs += [("draft", {"K": 1}), ("sdo", {"scale_by": "N"})]
    return specs


def timed(problem: sdo.Problem, name: str, options: dict, rounds: int):
    """(last result, median seconds per call) over `rounds` calls; (None, error text) if it raises."""
    walls, result = [], None
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            result = sdo.grad(problem, name, **options)
            walls.append(time.perf_counter() - t0)
    except ValueError as err:  # an estimator that does not support this problem says so
        return None, str(err).split(";")[0]
    return result, statistics.median(walls)


def memory_class(problem: sdo.Problem, name: str, options: dict) -> str:
    try:
        return sdo.estimators.get(name, **options).predict(problem).memory
    except (ValueError, NotImplementedError):
        return "-"


def run(model: str, steps: list[int], wrt: str, rounds: int) -> pd.DataFrame:
    """One row per (estimator configuration, N)."""
    rows, built = [], sdo.models.get(model)
    for n in steps:
        problem = make_problem(built, n, wrt, seed=0)
        sdo.grad(problem, "bptt")  # warm-up: the first call of a process pays one-off costs
        ref, t_ref = timed(problem, "bptt", {}, rounds)
        for name, opts in tqdm(estimator_specs(wrt, n), desc=f"{model} N={n}"):
            res, t = timed(problem, name, opts, rounds)
            row = dict(
                estimator=label(name, opts), steps=n, exact=getattr(sdo.estimators.get(name), "exact", False)
            )
            row["memory"] = memory_class(problem, name, opts)
            if res is None:
                rows.append({**row, "status": t})
                continue
            acc = accuracy(res, ref)
            rows.append({**row, "status": res.status, **acc, "time_x_bptt": t / t_ref})
    return pd.DataFrame(rows)


def cell(df: pd.DataFrame, est: str, n: int) -> str:
    row = df[(df.estimator == est) & (df.steps == n)].iloc[0]
    if row.status != "ok":
        return str(row.status)
    return f"{row.cosine:.3f} / {row.norm_ratio:.3g}"


def time_cell(df: pd.DataFrame, est: str, n: int) -> str:
    row = df[(df.estimator == est) & (df.steps == n)].iloc[0]
    return "-" if row.status != "ok" else f"{row.time_x_bptt:.2f}"


def markdown(df: pd.DataFrame, steps: list[int]) -> str:
    """The summary table: estimator, exact?, memory class, accuracy per N, time / BPTT per N."""
    head = ["estimator", "exact?", "memory", *[f"cos / norm ratio, N={n}" for n in steps]]
    head += [f"time / BPTT, N={n}" for n in steps]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for est in dict.fromkeys(df.estimator):
        rows = df[df.estimator == est]
        first = rows.iloc[0]
        matches = "rel_err" in rows and (rows.rel_err < 1e-8).all()
        cells = [est, "yes" if first.exact else ("equals BPTT" if matches else "no"), first.memory]
        cells += [cell(df, est, n) for n in steps] + [time_cell(df, est, n) for n in steps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.compare_table", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", default="fmnist-ddpm")
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 50])
    parser.add_argument("--wrt", default="latent", choices=["latent", "intermediate", "params", "cond"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the rows as CSV")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    df = run(args.model, args.steps, args.wrt, args.rounds)
    if args.out:
        df.to_csv(args.out, index=False)
    load = os.getloadavg()[0]
    print(
        f"\n{args.model}, wrt {args.wrt}, DDIM, target-MSE, float64; threads {torch.get_num_threads()}, load {load:.1f}\n"
    )
    print(markdown(df, args.steps))


if __name__ == "__main__":
    main()
