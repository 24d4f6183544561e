"""`python -m bench run|report|list`: a thin command line over bench.grid, bench.sweep and bench.report."""

from __future__ import annotations

import argparse
import os
import sys

import torch

import sdo

from . import report
from .cluster import options as cluster
from .grid import BUDGETS_S, EXACT_DTYPES, GRIDS, expand
from .launch import LAUNCHERS, import_plugins
from .records import finished, records_path
from .sweep import run_and_report

STATUSES = ("nonfinite", "oom", "error", "unsupported", "timeout")


def _csv(kind):
    return lambda s: [kind(v) for v in s.split(",") if v]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure a grid of cases (resumes: finished cases are skipped)")
    run.add_argument("--grid", default="quick", help=f"one of {', '.join(GRIDS)} (default quick)")
    run.add_argument(
        "--models", type=_csv(str), help="comma list; values all in the grid filter it, others replace it"
    )
    run.add_argument("--estimators", type=_csv(str), help="comma list (filter or replace, as --models)")
    run.add_argument("--steps", type=_csv(int), help="comma list of N (filter or replace, as --models)")
    run.add_argument("--wrt", type=_csv(str), help="comma list of wrt (filter or replace)")
    run.add_argument("--samplers", type=_csv(str), help="comma list of samplers (filter or replace)")
    run.add_argument("--dtype", type=_csv(str), help="comma list of dtypes (float32, float64, ...)")
    run.add_argument("--device", type=_csv(str), help="cpu or cuda[:k] (filter or replace)")
    run.add_argument("--rounds", type=int, help="timed rounds per case (replaces the grid's)")
    run.add_argument(
        "--exact",
        choices=EXACT_DTYPES,
        help="exact reference dtype: auto (float64 for small models), float64, or the case's",
    )
    run.add_argument("--no-floors", action="store_true", help="leave out the floor-sample/floor-step rows")
    run.add_argument("--out", default="results", help="output folder (default results)")
    run.add_argument("--launcher", default="subprocess", choices=LAUNCHERS)
    run.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        help="module to import first (registers extra models/estimators); repeatable",
    )
    run.add_argument(
        "--retry", type=_csv(str), default=[], help=f"re-run cases with these statuses: {STATUSES}"
    )
    run.add_argument("--max-cases", type=int, help="run at most this many pending cases, then stop")
    run.add_argument(
        "--budget",
        type=float,
        help="seconds after which no new case starts (default: the grid's, quick 1020; 0 = none)",
    )
    run.add_argument("--timeout", type=float, help="seconds per case (subprocess launcher); else no limit")
    cluster.add_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    rep = sub.add_parser("report", help="regenerate tables, figures and README from out/raw")
    rep.add_argument("--out", default="results")
    ls = sub.add_parser("list", help="print the grid's cases without running them")
    ls.add_argument("--grid", default="quick")
    return p


def _validate(args) -> None:
    """ValueError naming what is wrong and the valid choices (before anything runs)."""
    checks = [
        ("estimators", sdo.estimators.names()),
        ("models", sdo.models.names()),
        ("samplers", sdo.samplers.names()),
        ("wrt", sdo.WRT),
        ("dtype", ("float32", "float64", "float16", "bfloat16")),
    ]
    for name, valid in checks:
        for v in getattr(args, name) or []:
            if name == "models" and os.path.isdir(v):
                continue  # a local diffusers directory
            if v not in valid:
                also = " or a local diffusers directory" if name == "models" else ""
                raise ValueError(f"unknown {name} value {v!r}; valid: {', '.join(valid)}{also}")
    for v in args.retry:
        if v not in STATUSES:
            raise ValueError(f"unknown --retry status {v!r}; valid: {', '.join(STATUSES)}")
    for d in args.device or []:
        dev = torch.device(d)
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"unsupported device {d!r}; valid: cpu, cuda[:k]")
    for name, v in (("--rounds", args.rounds), ("--max-cases", args.max_cases)):
        if v is not None and v < 1:
            raise ValueError(f"{name} must be >= 1; got {v}")
    if any(n < 1 for n in args.steps or []):
        raise ValueError(f"--steps values must be >= 1; got {args.steps}")


def cases_of(args) -> list:
    """The cases the arguments select (the estimator list is read from the registry now)."""
    overrides = dict(
        model=args.models,
        estimator=args.estimators,
        steps=args.steps,
        wrt=args.wrt,
        sampler=args.samplers,
        dtype=args.dtype,
        device=args.device,
        rounds=None if args.rounds is None else [args.rounds],
        exact=None if args.exact is None else [args.exact],
    )
    return expand(args.grid, floors=not args.no_floors, **overrides)


def main(argv: list[str] | None = None) -> int:
    """Run the command; Ctrl-C prints one line (what is recorded, how to resume) and exits 130."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return command(argv)
    except KeyboardInterrupt:
        out = getattr(parser().parse_args(argv), "out", "results")
        n = len(finished(out))
        print(
            f"interrupted; {n} cases recorded in {records_path(out)}; run the same command again to resume",
            file=sys.stderr,
        )
        return 130


def command(argv: list[str]) -> int:
    """`python -m bench run|report|list` with parsed arguments."""
    args = parser().parse_args(argv)
    try:
        if args.command == "report":
            report.write(args.out)
            return 0
        if args.command == "list":
            for c in expand(args.grid):
                print(c.key, f"rounds={c.rounds}", f"exact={c.exact}")
            return 0
        import_plugins(args.imports)
        _validate(args)
        cases = cases_of(args)
        slurm = cluster.from_args(args)
    except ValueError as exc:
        print(f"python -m bench: error: {exc}", file=sys.stderr)
        return 2
    run_and_report(
        cases,
        args.out,
        launcher=args.launcher,
        imports=tuple(args.imports),
        retry=tuple(args.retry),
        max_cases=args.max_cases,
        timeout_s=args.timeout,
        budget_s=BUDGETS_S.get(args.grid) if args.budget is None else args.budget,
        argv=["-m", "bench", *argv],
        progress=not args.quiet,
        slurm=slurm,
    )
    return 0
