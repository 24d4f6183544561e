"""The statistics the task tables report: exact binomial intervals, the exact McNemar test on paired outcomes,
the Mantel-Haenszel odds ratio over strata, t and bootstrap bands over seeds, and the verdict a claim gets from
an interval."""

from __future__ import annotations

import numpy as np

VERDICTS = ("reproduces", "contradicts", "inconclusive")
DIRECTIONS = ("greater", "less")


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion k/n: Beta quantiles, [0, 1] at the ends."""
    from scipy.stats import beta

    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1; got k={k}, n={n}")
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def discordant(a, b) -> tuple[int, int]:
    """(#(a and not b), #(b and not a)) for paired boolean outcomes of two methods on the same samples."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need equal shapes; got {a.shape} and {b.shape}")
    return int((a & ~b).sum()), int((b & ~a).sum())


def mcnemar_exact(a, b) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs are Binomial(b + c, 1/2) under equal rates."""
    from scipy.stats import binomtest

    n_ab, n_ba = discordant(a, b)
    if n_ab + n_ba == 0:
        return 1.0
    return float(binomtest(n_ab, n_ab + n_ba, 0.5).pvalue)


def paired_share_interval(a, b, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of the share of discordant pairs won by a (0.5: no difference); it excludes 0.5
    exactly when the exact McNemar test rejects at 1 - level. (nan, nan) when no pair is discordant."""
    n_ab, n_ba = discordant(a, b)
    if n_ab + n_ba == 0:
        return float("nan"), float("nan")
    return clopper_pearson(n_ab, n_ab + n_ba, level)


def mcnemar_columns(a, b, only_a: str, only_b: str, level: float = 0.95) -> dict:
    """Table columns for paired outcomes a, b: the discordant counts under the names `only_a` and `only_b`, the
    exact McNemar p-value and the interval of a's share of the discordant pairs."""
    n_ab, n_ba = discordant(a, b)
    lo, hi = paired_share_interval(a, b, level)
    return {only_a: n_ab, only_b: n_ba, "mcnemar_p": mcnemar_exact(a, b), "share_lo": lo, "share_hi": hi}


def mantel_haenszel(tables, level: float = 0.95) -> tuple[float, float, float, int]:
    """(odds ratio, lo, hi, strata used): Mantel-Haenszel common odds ratio of 2x2 tables [[a, b], [c, d]]
    (rows: two groups, columns: success, failure; row 0's odds over row 1's) with the Robins-Breslow-Greenland
    interval. A stratum with ad = bc = 0 adds nothing; no usable stratum gives nan, a ratio of 0 or inf a nan
    interval."""
    from scipy.stats import norm

    t = np.asarray(tables, float).reshape(-1, 2, 2)
    if (t < 0).any():
        raise ValueError("counts must be non-negative")
    t = t[t.sum((1, 2)) > 0]
    a, b, c, d = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1]
    n = a + b + c + d
    r, s = a * d / n, b * c / n
    used, r_sum, s_sum = int((r + s > 0).sum()), float(r.sum()), float(s.sum())
    if r_sum == 0 and s_sum == 0:
        return float("nan"), float("nan"), float("nan"), used
    if r_sum == 0 or s_sum == 0:
        return (0.0 if r_sum == 0 else float("inf")), float("nan"), float("nan"), used
    p, q = (a + d) / n, (b + c) / n
    var = (
        (p * r).sum() / (2 * r_sum**2)
        + (p * s + q * r).sum() / (2 * r_sum * s_sum)
        + (q * s).sum() / (2 * s_sum**2)
    )
    ratio, half = r_sum / s_sum, float(norm.ppf(0.5 + level / 2) * np.sqrt(var))
    return ratio, ratio * float(np.exp(-half)), ratio * float(np.exp(half)), used


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval of the mean over independent runs (seeds); nan band for one value."""
    from scipy.stats import t

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def bootstrap_interval(
    values, level: float = 0.95, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, lo, hi): percentile bootstrap interval of the mean of `values` (seeded)."""
    v = np.asarray(values, float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (draws, len(v)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(v.mean()), float(lo), float(hi)


def bootstrap_ratio(
    num, den, level: float = 0.95, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean(num) / mean(den), lo, hi): percentile bootstrap over paired values (rounds resampled together)."""
    a, b = np.asarray(num, float), np.asarray(den, float)
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"need paired, non-empty values; got {a.shape} and {b.shape}")
    idx = np.random.default_rng(seed).integers(0, len(a), (draws, len(a)))
    ratios = a[idx].mean(1) / b[idx].mean(1)
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(a.mean() / b.mean()), float(lo), float(hi)


def verdict(lo: float, hi: float, direction: str = "greater", null: float = 0.0) -> str:
    """'reproduces' when the interval [lo, hi] lies wholly on the claimed side of `null`, 'contradicts' when it
    lies wholly on the other side (it excludes the claim's direction), otherwise (or nan) 'inconclusive'."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if lo > hi:
        raise ValueError(f"interval needs lo <= hi; got [{lo}, {hi}]")
    if direction == "less":
        lo, hi, null = -hi, -lo, -null
    if lo > null:
        return "reproduces"
    if hi < null:
        return "contradicts"
    return "inconclusive"
