"""The issue's cost targets, evaluated from the measured records (never turned into timed tests).

Per latent group (model, sampler, dtype, device) at its largest N with an SDO row:
SDO time <= 1.05 x (floor-sample + floor-step); SDO time <= 0.10 x adjoint and x reversible;
SDO peak memory <= 1.05 x floor-step peak; BPTT saved bytes grow linearly in N; SDO's stay flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIB = 2**20


@dataclass
class Target:
    """One target: what it says, the measured value, the bound, and whether it holds (None: not measured)."""

    group: str
    claim: str
    measured: str
    holds: bool | None
    primary: bool = False  # one of the issue's own targets (ddpm-cifar10, DDIM, N = 50, wrt latent, CPU)

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "MISSES", None: "not measured"}[self.holds]


def _value(rows: pd.DataFrame, estimator: str, column: str) -> float | None:
    r = rows[(rows.estimator == estimator) & (rows.status == "ok")]
    if r.empty:
        return None
    v = pd.to_numeric(r[column], errors="coerce").iloc[0]
    return None if pd.isna(v) else float(v)


def _ratio_target(group, claim, num, den, bound, unit="") -> Target:
    if num is None or den is None or den <= 0:
        return Target(group, claim, "missing rows", None)
    r = num / den
    return Target(group, claim, f"{num:.4g}{unit} / {den:.4g}{unit} = {r:.3f}", r <= bound)


def at_n(g: pd.DataFrame, name: str) -> list[Target]:
    """Time and memory targets at one N."""
    sdo_t = _value(g, "sdo", "time_median_s")
    fs, fst = _value(g, "floor-sample", "time_median_s"), _value(g, "floor-step", "time_median_s")
    floor = None if fs is None or fst is None else fs + fst
    out = [_ratio_target(name, "SDO time <= 1.05 x (floor-sample + floor-step)", sdo_t, floor, 1.05, " s")]
    for other in ("adjoint", "reversible"):
        out.append(
            _ratio_target(
                name, f"SDO time <= 0.10 x {other}", sdo_t, _value(g, other, "time_median_s"), 0.10, " s"
            )
        )
    sdo_m, step_m = _value(g, "sdo", "peak_mem_bytes"), _value(g, "floor-step", "peak_mem_bytes")
    mib = [None if v is None else v / MIB for v in (sdo_m, step_m)]
    out.append(_ratio_target(name, "SDO peak memory <= 1.05 x floor-step peak", *mib, 1.05, " MiB"))
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
            out.append(Target(name, claim, "fewer than 2 values of N", None))
            continue
        out.append(_linear(name, pts) if est == "bptt" else _flat(name, pts))
    return out


def _linear(name: str, pts) -> Target:
    n, b = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
    slope, icpt = np.polyfit(n, b, 1)
    resid = b - (slope * n + icpt)
    r2 = 1 - float(resid @ resid) / max(float(((b - b.mean()) ** 2).sum()), 1e-300)
    ns = ", ".join(str(int(v)) for v in n)
    text = f"{slope / MIB:.3g} MiB per step (N = {ns}), R^2 = {r2:.5f}"
    holds = slope > 0 and (r2 >= 0.999 if len(pts) >= 3 else True)
    if len(pts) < 3:
        text += " (2 points: linearity itself not testable)"
    return Target(name, "BPTT saved bytes grow linearly in N", text, bool(holds))


def _flat(name: str, pts) -> Target:
    vals = [b for _, b in pts]
    ratio = max(vals) / min(vals) if min(vals) > 0 else math.inf
    ns = ", ".join(str(n) for n, _ in pts)
    text = f"max/min = {ratio:.3f} over N = {ns} ({min(vals) / MIB:.3g}..{max(vals) / MIB:.3g} MiB)"
    return Target(name, "SDO saved bytes flat in N (max/min <= 1.05)", text, ratio <= 1.05)


ISSUE = ("ddpm-cifar10", "ddim", 50, "cpu")  # the issue states its targets for this group


def evaluate(df: pd.DataFrame) -> list[Target]:
    """Targets for every wrt=latent group that has an SDO row, at that group's largest N; the issue's own
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
            t.primary = (key[0], key[1], n, torch_device_type(key[3])) == ISSUE
        out += found
    if not any(t.primary for t in out):
        out.append(
            Target(
                "ddpm-cifar10 / ddim / N = 50 / wrt latent / cpu",
                "the issue's targets",
                "this group was not measured",
                None,
                primary=True,
            )
        )
    return sorted(out, key=lambda t: not t.primary)


def torch_device_type(device: str) -> str:
    return str(device).split(":")[0]


def markdown(targets: list[Target]) -> str:
    """Holds/misses tables: the issue's targets, then the same comparisons on the other groups."""
    parts = []
    for title, rows in (
        (
            "The issue's targets (ddpm-cifar10, DDIM, N = 50, wrt latent, CPU)",
            [t for t in targets if t.primary],
        ),
        ("The same comparisons on the other groups (for information)", [t for t in targets if not t.primary]),
    ):
        if rows:
            parts += [f"### {title}", "", "| group | target | measured | verdict |", "|---|---|---|---|"]
            parts += [f"| {t.group} | {t.claim} | {t.measured} | **{t.verdict}** |" for t in rows]
            parts.append("")
    return "\n".join(parts) + "\n"
