"""LaTeX a paper can paste: per model one cost table and one accuracy table (booktabs, at most 8 columns,
a label, a caption that defines every ratio and names hardware, threads and commit)."""

from __future__ import annotations

import pandas as pd

from .grid import FLOORS, TRAINED_MODELS
from .stats import with_interval
from .tables import DASH, _est, _mib, _nfe, _num, _ratio_text, _sort_key

COST = ["$N$", "estimator", "time (s)", r"$\times$BPTT", "peak mem.\\ (MiB)", r"$\times$BPTT", "NFE"]
ACCURACY = [
    "$N$",
    "estimator",
    "cos",
    "rel.\\ err.",
    r"$\|\hat g\|/\|g\|$",
    "cos (own)",
    r"$\|\hat g\|/\|g\|$ (own)",
]


def tex(s: str) -> str:
    """Escape text for LaTeX (the table cells are plain text)."""
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    s = s.replace("×", r"$\times$").replace("–", "--").replace("< res", r"$<$\,res").replace("·", "/")
    return s.replace("‖", r"$\|$")


def _values(df: pd.DataFrame, col: str) -> str:
    vals = sorted({str(v) for v in df.get(col, pd.Series(dtype=object)).dropna()})
    return "; ".join(vals) or "unknown"


def provenance(df: pd.DataFrame) -> str:
    """Hardware, threads and commit, for a caption."""
    threads = sorted(
        {int(v) for v in pd.to_numeric(df.get("threads", pd.Series()), errors="coerce").dropna()}
    )
    commits = sorted({str(v)[:10] for v in df.get("git_commit", pd.Series(dtype=object)).dropna()})
    return (
        f"Measured on {_values(df, 'device_name')}, {', '.join(map(str, threads)) or 'unknown'} intra-op "
        f"thread(s), commit {', '.join(commits) or 'unknown'}."
    )


def _kind(model: str) -> str:
    return "trained" if model in TRAINED_MODELS else "random initialisation"


def _table(
    label: str, caption: str, headers: list[str], sections: list[tuple[str, list[list[str]]]]
) -> list[str]:
    cols = len(headers)
    out = [r"\begin{table}[t]", r"\centering", r"\caption{" + caption + "}", r"\label{" + label + "}"]
    out += [r"\begin{tabular}{rl" + "r" * (cols - 2) + "}", r"\toprule", " & ".join(headers) + r" \\"]
    for title, rows in sections:
        out += [r"\midrule", r"\multicolumn{" + str(cols) + "}{l}{" + tex(title) + r"} \\", r"\midrule"]
        out += [" & ".join(tex(c) for c in row) + r" \\" for row in rows]
    return out + [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]


def _cost_row(r: dict) -> list[str]:
    head = [str(int(r["steps"])), str(r["estimator"])]
    if r["status"] != "ok":
        return head + [str(r["status"])] + [DASH] * 4
    time = with_interval(_est(r, "time_median_s", "time_lo_s", "time_hi_s"), 2)
    mem_col = "live_peak_bytes" if r.get("live_peak_bytes") is not None else "peak_mem_bytes"
    mem_ratio = "live_x_bptt" if mem_col == "live_peak_bytes" else "mem_x_bptt"
    return head + [time, _ratio_text(r, "time_x_bptt"), _mib(r, mem_col), _ratio_text(r, mem_ratio), _nfe(r)]


def _accuracy_row(r: dict) -> list[str]:
    head = [str(int(r["steps"])), str(r["estimator"])]
    if r["status"] != "ok":
        return head + [str(r["status"])] + [DASH] * 4
    return head + [
        _num(r, "cos_to_exact", 3),
        _num(r, "rel_err_to_exact", 2),
        _num(r, "norm_ratio_to_exact", 2),
        _num(r, "cos_to_coupled", 3),
        _num(r, "norm_ratio_to_coupled", 2),
    ]


def _sections(g: pd.DataFrame, row, keep) -> list[tuple[str, list[list[str]]]]:
    out = []
    for (sampler, wrt, dtype, device), h in g.groupby(["sampler", "wrt", "dtype", "device"], sort=True):
        rows = [row(r) for r in sorted(h.to_dict("records"), key=_sort_key) if keep(r)]
        if rows:
            out.append((f"{sampler}, wrt {wrt}, {dtype}, {device}", rows))
    return out


COST_CAPTION = (
    "Cost of one gradient on {model} ({kind}). Time: median of the timed rounds with its 95\\% bootstrap "
    "interval in brackets. $\\times$BPTT = the estimator's time (or peak memory) divided by BPTT's on the "
    "same problem (same model, sampler, $N$, wrt): the median of the per-round ratios, with a 95\\% "
    "bootstrap interval from paired rounds (the rounds of one problem were interleaved); a deterministic "
    "memory figure has no interval. Peak memory: {mem}; "
    "$<$\\,res = below the measurement's resolution. NFE = network forwards with a graph / without / VJPs. "
    "{prov}"
)
ACCURACY_CAPTION = (
    "Accuracy of one gradient on {model} ({kind}) against the exact gradient of the same problem, BPTT "
    "through the same DDIM sampler ({refs}). cos = cosine similarity; rel.\\ err.\\ = "
    "$\\|\\hat g - g\\|/\\|g\\|$; $\\|\\hat g\\|/\\|g\\|$ = norm ratio (cosine alone hides magnitude "
    "errors). (own): estimators that differentiate their own coupled EDICT sampler (reversible, doodl) "
    "compared with BPTT of that coupled sampler. {prov}"
)


def _mem_method(g: pd.DataFrame) -> str:
    if "live_peak_bytes" in g and g.live_peak_bytes.notna().any():
        return "deterministic peak of live tensor bytes over one call"
    return "peak resident set size above the baseline measured before each call, the largest over the rounds"


def latex(df: pd.DataFrame) -> str:
    """Per model a cost table and, where there are estimates, an accuracy table."""
    out = ["% generated by `python -m bench` -- do not edit; needs \\usepackage{booktabs}", ""]
    for model, g in df.groupby("model", sort=True):
        if not (g.status == "ok").any():
            continue  # nothing measured (e.g. trained weights missing): the README lists why
        prov, kind, slug = tex(provenance(g)), _kind(model), str(model).replace("_", "-")
        cap = COST_CAPTION.format(model=tex(model), kind=kind, mem=_mem_method(g), prov=prov)
        out += _table(f"tab:cost-{slug}", cap, COST, _sections(g, _cost_row, lambda r: True))
        acc = _sections(g, _accuracy_row, lambda r: r["estimator"] not in FLOORS)
        if acc:
            refs = tex(_values(g[~g.estimator.isin(FLOORS)], "exact_ref"))
            cap = ACCURACY_CAPTION.format(model=tex(model), kind=kind, refs=refs, prov=prov)
            out += _table(f"tab:accuracy-{slug}", cap, ACCURACY, acc)
    return "\n".join(out)
