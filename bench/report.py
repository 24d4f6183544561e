"""Everything under the output folder generated from the raw records: CSV, Markdown, LaTeX, figures and
README.md (what each file shows, the commands that made it, provenance, the grid, failures, targets)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import table3, targets
from .figures import write_figures
from .grid import GRID_NOTES
from .latex import latex
from .records import latest, load
from .tables import frame, markdown, write_csv

FILES = {
    "raw/records.jsonl": "one JSON record per case, append-only, with provenance (commit, dirty flag, "
    "torch/diffusers/python versions, device, date, exact command)",
    "benchmark.csv": "every case, one row, the required columns first, then ratios to BPTT and extras",
    "benchmark.md": "readable tables grouped by model and wrt (trained models first), with ratios to BPTT "
    "and their 95 % intervals",
    "benchmark.tex": "per model a cost table and an accuracy table in LaTeX (booktabs, labels, captions)",
    "table3.md": "the paper's Table 3 analogue: SDO vs the public-code presets and the suite's configurations",
    "table3.tex": "the same in LaTeX",
    "figures/time_vs_N_<model>.png": "median time per gradient vs N with 95 % intervals (log-log)",
    "figures/peak_memory_vs_N_<model>.png": "peak memory vs N in MiB (hollow markers: below the RSS "
    "resolution)",
    "figures/saved_bytes_vs_N_<model>.png": "autograd saved-tensor MiB held by live graphs vs N",
    "figures/accuracy_vs_N_<model>.png": "cosine and norm ratio |ĝ|/|g| to the exact gradient vs N",
    "figures/pareto_<model>.png": "time vs relative error at the largest N, marker area ~ peak memory",
    "pytest-benchmark.json": "pytest-benchmark's JSON from the tests under bench/ (make benchmark)",
    "analysis/": "outputs of the analysis notebooks (made by analysis/, not by this harness)",
}
PROTOCOL = """\
- **Problem**: target-MSE objective with a seeded random target, batch 1, seed 0; random-init models have
  seeded weights, trained models (listed as such) their shipped weights; sampler as listed (native DDIM,
  eta = 0), float32 unless the dtype column says otherwise. wrt intermediate: x_k at the step k whose
  timestep is nearest t = 600.
- **Groups and rounds**: the cases of one group (same model, sampler, N, wrt, dtype, device) run in one
  fresh worker process. Each case first makes an instrumented warm-up call (FLOPs, saved bytes, NFE, the
  gradient and its accuracy); then the timed rounds of all cases are interleaved A B C A B C ..., so
  drift and load hit every case alike. A case gets all its rounds (5 in the quick grid) when one call takes
  under 10 s, fewer (at least 1) when they would exceed the grid's per-case time (the rounds column).
- **Time**: median of the rounds (`time.perf_counter`, `torch.cuda.synchronize` on GPU) with a 95 %
  percentile-bootstrap interval; ratios (×BPTT, SDO / floor, ...) are the median of the per-round ratios
  of paired rounds with their own bootstrap interval. One round gives no interval.
- **Load**: the 1-minute load average is read before and after every round; a group whose maximum
  exceeded its thread count + 0.5 is flagged and its targets get no verdict.
- **Peak memory**: CPU: peak resident set size (VmHWM, reset through /proc/self/clear_refs after
  `malloc_trim`) during each timed call minus the RSS measured just before that call (every call has its
  own baseline), the largest over the rounds; below 1 MiB (allocator and page noise) it prints as
  "< res" and figures draw it hollow at that line. CUDA: `max_memory_allocated` over each call minus
  `memory_allocated` before it. Where `sdo.measure` provides it, a deterministic peak of live tensor
  bytes (`live_peak_bytes`) is recorded beside it and used for the memory columns of the LaTeX tables.
- **Saved bytes**: bytes of tensors autograd saved for backward (`sdo.measure.saved_tensor_bytes`),
  deterministic: `saved_bytes` is the most held at once by live graphs, `saved_total_bytes` counts every
  graph built during the call.
- **FLOPs**: `torch.utils.flop_counter.FlopCounterMode` over the whole call (forward and backward;
  matmul/conv/attention only). **NFE**: network forwards with a graph / without / backward calls.
  `pred_*` columns: the estimator's predicted costs (`Estimator.predict`, sdo/theory.py).
- **Accuracy**: cosine similarity, relative L2 error and the norm ratio |ĝ|/|g| of the flattened gradient
  to the exact gradient of the same problem: BPTT through the same sampler, in float64
  (`exact_ref = bptt-float64`) where affordable, else in the case dtype; the `exact_ref` column says which.
  Estimators that differentiate their own coupled EDICT sampler (reversible, doodl) are also compared with
  BPTT of that coupled sampler (`*_to_coupled`, `coupled_ref`).
