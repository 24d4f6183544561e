"""A sweep: skip finished cases, run the rest with a progress bar, append each record as it comes, then
regenerate the tables, figures and README and print a concise summary."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from sdo.measure import load_1m

from . import report
from .grid import Case, missing_weights
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
    slurm=None,
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
    new = []
    groups = [g for g in _groups(todo) if not _unavailable(g, out, prov, new)]
    todo = [c for g in groups for c in g]
    run = _runner(launcher, out, imports, timeout_s, slurm)
    try:
        with tqdm(total=len(todo), disable=not progress, unit="case", dynamic_ncols=True) as bar:
            for cases, recs in run.map(feed_groups(groups, deadline, started)):
                for case, rec in zip(cases, recs):
                    new.append(_keep(out, {**rec, **prov, "load_avg_1m": load_1m()}))
                    bar.set_postfix_str(f"{case.key} {rec['status']}", refresh=False)
                    bar.update()
    finally:
        run.close()
    message = f"not started: the sweep's time budget of {budget_s} s ran out; re-run the same command"
    new += [_keep(out, {**skipped(case, message), **prov}) for case in todo[len(started) :]]
    return new


def _groups(cases: list[Case]) -> list[list[Case]]:
    """Cases grouped by Case.group, in the order of their first case (members keep their order)."""
    groups: dict[tuple, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    return list(groups.values())


def feed_groups(groups: list[list[Case]], deadline: float | None, started: list[Case]):
    """Groups until the deadline passes (a group is never split); `started` collects what was handed out."""
    for g in groups:
        if deadline is not None and time.monotonic() > deadline:
            return
        started.extend(g)
        yield g


def _unavailable(group: list[Case], out: Path, prov: dict, new: list[dict]) -> bool:
    """Record a group whose model's trained weights are missing as skipped (a later run retries it)."""
    reason = missing_weights(group[0].model)
    if reason is None:
        return False
    new.extend(_keep(out, {**skipped(c, reason), **prov}) for c in group)
    return True


class _PerCase:
    """Adapter: a per-case runner (submitit / Slurm) driven group by group; each case measured alone."""

    def __init__(self, run):
        self.run = run

    def map(self, groups):
        for g in groups:
            yield g, [rec for _, rec in self.run.map(g)]

    def close(self) -> None:
        self.run.close()


def _runner(launcher: str, out: Path, imports, timeout_s, slurm):
    """Group runners (subprocess, inprocess, slurm); `local` submitit jobs measure one case each."""
    run = runner(launcher, out, imports, timeout_s, slurm=slurm)
    return _PerCase(run) if launcher == "local" else run


def _keep(out: Path, rec: dict) -> dict:
    append(out, rec)
    return rec


def summary(df: pd.DataFrame | None, new: list[dict]) -> str:
    """Status counts of this run and, per (model, wrt) at the largest N, time, cosine and norm ratio
    |g_hat| / |g| per estimator."""
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
    """'1.2s' and, for an estimator, '(cos 0.63, norm x46)': cosine alone hides magnitude errors."""
    if r.status != "ok":
        return r.status
    t = f"{r.time_median_s:.3g}s"
    cos, ratio = getattr(r, "cos_to_exact", None), getattr(r, "norm_ratio_to_exact", None)
    if cos is None or pd.isna(cos):
        return t
    return f"{t}(cos {cos:.2f}" + ("" if ratio is None or pd.isna(ratio) else f", norm x{ratio:.3g}") + ")"


def run_and_report(cases: list[Case], out: str | Path, **options) -> pd.DataFrame | None:
    """sweep + report.write + the printed summary."""
    new = sweep(cases, out, **options)
    df = report.write(out)
    print(summary(df, new))
    print(f"bench: wrote {Path(out) / 'benchmark.csv'}, benchmark.md, benchmark.tex, figures/, README.md")
    return df
