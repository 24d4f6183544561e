"""Figures, one per question and model: time vs N, peak memory vs N (MiB), saved bytes vs N, accuracy vs N
(cosine and norm ratio) and a Pareto figure (time vs relative error, marker size = memory). Okabe-Ito
colours with distinct markers and line styles; error bars from the rounds; a suptitle with the model,
sampler, device and commit. Non-ok cases are left out (the tables show them)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .grid import FLOORS, TRAINED_MODELS  # noqa: E402
from .ratios import MIB, RSS_RESOLUTION, rounds_of  # noqa: E402

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
MARKERS = "osD^vP*X<>hp"
LINES = ["-", "--", ":", "-."]
QUESTIONS = ("time_vs_N", "peak_memory_vs_N", "saved_bytes_vs_N", "accuracy_vs_N", "pareto")


def styles(names: list[str]) -> dict[str, dict]:
    """One (colour, marker, line style) per estimator, the same in every figure: sdo black, bptt blue, the
    others cycling the remaining Okabe-Ito colours with distinct markers and line styles; floors grey."""
    out = {
        "sdo": dict(color="#000000", marker="o", linestyle="-"),
        "bptt": dict(color="#0072B2", marker="s", linestyle="-"),
    }
    others = sorted(n for n in set(names) if n not in FLOORS and n not in out)
    colours = [c for c in OKABE_ITO if c not in ("#000000", "#0072B2")]
    for i, n in enumerate(others):
        out[n] = dict(color=colours[i % 6], marker=MARKERS[2 + i % 10], linestyle=LINES[(i // 6) % 4])
    for n, ls in zip(FLOORS, ("--", ":")):
        out[n] = dict(color="#7f7f7f", marker="_", linestyle=ls)
    return out


def _num(g: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(g[col], errors="coerce") if col in g else pd.Series(np.nan, index=g.index)


def _suptitle(fig, model: str, g: pd.DataFrame, question: str) -> None:
    def vals(col):
        return ", ".join(sorted({str(v) for v in g.get(col, pd.Series(dtype=object)).dropna()})) or "unknown"

    commit = ", ".join(sorted({str(v)[:10] for v in g.get("git_commit", pd.Series(dtype=object)).dropna()}))
    kind = "trained" if model in TRAINED_MODELS else "random init"
    fig.suptitle(
        f"{question}: {model} ({kind}) · sampler {vals('sampler')} · {vals('device_name')} · "
        f"commit {commit or 'unknown'}",
        fontsize=8,
    )


def _xaxis(ax, steps) -> None:
    steps = sorted({int(n) for n in steps})
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(n) for n in steps])
    ax.minorticks_off()
    ax.set_xlabel("N (sampler steps)")
    ax.grid(True, which="major", alpha=0.3)


def _time(ax, e: pd.DataFrame, st: dict, name: str) -> None:
    y, lo, hi = _num(e, "time_median_s"), _num(e, "time_lo_s"), _num(e, "time_hi_s")
    err = np.vstack([(y - lo.fillna(y)).clip(lower=0), (hi.fillna(y) - y).clip(lower=0)])
    ax.errorbar(e.steps, y, yerr=err, label=name, markersize=4, capsize=2, **st)


def _memory(ax, e: pd.DataFrame, st: dict, name: str) -> None:
    """Live tensor bytes where measured (deterministic); else the RSS peak with the rounds' range as error
    bars, values below the RSS resolution drawn hollow at the resolution line."""
    if "live_peak_bytes" in e and _num(e, "live_peak_bytes").notna().all():
        ax.plot(e.steps, _num(e, "live_peak_bytes") / MIB, label=name, markersize=4, **st)
        ax.set_ylabel("live tensor MiB at the peak (deterministic)", fontsize=8)
        return
    y = _num(e, "peak_mem_bytes") / MIB
    rounds = [rounds_of(r, "peak_mem_rounds") or [] for r in e.to_dict("records")]
    lo = np.array([min(r) / MIB if r else v for r, v in zip(rounds, y)])
    below = y < RSS_RESOLUTION / MIB
    ok = ~below
    err = np.vstack([(y - lo).clip(lower=0), np.zeros(len(y))])
    ax.errorbar(e.steps[ok], y[ok], yerr=err[:, ok.to_numpy()], label=name, markersize=4, capsize=2, **st)
    if below.any():
        ax.plot(e.steps[below], [RSS_RESOLUTION / MIB] * int(below.sum()), linestyle="none",
                marker=st["marker"], color=st["color"], markerfacecolor="none", markersize=5)  # fmt: skip


def _line(ax, e: pd.DataFrame, st: dict, name: str, column: str, scale: float = 1.0) -> None:
    ax.plot(e.steps, _num(e, column) / scale, label=name, markersize=4, **st)


def _per_n(question: str, df: pd.DataFrame, model: str, st: dict, path: Path) -> Path | None:
    panels = list(df.groupby(["wrt", "sampler", "dtype", "device"], sort=True))
    rows = 2 if question == "accuracy_vs_N" else 1
    if question == "accuracy_vs_N":
        panels = [(k, g[~g.estimator.isin(FLOORS)]) for k, g in panels]
        panels = [(k, g) for k, g in panels if _num(g, "cos_to_exact").notna().any()]
    if not panels:
        return None
    fig, axes = plt.subplots(rows, len(panels), figsize=(4.4 * len(panels), 3.4 * rows + 0.8), squeeze=False)
    for j, (key, g) in enumerate(panels):
        for name, e in g.groupby("estimator", sort=True):
            e = e.sort_values("steps")
            if question == "time_vs_N":
                _time(axes[0, j], e, st[name], name)
            elif question == "peak_memory_vs_N":
                _memory(axes[0, j], e, st[name], name)
            elif question == "saved_bytes_vs_N":
                _line(axes[0, j], e, st[name], name, "saved_bytes", MIB)
            else:
                _line(axes[0, j], e, st[name], name, "cos_to_exact")
                _line(axes[1, j], e, st[name], name, "norm_ratio_to_exact")
        for i in range(rows):
            _xaxis(axes[i, j], g.steps)
        axes[0, j].set_title(f"wrt {key[0]} · {key[2]} · {key[3]}", fontsize=9)
        _labels(question, axes[:, j])
    _finish(fig, axes, model, df, question, path)
    return path


def _labels(question: str, col) -> None:
    label = {
        "time_vs_N": ("time per gradient (s), median, 95% CI", "log"),
        "peak_memory_vs_N": ("peak memory above baseline (MiB)", "log"),
        "saved_bytes_vs_N": ("saved-tensor MiB held at once", "log"),
        "accuracy_vs_N": ("cosine to exact gradient", "linear"),
    }[question]
    if not col[0].get_ylabel():
        col[0].set_ylabel(label[0], fontsize=8)
    col[0].set_yscale(label[1])
    if question == "peak_memory_vs_N" and not col[0].get_ylabel().startswith("live"):
        col[0].axhline(RSS_RESOLUTION / MIB, color="#7f7f7f", linewidth=0.6, linestyle=":")
    if question == "accuracy_vs_N":
        col[1].set_ylabel("norm ratio |ĝ| / |g|", fontsize=8)
        col[1].set_yscale("log")
        col[1].axhline(1.0, color="#7f7f7f", linewidth=0.6)


def _pareto(df: pd.DataFrame, model: str, st: dict, path: Path) -> Path | None:
    """Per wrt at its largest N: time (x) vs relative error (y), marker area ~ peak memory."""
    est = df[~df.estimator.isin(FLOORS)]
    panels = [(k, g) for k, g in est.groupby(["wrt", "sampler", "dtype", "device"], sort=True)
              if _num(g, "rel_err_to_exact").notna().any()]  # fmt: skip
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    for ax, (key, g) in zip(axes[0], panels):
        n = int(g.steps.max())
        h = g[g.steps == n]
        mem_col = "live_peak_bytes" if _num(h, "live_peak_bytes").notna().any() else "peak_mem_bytes"
        mem = _num(h, mem_col).fillna(0) / MIB
        size = 20 + 200 * (mem / max(float(mem.max()), 1e-9))
        for (_, r), s in zip(h.iterrows(), size):
            x, y = (
                pd.to_numeric(r["time_median_s"], errors="coerce"),
                pd.to_numeric(r["rel_err_to_exact"], errors="coerce"),
            )
            if pd.notna(x) and pd.notna(y) and y > 0:
                sty = st[r["estimator"]]
                ax.scatter(
                    [x], [y], s=s, marker=sty["marker"], color=sty["color"], alpha=0.8, label=r["estimator"]
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("time per gradient (s)")
        ax.set_ylabel("relative error to exact", fontsize=8)
        ax.set_title(f"wrt {key[0]} · N = {n} · marker area ~ peak memory", fontsize=8)
        ax.grid(True, alpha=0.3)
    _finish(fig, axes, model, df, "pareto", path)
    return path


def _finish(fig, axes, model, df, question, path) -> None:
    seen: dict = {}
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(n, h)
    ncol = min(len(seen), 6) or 1
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    _suptitle(fig, model, df, question)
    fig.tight_layout(rect=(0, 0.05 + 0.035 * (len(seen) // 6 + 1), 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def file_stem(model: str) -> str:
    """A model name or a local directory path as a file-name part ('/data/sd-1.5' -> 'data_sd-1.5')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(model)).strip("_") or "model"


def write_figures(df: pd.DataFrame, folder: Path) -> list[Path]:
    """Every question's figure per model under `folder` ({question}_{model}.png)."""
    folder.mkdir(parents=True, exist_ok=True)
    ok = df[df.status == "ok"]
    st = styles(list(df.estimator.unique()))
    made = []
    for model, g in ok.groupby("model", sort=True):
        for q in QUESTIONS:
            path = folder / f"{q}_{file_stem(model)}.png"
            made.append(_pareto(g, model, st, path) if q == "pareto" else _per_n(q, g, model, st, path))
    return [p for p in made if p is not None]
