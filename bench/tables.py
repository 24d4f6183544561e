"""Generated tables: benchmark.csv (every record), benchmark.md and benchmark.tex (booktabs), grouped by
model and wrt with ratios to BPTT; a non-ok case shows its status where its numbers would be."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .grid import FLOORS, TRAINED_MODELS
from .ratios import below_resolution, number, ratio
from .stats import Estimate, significant, with_interval

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
    "time_lo_s",
    "time_hi_s",
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
    "norm_ratio_to_exact",
]
INTEGER = ["steps", "peak_mem_bytes", "saved_bytes", "flops", "nfe_fwd_grad", "nfe_fwd_nograd", "nfe_bwd"]
GROUP = ["model", "sampler", "steps", "wrt", "dtype", "device"]
RATIO_OF = {
    "time_median_s": "time_x_bptt",
    "peak_mem_bytes": "mem_x_bptt",
    "live_peak_bytes": "live_x_bptt",
    "saved_bytes": "saved_x_bptt",
    "flops": "flops_x_bptt",
}
MIB = 2**20


def frame(records: list[dict]) -> pd.DataFrame:
    """One row per case with the required columns first and ratios to the group's BPTT row (with their
    intervals from paired rounds: *_lo, *_hi)."""
    df = pd.DataFrame(_with_ratios(records))
    for col in COLUMNS:
        if col not in df:
            df[col] = None
    df = df.drop(columns=[c for c in ("traceback",) if c in df])
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, (list, dict))).any():
            df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    for col in INTEGER:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra].sort_values(GROUP + ["estimator"], kind="stable").reset_index(drop=True)


def _with_ratios(records: list[dict]) -> list[dict]:
    rows = [dict(r) for r in records]
    bptt = {tuple(r.get(g) for g in GROUP): r for r in rows if r.get("estimator") == "bptt"}
    for r in rows:
        ref = bptt.get(tuple(r.get(g) for g in GROUP))
        for col, name in RATIO_OF.items():
            est = None if ref is None else ratio(r, [ref], col)
            r[name] = None if est is None else est.value
            r[f"{name}_lo"], r[f"{name}_hi"] = (None, None) if est is None else (est.lo, est.hi)
    return rows


_float = number


def write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False)


# --- readable tables ----------------------------------------------------------------------------------

HEADERS = [
    "N",
    "estimator",
    "status",
    "time (s) [95% CI]",
    "×BPTT time",
    "peak RSS (MiB)",
    "×BPTT",
    "live peak (MiB)",
    "saved held (MiB)",
    "GFLOP",
    "×BPTT",
    "NFE fwd/no-grad/bwd",
    "depth",
    "cos",
    "rel. err.",
    "‖ĝ‖/‖g‖",
    "own sampler: cos / ‖ĝ‖/‖g‖",
]
DASH = "–"


def _est(row: dict, value: str, lo: str, hi: str) -> Estimate | None:
    v = number(row.get(value))
    return None if v is None else Estimate(v, number(row.get(lo)), number(row.get(hi)), 0)


def _ratio_text(row: dict, name: str, digits: int = 2) -> str:
    est = _est(row, name, f"{name}_lo", f"{name}_hi")
    return with_interval(est, digits, "×") if est else DASH


def _mib(row: dict, column: str) -> str:
    v = number(row.get(column))
    if v is None:
        return DASH
    if below_resolution(row, column):
        return "< res"
    return significant(v / MIB, 3)


def _nfe(row) -> str:
    vals = [number(row.get(k)) for k in ("nfe_fwd_grad", "nfe_fwd_nograd", "nfe_bwd")]
    return "/".join(DASH if v is None else str(int(v)) for v in vals)


def _num(row: dict, column: str, digits: int = 3, scale: float = 1.0) -> str:
    v = number(row.get(column))
    return DASH if v is None else significant(v / scale, digits)


def _coupled(row: dict) -> str:
    if number(row.get("cos_to_coupled")) is None:
        return DASH
    return f"{_num(row, 'cos_to_coupled')} / {_num(row, 'norm_ratio_to_coupled')}"


def cells(row: dict) -> list[str]:
    """One table row; a non-ok case shows its status in place of every measured number."""
    head = [str(int(row["steps"])), str(row["estimator"]), str(row["status"])]
    if row["status"] != "ok":
        return head + [str(row["status"])] + [DASH] * (len(HEADERS) - 4)
    floor = row["estimator"] in FLOORS
    time = with_interval(_est(row, "time_median_s", "time_lo_s", "time_hi_s"), 3)
    return head + [
        time,
        _ratio_text(row, "time_x_bptt"),
        _mib(row, "peak_mem_bytes"),
        _ratio_text(row, "mem_x_bptt"),
        _mib(row, "live_peak_bytes"),
        _mib(row, "saved_bytes"),
        _num(row, "flops", 3, 1e9),
        _ratio_text(row, "flops_x_bptt", 3),
        _nfe(row),
        _num(row, "pred_depth"),
        DASH if floor else _num(row, "cos_to_exact", 4),
        DASH if floor else _num(row, "rel_err_to_exact"),
        DASH if floor else _num(row, "norm_ratio_to_exact"),
        _coupled(row),
    ]


def _sort_key(row) -> tuple:
    rank = {"floor-sample": 0, "floor-step": 1, "bptt": 2, "sdo": 3, "sdo-floor": 4}
    return (int(row["steps"]), rank.get(row["estimator"], 5), row["estimator"])


def groups(df: pd.DataFrame):
    """(title, rows) per (model, sampler, wrt, dtype, device), rows ordered by N then estimator."""
    keys = ["model", "sampler", "wrt", "dtype", "device"]
    for values, g in df.groupby(keys, sort=True):
        title = dict(zip(keys, values))
        yield title, sorted(g.to_dict("records"), key=_sort_key)


def _title(t: dict) -> str:
    kind = "trained" if t["model"] in TRAINED_MODELS else "random init"
    return f"{t['model']} ({kind}) · {t['sampler']} · wrt {t['wrt']} · {t['dtype']} · {t['device']}"


def markdown(df: pd.DataFrame) -> str:
    """Markdown tables, one per group: trained models first, then the random-init ones."""
    out = []
    for trained in (True, False):
        for title, rows in groups(df):
            if (title["model"] in TRAINED_MODELS) != trained:
                continue
            out += [
                f"### {_title(title)}",
                "",
                "| " + " | ".join(HEADERS) + " |",
                "|" + "---|" * len(HEADERS),
            ]
            out += ["| " + " | ".join(cells(r)) + " |" for r in rows]
            out.append("")
    return "\n".join(out)
