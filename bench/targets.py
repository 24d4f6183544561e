"""The cost targets, evaluated from the measured records (never turned into timed tests).

Per latent group (model, sampler, dtype, device) at its largest N with an SDO row:
SDO time <= 1.05 x (floor-sample + floor-step); SDO time <= 0.10 x adjoint and x reversible;
SDO peak memory <= 1.05 x floor-step peak; BPTT saved bytes grow linearly in N; SDO's stay flat.

Time and memory ratios come with 95 % intervals from paired rounds (bench.ratios); a target holds when the
whole interval lies below the bound, misses when it lies above, and is inconclusive otherwise; a group
measured while the 1-minute load exceeded its thread count + 0.5 is flagged and gets no verdict.
Saved bytes are deterministic: their targets hold or miss outright.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdo.measure import LOAD_MARGIN, loaded

from .ratios import MIB, number, ratio
from .stats import Estimate, verdict, with_interval


@dataclass
class Target:
    """One target: what it says, the measured value (with its interval), the bound and the verdict."""

    group: str
    claim: str
    measured: str
    verdict: str  # holds / misses / inconclusive / flagged / not measured
    primary: bool = False  # the headline group (ddpm-cifar10, DDIM, N = 50, wrt latent, CPU)

    @property
    def holds(self) -> bool | None:
        """True / False for holds / misses; None for every other verdict."""
        return {"holds": True, "misses": False}.get(self.verdict)


def _row(rows: pd.DataFrame, estimator: str) -> dict | None:
    r = rows[(rows.estimator == estimator) & (rows.status == "ok")]
    return None if r.empty else r.iloc[0].to_dict()


def flagged(rows: pd.DataFrame) -> bool:
    """True when any member of the group was measured under a load above its threads + LOAD_MARGIN."""
    for r in rows.to_dict("records"):
        load = number(r.get("load_max_1m"))
        threads = number(r.get("threads"))
        if loaded(load, None if threads is None else int(threads)):
            return True
    return False


def _ratio_target(name, claim, num, dens, column, bound, flag) -> Target:
    if num is None or any(d is None for d in dens):
        return Target(name, claim, "missing rows", "not measured")
    est = ratio(num, dens, column)
    if est is None:
        return Target(name, claim, "below the measurement's resolution or missing", "not measured")
    text = with_interval(est, 3)
    if column in DETERMINISTIC:  # identical run to run: no interval needed, the load does not matter
        return Target(name, claim, text + " (deterministic live bytes)", _outright(est.value <= bound))
    if est.rounds <= 1 or not est.has_interval:
        text += " (one round: no interval)"
    return Target(name, claim, text, verdict(est, bound, flag))


def at_n(g: pd.DataFrame, name: str) -> list[Target]:
    """Time and memory targets at one N."""
    flag = flagged(g)
    sdo, fs, fst = _row(g, "sdo"), _row(g, "floor-sample"), _row(g, "floor-step")
    t = "time_median_s"
    out = [
        _ratio_target(name, "SDO time <= 1.05 x (floor-sample + floor-step)", sdo, [fs, fst], t, 1.05, flag)
    ]
    for other in ("adjoint", "reversible"):
        out.append(_ratio_target(name, f"SDO time <= 0.10 x {other}", sdo, [_row(g, other)], t, 0.10, flag))
    for label, row in (("SDO", sdo), ("SDO (memory=floor)", _row(g, "sdo-floor"))):
        if row is None and label != "SDO":
            continue
        mem = (
            "live_peak_bytes" if row and number(row.get("live_peak_bytes")) is not None else "peak_mem_bytes"
        )
        claim = f"{label} peak memory <= 1.05 x floor-step peak"
        out.append(_ratio_target(name, claim, row, [fst], mem, 1.05, flag))
    return out


def growth(g: pd.DataFrame, name: str) -> list[Target]:
    """Saved bytes vs N: BPTT linear (R^2 >= 0.999 with >= 3 N, slope > 0), SDO flat (max/min <= 1.05)."""
    out = []
    for est in ("bptt", "sdo"):
        r = g[(g.estimator == est) & (g.status == "ok")]
        pts = sorted(zip(r.steps.astype(int), pd.to_numeric(r.saved_bytes, errors="coerce")))
        pts = [(n, b) for n, b in pts if not pd.isna(b)]
        if len({n for n, _ in pts}) < 2:
            claim = "BPTT saved bytes grow linearly in N" if est == "bptt" else "SDO saved bytes flat in N"
            out.append(Target(name, claim, "fewer than 2 values of N", "not measured"))
            continue
        out.append(_linear(name, pts) if est == "bptt" else _flat(name, pts))
    return out


def _outright(ok: bool) -> str:
    return "holds" if ok else "misses"


def _linear(name: str, pts) -> Target:
    n, b = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
    slope, icpt = np.polyfit(n, b, 1)
    resid = b - (slope * n + icpt)
    r2 = 1 - float(resid @ resid) / max(float(((b - b.mean()) ** 2).sum()), 1e-300)
    ns = ", ".join(str(int(v)) for v in n)
    text = f"{slope / MIB:.3g} MiB per step (N = {ns}), R^2 = {r2:.5f} (deterministic)"
    holds = slope > 0 and (r2 >= 0.999 if len(pts) >= 3 else True)
    if len(pts) < 3:
        text += " (2 points: linearity itself not testable)"
    return Target(name, "BPTT saved bytes grow linearly in N", text, _outright(bool(holds)))


def _flat(name: str, pts) -> Target:
    vals = [b for _, b in pts]
    r = max(vals) / min(vals) if min(vals) > 0 else math.inf
    ns = ", ".join(str(n) for n, _ in pts)
    text = (
        f"max/min = {r:.3f} over N = {ns} ({min(vals) / MIB:.3g}..{max(vals) / MIB:.3g} MiB, deterministic)"
    )
    return Target(name, "SDO saved bytes flat in N (max/min <= 1.05)", text, _outright(r <= 1.05))


DETERMINISTIC = ("live_peak_bytes", "saved_bytes")
HEADLINE = ("ddpm-cifar10", "ddim", 50, "cpu")  # the targets are stated for this group


def evaluate(df: pd.DataFrame) -> list[Target]:
    """Targets for every wrt=latent group that has an SDO row, at that group's largest N; the headline
    group first (marked primary, or one 'not measured' line when it is absent)."""
    out: list[Target] = []
    lat = df[df.wrt == "latent"]
    for key, g in lat.groupby(["model", "sampler", "dtype", "device"], sort=True):
        with_sdo = g[g.estimator == "sdo"]
        if with_sdo.empty:
            continue
        n = int(with_sdo.steps.max())
        name = f"{key[0]} / {key[1]} / N = {n} / wrt latent / {key[2]} / {key[3]}"
        found = at_n(g[g.steps == n], name) + growth(g, f"{key[0]} / {key[1]} / wrt latent / {key[3]}")
        for t in found:
            t.primary = (key[0], key[1], n, str(key[3]).split(":")[0]) == HEADLINE
        out += found
    if not any(t.primary for t in out):
        out.append(
            Target(
                "ddpm-cifar10 / ddim / N = 50 / wrt latent / cpu",
                "the targets",
                "this group was not measured",
                "not measured",
                primary=True,
            )
        )
    return sorted(out, key=lambda t: not t.primary)


RULE = (
    "Time and memory ratios: median of the per-round ratios with a 95 % bootstrap interval from paired "
    "(interleaved) rounds. **holds**: the whole interval lies below the bound; **misses**: the whole "
    "interval lies above it; **inconclusive**: the interval contains the bound (or one round gave no "
    f"interval); **flagged**: the group was measured while the 1-minute load exceeded its threads + "
    f"{LOAD_MARGIN}, so no verdict. Saved-bytes targets are deterministic."
)


def markdown(targets: list[Target]) -> str:
    """Verdict tables: the headline group, then the same comparisons on the other groups."""
    parts = [RULE, ""]
    for title, rows in (
        ("The targets (ddpm-cifar10, DDIM, N = 50, wrt latent, CPU)", [t for t in targets if t.primary]),
        ("The same comparisons on the other groups (for information)", [t for t in targets if not t.primary]),
    ):
        if rows:
            parts += [
                f"### {title}",
                "",
                "| group | target | measured [95% CI] | verdict |",
                "|---|---|---|---|",
            ]
            parts += [f"| {t.group} | {t.claim} | {t.measured} | **{t.verdict}** |" for t in rows]
            parts.append("")
    return "\n".join(parts) + "\n"


__all__ = ["Estimate", "Target", "evaluate", "markdown"]
