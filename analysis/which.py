"""Which estimator for which need, computed from a results directory (`make benchmark`'s benchmark.csv, or the
full grid's): the choice is read off the measurements, never written by hand."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

# Column names a results directory may use for each quantity, newest first.
ALIASES = {
    "time_s": ("time_median_s",),
    "peak_mib": ("live_peak_mib", "peak_live_mib", "peak_mib", "peak_mem_mib"),
    "cosine": ("cosine", "cos_to_exact"),
    "rel_err": ("rel_err", "rel_err_to_exact"),
    "norm_ratio": ("norm_ratio", "norm_ratio_to_exact"),
}
BYTE_ALIASES = ("live_peak_bytes", "peak_live_bytes", "peak_mem_bytes")
KEYS = ["model", "wrt", "steps"]


def _first(df: pd.DataFrame, names) -> pd.Series | None:
    for name in names:
        if name in df.columns:
            return pd.to_numeric(df[name], errors="coerce")
    return None


def normalise(raw: pd.DataFrame) -> pd.DataFrame:
    """model, wrt, steps, estimator, exact, time_s, peak_mib, cosine, rel_err, norm_ratio from a results table."""
    out = raw[[c for c in ["model", "wrt", "steps", "estimator", "status"] if c in raw.columns]].copy()
    for key, names in ALIASES.items():
        col = _first(raw, names)
        out[key] = col if col is not None else math.nan
    if out["peak_mib"].isna().all():
        col = _first(raw, BYTE_ALIASES)
        out["peak_mib"] = col / 2**20 if col is not None else math.nan
    import sdo

    out = out[
        out["estimator"].isin(sdo.estimators.names())
    ].copy()  # drop reference rows (the sampling floor)
    out["exact"] = [is_exact(e) for e in out["estimator"]]
    if "status" in out.columns:
        out = out[out["status"] == "ok"]
    return out.drop(columns=["status"], errors="ignore").reset_index(drop=True)


def is_exact(name: str) -> bool:
    """Whether a registered estimator computes the exact gradient of the sampler (unknown names: False)."""
    import sdo

    try:
        return bool(getattr(sdo.estimators.get(name), "exact", False))
    except ValueError:
        return False


def load_results(directory: str | Path) -> pd.DataFrame:
    """The normalised benchmark table of a results directory (benchmark.csv inside it)."""
    path = Path(directory) / "benchmark.csv"
    if not path.exists():
        raise ValueError(f"{path} does not exist; run `make benchmark` (or pass the directory it wrote)")
    return normalise(pd.read_csv(path))


def _pick(group: pd.DataFrame, keep: Callable[[pd.DataFrame], pd.Series], by: str) -> pd.Series | None:
    cand = group[keep(group)].dropna(subset=[by])
    return None if cand.empty else cand.loc[cand[by].idxmin()]


NEEDS: dict[str, tuple[Callable[[pd.DataFrame], pd.Series], str]] = {
    "exact, fastest": (lambda g: g["exact"], "time_s"),
    "exact, least memory": (lambda g: g["exact"], "peak_mib"),
    "fastest with cosine >= 0.9": (lambda g: g["exact"] | (g["cosine"] >= 0.9), "time_s"),
    "fastest with cosine >= 0.9 and norm ratio in [0.5, 2]": (
        lambda g: g["exact"] | ((g["cosine"] >= 0.9) & g["norm_ratio"].between(0.5, 2.0)),
        "time_s",
    ),
    "least memory, any accuracy": (lambda g: g["exact"] | g["cosine"].notna(), "peak_mib"),
    "most accurate approximate": (lambda g: ~g["exact"], "rel_err"),
}


def which_estimator(results: pd.DataFrame) -> pd.DataFrame:
    """For every (model, wrt, N) and need: the estimator that meets it, with its numbers ('none' if none does)."""
    rows = []
    for key, group in results.groupby(KEYS):
        for need, (keep, by) in NEEDS.items():
            best = _pick(group, keep, by)
            row = dict(zip(KEYS, key), need=need, estimator="none")
            if best is not None:
                row.update(
                    best[["estimator", "time_s", "peak_mib", "cosine", "norm_ratio", "rel_err"]].to_dict()
                )
            rows.append(row)
    return pd.DataFrame(rows)
