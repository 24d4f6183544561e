"""Statistics of timed rounds: interleaved order, medians with bootstrap intervals, ratios from paired
rounds, and target verdicts that respect the uncertainty and the machine's load."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
BOOTSTRAP = 4000
SEED = 0


def interleaved(rounds: dict[str, int]) -> list[tuple[int, str]]:
    """(round, name) in the order A B C A B C ...; a name with fewer rounds drops out after its last."""
    most = max(rounds.values(), default=0)
    return [(r, name) for r in range(most) for name, n in rounds.items() if r < n]


@dataclass(frozen=True)
class Estimate:
    """A point value with its 95 % interval (lo = hi = None when there are too few rounds for one)."""

    value: float
    lo: float | None
    hi: float | None
    rounds: int

    @property
    def has_interval(self) -> bool:
        return self.lo is not None and self.hi is not None


def _clean(values: Sequence[float]) -> np.ndarray:
    x = np.asarray([float(v) for v in values], dtype=float)
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"need at least one finite value; got {list(values)!r}")
    return x


def bootstrap_median(values: Sequence[float], level: float = LEVEL, n: int = BOOTSTRAP, seed: int = SEED):
    """Median with a percentile-bootstrap interval (resampling the rounds); no interval below 2 rounds."""
    x = _clean(values)
    if x.size < 2:
        return Estimate(float(x[0]), None, None, 1)
    rng = np.random.default_rng(seed)
    meds = np.median(x[rng.integers(0, x.size, size=(n, x.size))], axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(meds, [tail, 1 - tail], method="inverted_cdf")
    return Estimate(float(np.median(x)), float(lo), float(hi), int(x.size))


def paired_ratio(num: Sequence[float], den: Sequence[float], **kw) -> Estimate:
    """num / den from paired rounds: the median of the per-round ratios num_r / den_r, with its bootstrap
    interval (a drift or a load spike that hits both members of a round cancels in its ratio)."""
    k = min(len(num), len(den))
    a, b = _clean(list(num)[:k]), _clean(list(den)[:k])
    if (b <= 0).any():
        raise ValueError("paired_ratio needs positive denominators")
    return bootstrap_median(a / b, **kw)


def summed(*series: Sequence[float]) -> list[float]:
    """Per-round sums of several paired series (e.g. floor-sample + floor-step), cut to the shortest."""
    k = min(len(s) for s in series)
    return [float(sum(s[i] for s in series)) for i in range(k)]


VERDICTS = ("holds", "misses", "inconclusive", "flagged", "not measured")


def verdict(est: Estimate | None, bound: float, flagged: bool = False) -> str:
    """holds: the interval lies entirely below the bound; misses: entirely above; inconclusive otherwise
    (or with no interval); flagged: measured under load, no verdict; not measured: no estimate."""
    if est is None:
        return "not measured"
    if flagged:
        return "flagged"
    if not est.has_interval:
        return "inconclusive"
    if est.hi < bound:
        return "holds"
    if est.lo > bound:
        return "misses"
    return "inconclusive"


def significant(v: float | None, digits: int = 2) -> str:
    """v rounded to `digits` significant digits in plain notation (no e-notation), '–' for None."""
    if v is None or not math.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    places = digits - 1 - math.floor(math.log10(abs(v)))
    return f"{round(v, places):.{max(places, 0)}f}"


def with_interval(est: Estimate | None, digits: int = 2, unit: str = "") -> str:
    """'1.2 [1.1, 1.4]' (the 95 % interval in brackets), or the value alone without an interval."""
    if est is None:
        return "–"
    text = significant(est.value, digits) + unit
    if est.has_interval:
        text += f" [{significant(est.lo, digits)}, {significant(est.hi, digits)}]"
    return text
