"""Figures: time, peak memory, saved bytes and cosine-to-exact vs N, one line per estimator, one panel
per (model, wrt); log scales for costs. Non-ok cases are left out of the lines (the tables show them)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

METRICS = {
    "time": ("time_median_s", "time per gradient (s)", "log"),
    "peak_memory": ("peak_mem_bytes", "peak memory above baseline (bytes)", "log"),
    "saved_bytes": ("saved_bytes", "saved-tensor bytes held at once", "log"),
    "cosine": ("cos_to_exact", "cosine to exact gradient", "linear"),
}


def panels(df: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """(model, sampler, wrt, dtype, device) groups with ok rows."""
    ok = df[df.status == "ok"]
    return list(ok.groupby(["model", "sampler", "wrt", "dtype", "device"], sort=True))


def plot_metric(df: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """One PNG for `metric` (see METRICS); None when no panel has data for it."""
    column, label, scale = METRICS[metric]
    groups = [(k, g) for k, g in panels(df) if pd.to_numeric(g[column], errors="coerce").notna().any()]
    if not groups:
        return None
    cols = min(len(groups), 3)
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    styles = _style(list(df.estimator.unique()))
    for ax, (key, g) in zip(axes.flat, groups):
        _panel(ax, g, column, scale, styles)
        ax.set_title(f"{key[0]} · wrt {key[2]}", fontsize=9)
        ax.set_xlabel("N (sampler steps)")
        ax.set_ylabel(label, fontsize=8)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    handles, names = _legend(axes)
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1 + 0.03 * (len(names) // 6), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


MARKERS = "osD^vP*X<>"


def _style(names: list[str]) -> dict[str, dict]:
    """One colour and marker per estimator, the same in every panel and figure."""
    cmap = plt.get_cmap("tab20")
    return {
        n: dict(color=cmap(i % 20), marker=MARKERS[i % len(MARKERS)]) for i, n in enumerate(sorted(names))
    }


def _panel(ax, g: pd.DataFrame, column: str, scale: str, styles: dict) -> None:
    for name, e in g.groupby("estimator", sort=True):
        e = e.assign(v=pd.to_numeric(e[column], errors="coerce")).dropna(subset=["v"]).sort_values("steps")
        if scale == "log":
            e = e[e.v > 0]
        if len(e):
            line = "--" if name.startswith("floor") else "-"
            ax.plot(e.steps, e.v, line, markersize=4, label=name, **styles[name])
    steps = sorted({int(n) for n in g.steps})
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(n) for n in steps])
    ax.minorticks_off()
    ax.set_yscale(scale)
    ax.grid(True, which="major", alpha=0.3)


def _legend(axes):
    seen: dict = {}
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(n, h)
    return list(seen.values()), list(seen)


def write_figures(df: pd.DataFrame, folder: Path) -> list[Path]:
    """Every metric's figure under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [plot_metric(df, m, folder / f"{m}_vs_N.png") for m in METRICS]
    return [p for p in made if p is not None]
