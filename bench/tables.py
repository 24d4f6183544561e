"""Generated tables: benchmark.csv (every record), benchmark.md and benchmark.tex (booktabs), grouped by
model and wrt with ratios to BPTT; a non-ok case shows its status where its numbers would be."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .grid import FLOORS

COLUMNS = [
    "estimator",
    "model",
    "sampler",
    "steps",
    "wrt",
    "dtype",
    "device",
    "status",
    "time_median_s",
    "time_min_s",
    "time_max_s",
    "peak_mem_bytes",
    "saved_bytes",
    "flops",
    "nfe_fwd_grad",
    "nfe_fwd_nograd",
    "nfe_bwd",
    "loss",
    "grad_norm",
    "cos_to_exact",
    "rel_err_to_exact",
]
INTEGER = ["steps", "peak_mem_bytes", "saved_bytes", "flops", "nfe_fwd_grad", "nfe_fwd_nograd", "nfe_bwd"]
GROUP = ["model", "sampler", "steps", "wrt", "dtype", "device"]
RATIO_OF = {
    "time_median_s": "time_x_bptt",
    "peak_mem_bytes": "mem_x_bptt",
    "saved_bytes": "saved_x_bptt",
    "flops": "flops_x_bptt",
}
MIB = 2**20


def frame(records: list[dict]) -> pd.DataFrame:
    """One row per case with the required columns first and ratios to the group's BPTT row."""
    df = pd.DataFrame(records)
    for col in COLUMNS:
        if col not in df:
            df[col] = None
    df = df.drop(columns=[c for c in ("traceback",) if c in df])
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, (list, dict))).any():
            df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    for col in INTEGER:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    df = _with_ratios(df)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra].sort_values(GROUP + ["estimator"], kind="stable").reset_index(drop=True)


def _with_ratios(df: pd.DataFrame) -> pd.DataFrame:
    rows = df.to_dict("records")
    bptt = {tuple(r[g] for g in GROUP): r for r in rows if r["estimator"] == "bptt" and r["status"] == "ok"}
    for col, name in RATIO_OF.items():
        ratios = []
        for r in rows:
            ref = bptt.get(tuple(r[g] for g in GROUP), {})
            num, den = _float(r.get(col)), _float(ref.get(col))
            ok = r["status"] == "ok" and num is not None and den
            ratios.append(num / den if ok else None)
        df[name] = ratios
    return df


def _float(v) -> float | None:
    """v as a finite float, else None."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False)


# --- readable tables ----------------------------------------------------------------------------------

HEADERS = [
    "N",
    "estimator",
    "status",
    "time (s)",
    "×BPTT",
    "peak mem (MiB)",
    "×BPTT",
    "saved held (MiB)",
    "×BPTT",
    "GFLOP",
    "×BPTT",
    "NFE fwd/no-grad/bwd",
    "cos to exact",
    "rel. err.",
]


def _fmt(v, kind: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if kind == "ratio":
        return f"{v:.2f}×"
    if kind == "mib":
        return f"{v / MIB:.3g}"
    if kind == "gflop":
        return f"{v / 1e9:.3g}"
    if kind == "int":
        return str(int(v))
    return f"{v:.3g}" if kind == "g" else f"{v:.4f}"


def _nfe(row) -> str:
    vals = [row.get(k) for k in ("nfe_fwd_grad", "nfe_fwd_nograd", "nfe_bwd")]
    return "/".join(_fmt(_float(v), "int") for v in vals)


def cells(row: dict) -> list[str]:
    """One table row; a non-ok case shows its status in place of every measured number."""
    head = [str(int(row["steps"])), str(row["estimator"]), str(row["status"])]
    if row["status"] != "ok":
        return head + [str(row["status"])] + ["–"] * (len(HEADERS) - 4)
    floor = row["estimator"] in FLOORS
    c = {k: _float(row.get(k)) for k in row}
    return head + [
        _fmt(c["time_median_s"], "g"),
        _fmt(c.get("time_x_bptt"), "ratio"),
        _fmt(c["peak_mem_bytes"], "mib"),
        _fmt(c.get("mem_x_bptt"), "ratio"),
        _fmt(c["saved_bytes"], "mib"),
        _fmt(c.get("saved_x_bptt"), "ratio"),
        _fmt(c["flops"], "gflop"),
        _fmt(c.get("flops_x_bptt"), "ratio"),
        _nfe(row),
        "–" if floor else _fmt(c["cos_to_exact"], "f"),
        "–" if floor else _fmt(c["rel_err_to_exact"], "g"),
    ]


def _sort_key(row) -> tuple:
    rank = {"floor-sample": 0, "floor-step": 1, "bptt": 2}
    return (int(row["steps"]), rank.get(row["estimator"], 3), row["estimator"])


def groups(df: pd.DataFrame):
    """(title, rows) per (model, sampler, wrt, dtype, device), rows ordered by N then estimator."""
    keys = ["model", "sampler", "wrt", "dtype", "device"]
    for values, g in df.groupby(keys, sort=True):
        title = dict(zip(keys, values))
        yield title, sorted(g.to_dict("records"), key=_sort_key)


def _title(t: dict) -> str:
    return f"{t['model']} · {t['sampler']} · wrt {t['wrt']} · {t['dtype']} · {t['device']}"


def markdown(df: pd.DataFrame) -> str:
    """Markdown tables, one per group."""
    out = []
    for title, rows in groups(df):
        out += [f"### {_title(title)}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(cells(r)) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    return s.replace("×", r"$\times$").replace("–", "--").replace("·", "/")


def latex(df: pd.DataFrame) -> str:
    """LaTeX tables (booktabs), one table environment per group."""
    out = ["% generated by `python -m bench` -- do not edit; needs \\usepackage{booktabs}"]
    for title, rows in groups(df):
        out += [
            r"\begin{table}[t]",
            r"\centering\small",
            r"\caption{" + _tex(_title(title)) + "}",
            r"\begin{tabular}{rll" + "r" * (len(HEADERS) - 3) + "}",
            r"\toprule",
            " & ".join(_tex(h) for h in HEADERS) + r" \\",
            r"\midrule",
        ]
        prev = None
        for r in rows:
            if prev is not None and r["steps"] != prev:
                out.append(r"\midrule")
            out.append(" & ".join(_tex(c) for c in cells(r)) + r" \\")
            prev = r["steps"]
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)
