"""A sweep: skip finished cases, run the rest with a progress bar, append each record as it comes, then
regenerate the tables, figures and README and print a concise summary."""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from . import report
from .grid import Case
from .launch import runner, skipped
from .records import append, finished, provenance


def pending(cases: list[Case], out: str | Path, retry: tuple[str, ...] = (), max_cases: int | None = None):
    """The cases not yet recorded under `out` (resume), at most max_cases of them."""
    done = finished(out, retry)
    todo = [c for c in cases if c.key not in done]
    return todo if max_cases is None else todo[:max_cases]


def sweep(
    cases: list[Case],
    out: str | Path,
    launcher: str = "subprocess",
    imports: tuple[str, ...] = (),
    retry: tuple[str, ...] = (),
    max_cases: int | None = None,
    timeout_s: float | None = None,
    budget_s: float | None = None,
    argv: list[str] | None = None,
    progress: bool = True,
    **slurm,
) -> list[dict]:
    """Run the pending cases; returns the new records (already appended to out/raw/records.jsonl).
    After budget_s seconds no new case starts; those left are recorded as `skipped` (a re-run does them)."""
    out = Path(out)
    todo = pending(cases, out, retry, max_cases)
    prov = provenance(argv)
    print(f"bench: {len(cases)} cases in the grid, {len(cases) - len(pending(cases, out, retry))} already "
          f"recorded, running {len(todo)}" + (f" (budget {budget_s:.0f} s)" if budget_s else ""))  # fmt: skip
    deadline = None if not budget_s else time.monotonic() + budget_s
    started: list[Case] = []

    def feed():
        for case in todo:
            if deadline is not None and time.monotonic() > deadline:
                return
            started.append(case)
            yield case

    new = []
    run = runner(launcher, out, imports, timeout_s, **slurm)
    try:
        with tqdm(total=len(todo), disable=not progress, unit="case", dynamic_ncols=True) as bar:
            for case, rec in run.map(feed()):
                new.append(_keep(out, {**rec, **prov, "load_avg_1m": _load()}))
                bar.set_postfix_str(f"{case.key} {rec['status']}", refresh=False)
                bar.update()
    finally:
        run.close()
    message = f"not started: the sweep's time budget of {budget_s} s ran out; re-run the same command"
    new += [_keep(out, {**skipped(case, message), **prov}) for case in todo[len(started) :]]
    return new


def _load() -> float | None:
    """The 1-minute load average as the case ends (other processes sharing the CPU inflate times)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _keep(out: Path, rec: dict) -> dict:
    append(out, rec)
    return rec


def summary(df: pd.DataFrame | None, new: list[dict]) -> str:
    """Status counts of this run and, per (model, wrt) at the largest N, time and cosine per estimator."""
    counts = collections.Counter(r["status"] for r in new)
    lines = [
        f"bench: this run recorded {len(new)} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    ]
    if df is None or df.empty:
        return "\n".join(lines)
    for (model, wrt), g in df.groupby(["model", "wrt"], sort=True):
        n = int(g.steps.max())
        rows = g[g.steps == n].sort_values("estimator")
        cells = [f"{r.estimator}={_short(r)}" for r in rows.itertuples()]
        lines.append(f"  {model:>13} wrt {wrt:<7} N={n:<3} " + "  ".join(cells))
    return "\n".join(lines)


def _short(r) -> str:
    if r.status != "ok":
        return r.status
    t = f"{r.time_median_s:.3g}s"
    cos = getattr(r, "cos_to_exact", None)
    return t if cos is None or pd.isna(cos) else f"{t}(cos {cos:.2f})"


def run_and_report(cases: list[Case], out: str | Path, **options) -> pd.DataFrame | None:
    """sweep + report.write + the printed summary."""
    new = sweep(cases, out, **options)
    df = report.write(out)
    print(summary(df, new))
    print(f"bench: wrote {Path(out) / 'benchmark.csv'}, benchmark.md, benchmark.tex, figures/, README.md")
    return df
