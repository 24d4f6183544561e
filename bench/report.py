"""Everything under the output folder generated from the raw records: CSV, Markdown, LaTeX, figures and
README.md (what each file shows, the commands that made it, provenance, the grid, failures, targets)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import targets
from .figures import write_figures
from .grid import GRID_NOTES
from .records import latest, load
from .tables import frame, latex, markdown, write_csv

FILES = {
    "raw/records.jsonl": "one JSON record per case, append-only, with provenance (commit, dirty flag, "
    "torch/diffusers/python versions, device, date, exact command)",
    "benchmark.csv": "every case, one row, the required columns first, then ratios to BPTT and extras",
    "benchmark.md": "readable tables grouped by model and wrt, with ratios to BPTT",
    "benchmark.tex": "the same tables in LaTeX (booktabs)",
    "figures/time_vs_N.png": "median time per gradient vs N, per estimator (log-log)",
    "figures/peak_memory_vs_N.png": "peak memory above the post-warm-up baseline vs N (log-log)",
    "figures/saved_bytes_vs_N.png": "peak autograd saved-tensor bytes held by live graphs vs N (log-log)",
    "figures/cosine_vs_N.png": "cosine similarity to the exact gradient vs N",
    "pytest-benchmark.json": "pytest-benchmark's JSON from the tests under bench/ (make benchmark)",
    "analysis/": "outputs of the analysis notebooks (made by analysis/, not by this harness)",
}
PROTOCOL = """\
- **Problem**: target-MSE objective with a seeded random target, batch 1, seed 0, model weights seeded
  (random init), sampler as listed (native DDIM, eta = 0), float32 unless the dtype column says otherwise.
- **Time**: the first call is the warm-up and is instrumented (FLOPs, saved bytes, NFE, the gradient);
  then `rounds` timed calls (`time.perf_counter`, `torch.cuda.synchronize` on GPU): median, min, max, IQR.
- **Peak memory**: CPU: peak resident set size (VmHWM, reset through /proc/self/clear_refs after
  `malloc_trim`) of the worker process over the timed rounds minus its RSS after model load and warm-up;
  the default launcher runs cases in a worker subprocess that holds only the current model and reference
  gradient. CUDA: `max_memory_allocated` over the rounds minus `memory_allocated` before them
  (`peak_mem_total_bytes` is the absolute figure).
- **Saved bytes**: bytes of tensors autograd saved for backward (`sdo.measure.saved_tensor_bytes`:
  saved-tensor hooks, de-duplicated by storage, weights count once), deterministic. `saved_bytes` is the
  most held at once by live graphs (graphs built and freed inside a backward, as adjoint and reversible do,
  stop counting when freed); `saved_total_bytes` counts every graph built during the call. Tensors saved
  inside `torch.utils.checkpoint` regions go through checkpoint's own hooks and are not seen.
- **FLOPs**: `torch.utils.flop_counter.FlopCounterMode` over the whole call (forward and backward;
  matmul/conv/attention only). **NFE**: network forwards with a graph / without / backward calls.
- **Accuracy**: cosine similarity and relative L2 error of the flattened gradient to the exact gradient of
  the same problem: BPTT, in float64 (`exact_ref = bptt-float64`) where affordable, else BPTT in the case
  dtype (`bptt-float32`); the `exact_ref` column says which, per row.
- **Reference rows**: `floor-sample` = no-grad sampling plus the loss; `floor-step` = one network
  forward+backward at the first differentiated step, same wrt. Together: the floor any sampling estimator pays
  (for latent models the decoder's backward, which every estimator also pays, is not in this floor).
- **Status**: `ok`; `nonfinite` (non-finite loss or gradient); `oom` (torch.OutOfMemoryError, MemoryError,
  or the worker killed by SIGKILL); `unsupported` (the estimator raised ValueError, e.g. a wrt it does not
  support; the message is kept); `error` (any other exception); `timeout`; `skipped` (not started: the
  sweep's time budget ran out; re-running the same command measures it). Tables show the status instead
  of numbers.
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


def readme(df: pd.DataFrame, out: Path, commands: list[str]) -> str:
    """results/README.md: files, commands, provenance, grid, protocol, failures and the targets."""
    cmds = commands or sorted({str(c) for c in df.get("command", pd.Series()).dropna()})
    if (out / "pytest-benchmark.json").exists():
        cmds = [*cmds, PYTEST_CMD.format(out=out)]
    files = [f"- `{name}` — {what}" for name, what in FILES.items() if (out / name).exists()]
    parts = [
        "# Benchmark results",
        "",
        "Generated by the harness in `bench/` (`python -m bench`); every number comes from "
        "`raw/records.jsonl`. Do not edit by hand: re-run the commands below.",
        "",
        "## Commands",
        "",
        "`make benchmark` runs the pytest-benchmark tests, then the quick sweep (which writes everything "
        "else); `make benchmark-full` runs the GPU grid into `results/full/`. The commands recorded:",
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
        "## Cases that did not finish with status ok",
        "",
        *_failures(df),
        "",
    ]
    return "\n".join(parts)
