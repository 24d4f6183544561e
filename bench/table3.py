"""The paper's Table 3 side by side: SDO against each public-code preset (adjointdpm, doodl) and each of
the suite's own configurations, time and peak-memory ratios with 95 % intervals from paired rounds."""

from __future__ import annotations

import pandas as pd

from .grid import FLOORS, PRESETS, TABLE3_ESTIMATORS
from .latex import provenance, tex
from .ratios import ratio
from .stats import with_interval
from .tables import DASH, _est, _mib

HEADERS = ["estimator", "configuration", "time (s)", "SDO / time", "peak mem (MiB)", "SDO / peak mem", "NFE"]
ORIGIN = {
    "adjointdpm": "AdjointDPM code (explicit Adams, rtol 0.05, atol 0.0078)",
    "doodl": "DOODL code (EDICT p = 0.93, invert + recompute backward)",
    "sdo-floor": "suite (SDO, memory='floor': step N recomputed in the backward)",
    "adjoint": "suite (Euler on the sampler grid)",
    "reversible": "suite (EDICT p = 0.93, inversion reused)",
    "bptt": "suite (full graph)",
    "checkpoint": "suite (sqrt(N) checkpoints)",
}


def groups(df: pd.DataFrame):
    """(title, SDO row, other rows) per wrt-latent group that has SDO and at least one preset."""
    lat = df[(df.wrt == "latent") & ~df.estimator.isin(FLOORS)]
    for key, g in lat.groupby(["model", "sampler", "steps", "dtype", "device"], sort=True):
        if "sdo" not in set(g.estimator) or not set(PRESETS) & set(g.estimator):
            continue
        sdo = g[g.estimator == "sdo"].iloc[0].to_dict()
        order = {n: i for i, n in enumerate(TABLE3_ESTIMATORS)}
        others = sorted((r for r in g.to_dict("records") if r["estimator"] != "sdo"),
                        key=lambda r: (order.get(r["estimator"], 99), r["estimator"]))  # fmt: skip
        yield f"{key[0]} · {key[1]} · N = {key[2]} · wrt latent · {key[3]} · {key[4]}", sdo, others


def _mem_col(r: dict) -> str:
    return "live_peak_bytes" if pd.notna(r.get("live_peak_bytes", None)) else "peak_mem_bytes"


def cells(sdo: dict, r: dict) -> list[str]:
    """One row: the estimator's own time and memory and SDO's ratios to them (SDO / estimator)."""
    head = [str(r["estimator"]), ORIGIN.get(r["estimator"], "suite")]
    if r["status"] != "ok":
        return head + [str(r["status"])] + [DASH] * 4
    nfe = "/".join(str(r.get(k)) for k in ("nfe_fwd_grad", "nfe_fwd_nograd", "nfe_fwd_recompute", "nfe_bwd"))
    col = _mem_col(r)
    return head + [
        with_interval(_est(r, "time_median_s", "time_lo_s", "time_hi_s"), 2),
        with_interval(ratio(sdo, [r], "time_median_s"), 2, "×"),
        _mib(r, col),
        with_interval(ratio(sdo, [r], col), 2, "×"),
        nfe,
    ]


def markdown(df: pd.DataFrame) -> str:
    """Markdown: one table per group; '' when no group has a preset."""
    out = []
    for title, sdo, others in groups(df):
        sdo_row = cells(sdo, sdo)
        out += [f"### {title}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(row) + " |" for row in [sdo_row, *(cells(sdo, r) for r in others)]]
        out.append("")
    return "\n".join(out)


CAPTION = (
    "Table 3 analogue: one gradient of the initial latent on {title}. SDO / time = SDO's time divided by the "
    "estimator's on the same problem, the median of per-round ratios with a 95\\% bootstrap interval from "
    "paired (interleaved) rounds; SDO / peak mem likewise for the peak memory (the deterministic peak of live "
    "tensor bytes where recorded: no interval). adjointdpm and doodl are "
    "configured as the public AdjointDPM and DOODL code ships them; adjoint and reversible are the suite's "
    "configurations. NFE = forwards with a graph / without / recomputed in the backward / VJPs. {prov}"
)


def latex(df: pd.DataFrame) -> str:
    """LaTeX (booktabs) per group; '' when no group has a preset."""
    out = []
    for title, sdo, others in groups(df):
        rows = [cells(sdo, sdo), *(cells(sdo, r) for r in others)]
        label = "tab:table3-" + title.split(" · ")[0]
        prov = tex(provenance(df[df.model == sdo["model"]]))
        out += [
            r"\begin{table}[t]",
            r"\centering",
            r"\caption{" + CAPTION.format(title=tex(title), prov=prov) + "}",
        ]
        out += [r"\label{" + label + "}", r"\begin{tabular}{llrrrrr}", r"\toprule"]
        out += [" & ".join(tex(h) for h in HEADERS) + r" \\", r"\midrule"]
        out += [" & ".join(tex(c) for c in row) + r" \\" for row in rows]
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)
