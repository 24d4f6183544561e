"""Ratios between records of one group (x BPTT, SDO / floor, ...) with 95 % intervals from paired rounds:
round r of one member ran in the same interleaved cycle as round r of the others (same group_id)."""

from __future__ import annotations

import json
import math

from .stats import Estimate, paired_ratio, summed

MIB = 2**20
RSS_RESOLUTION = MIB  # RSS deltas below 1 MiB are page-granular allocator noise, not a measurement
SERIES = {"time_median_s": "times_s", "peak_mem_bytes": "peak_mem_rounds"}


def number(v) -> float | None:
    """v as a finite float, else None."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def rounds_of(rec: dict, key: str) -> list[float] | None:
    """A record's per-round series (a list, or its JSON text in a CSV-loaded frame); None when absent."""
    v = rec.get(key)
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    if not isinstance(v, list) or not v:
        return None
    vals = [number(x) for x in v]
    return None if any(x is None for x in vals) else vals


def below_resolution(rec: dict, column: str = "peak_mem_bytes") -> bool:
    """True for an RSS peak below RSS_RESOLUTION (the figure is noise there)."""
    v = number(rec.get(column))
    return column == "peak_mem_bytes" and v is not None and v < RSS_RESOLUTION


def ratio(num: dict, dens: list[dict], column: str) -> Estimate | None:
    """num[column] / sum(den[column]) with an interval from paired rounds where every record has rounds of
    the same group run; the plain ratio (no interval) otherwise; None when a value is missing."""
    recs = [num, *dens]
    if any(r is None or r.get("status") != "ok" for r in recs):
        return None
    if any(below_resolution(r, column) for r in recs):
        return None
    series = SERIES.get(column)
    ids = {r.get("group_id") for r in recs}
    if series and len(ids) == 1 and None not in ids:
        rounds = [rounds_of(r, series) for r in recs]
        if all(rounds) and min(len(x) for x in rounds) >= 1 and all(v > 0 for x in rounds[1:] for v in x):
            return paired_ratio(rounds[0], summed(*rounds[1:]))
    values = [number(r.get(column)) for r in recs]
    if any(v is None for v in values) or sum(values[1:]) <= 0:
        return None
    return Estimate(values[0] / sum(values[1:]), None, None, 1)