- **Reference rows**: `floor-sample` = no-grad sampling plus the loss; `floor-step` = one network
  forward+backward at the first differentiated step, same wrt. Together: the floor any sampling estimator
  pays (for latent models the decoder's backward, which every estimator also pays, is not in this floor).
- **Status**: `ok`; `nonfinite` (non-finite loss or gradient); `oom` (torch.OutOfMemoryError, MemoryError,
  or the worker killed by SIGKILL); `unsupported` (the estimator raised ValueError, e.g. a wrt it does not
  support; the message is kept); `error` (any other exception); `timeout`; `skipped` (not started: the
  sweep's time budget ran out, or a trained model's weights are missing; re-running the same command
  measures it). Tables show the status instead of numbers.
"""
PYTEST_CMD = "python -m pytest bench -q -p no:cacheprovider --benchmark-json={out}/pytest-benchmark.json"


def write(out: str | Path, commands: list[str] | None = None) -> pd.DataFrame | None:
    """Regenerate every derived file from out/raw; None when there are no records yet."""
    out = Path(out)
    rows = latest(load(out))
    if not rows:
        return None
    df = frame(rows)
    write_csv(df, out / "benchmark.csv")
    (out / "benchmark.md").write_text(_md_header(df) + markdown(df))
    (out / "benchmark.tex").write_text(latex(df))
    for name, text in (("table3.md", table3.markdown(df)), ("table3.tex", table3.latex(df))):
        if text:
            (out / name).write_text(text)
    write_figures(df, out / "figures")
    (out / "README.md").write_text(readme(df, out, commands or []))
    return df


def _md_header(df: pd.DataFrame) -> str:
    return (
        "# Benchmark tables\n\nGenerated from `raw/records.jsonl` by `python -m bench report`; do not edit. "
        "Times are medians; ×BPTT is the ratio to the BPTT row of the same group and N; NFE is network "
        "forwards with graph / without graph / backwards. A non-ok case shows its status.\n\n"
    )


def _provenance(df: pd.DataFrame) -> list[str]:
    def vals(col):
        return sorted({str(v) for v in df[col].dropna()}) if col in df else []

    dates = vals("date")
    lines = [
        f"- git commit: {', '.join(vals('git_commit')) or 'unknown'} (dirty: {', '.join(vals('git_dirty'))})"
    ]
    lines += [
        f"- torch {', '.join(vals('torch_version'))}, diffusers {', '.join(vals('diffusers_version'))}, "
        f"python {', '.join(vals('python_version'))}"
    ]
    lines += [f"- device: {'; '.join(vals('device_name'))}"]
    if dates:
        lines += [f"- cases recorded {dates[0]} .. {dates[-1]} ({len(df)} cases)"]
    load = pd.to_numeric(df.get("load_avg_1m", pd.Series(dtype=float)), errors="coerce").dropna()
    if len(load):
        lines += [
            f"- 1-minute load average as each case ended: {load.min():.2f} .. {load.max():.2f} (median "
            f"{load.median():.2f}); the sweep itself accounts for about its thread count ({_threads(df)}). "
            "Much higher values mean other processes shared the CPU: with intra-op threads waiting on each "
            "other, times can then be inflated many-fold, so compare times only from a quiet machine."
        ]
    return lines


def _threads(df: pd.DataFrame) -> str:
    names = sorted({str(v) for v in df.get("device_name", pd.Series()).dropna()})
    return "; ".join(names) or "unknown"


def _grid(df: pd.DataFrame) -> list[str]:
    lines = ["| model | wrt | N | estimators measured | exact reference |", "|---|---|---|---|---|"]
    for (model, wrt), g in df.groupby(["model", "wrt"], sort=True):
        for n, h in g.groupby("steps", sort=True):
            refs = ", ".join(sorted({str(v) for v in h.get("exact_ref", pd.Series()).dropna()})) or "–"
            lines.append(f"| {model} | {wrt} | {n} | {', '.join(sorted(h.estimator))} | {refs} |")
    return lines


def _failures(df: pd.DataFrame) -> list[str]:
    bad = df[df.status != "ok"]
    if bad.empty:
        return ["Every case finished with status ok."]
    lines = ["| case | status | message |", "|---|---|---|"]
    for _, r in bad.iterrows():
        msg = str(r.get("message") or "").replace("|", "\\|").replace("\n", " ")[:300]
        key = str(r["key"]).replace("|", " / ")
        lines.append(f"| {key} | {r['status']} | {msg} |")
    return lines


def _table3(df: pd.DataFrame) -> list[str]:
    text = table3.markdown(df)
    if not text:
        return []
    return ["## Table 3 analogue: SDO vs the public-code presets and the suite's configurations", "", text]


def _exists(out: Path, name: str) -> bool:
    if "<model>" in name:
        return any((out / "figures").glob(Path(name).name.replace("<model>", "*")))
    return (out / name).exists()


def readme(df: pd.DataFrame, out: Path, commands: list[str]) -> str:
    """results/README.md: files, commands, provenance, grid, protocol, failures and the targets."""
    cmds = commands or sorted({str(c) for c in df.get("command", pd.Series()).dropna()})
    if (out / "pytest-benchmark.json").exists():
        cmds = [*cmds, PYTEST_CMD.format(out=out)]
    files = [f"- `{name}` — {what}" for name, what in FILES.items() if _exists(out, name)]
    parts = [
        "# Benchmark results",
        "",
        "Generated by the harness in `bench/` (`python -m bench`); every number comes from "
        "`raw/records.jsonl`. Do not edit by hand: re-run the commands below.",
        "",
        "## Commands",
        "",
        "`make benchmark` runs the pytest-benchmark tests, then the quick sweep (which writes everything "
        "else); `make benchmark-accuracy` runs the trained-model accuracy grid into `results/accuracy/`, "
        "`make benchmark-table3` the Table 3 analogue into `results/table3/`, `make benchmark-full` the GPU "
        "grid into `results/full/`. The commands recorded:",
        "",
        *[f"    {c}" for c in cmds],
        "",
        "## Provenance",
        "",
        *_provenance(df),
        "",
        "## Files",
        "",
        *files,
        "",
        "## Grid",
        "",
        *[f"- {note}" for note in GRID_NOTES],
        "",
        *_grid(df),
        "",
        "## Protocol",
        "",
        PROTOCOL,
        "## Targets (from the measured numbers)",
        "",
        targets.markdown(targets.evaluate(df)),
        *_table3(df),
        "## Cases that did not finish with status ok",
        "",
        *_failures(df),
        "",
    ]
    return "\n".join(parts)
