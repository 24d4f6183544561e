"""bench.stats on synthetic times with known answers: order, intervals, paired ratios, verdicts."""

import math

import numpy as np
import pytest

from bench.stats import (
    Estimate,
    bootstrap_median,
    interleaved,
    paired_ratio,
    significant,
    summed,
    verdict,
    with_interval,
)
from sdo.measure import loaded


def test_rounds_are_interleaved_and_a_short_member_drops_out():
    order = interleaved({"A": 3, "B": 3, "C": 1})
    assert order == [(0, "A"), (0, "B"), (0, "C"), (1, "A"), (1, "B"), (2, "A"), (2, "B")]


def test_bootstrap_interval_of_five_rounds_is_their_range():
    # P(median of a 5-resample <= x_(1)) = 0.058 > 0.025 and P(<= x_(4)) = 0.942 < 0.975: [x_(1), x_(5)]
    est = bootstrap_median([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (est.value, est.lo, est.hi, est.rounds) == (3.0, 1.0, 5.0, 5)


def test_bootstrap_interval_of_nine_rounds_matches_the_binomial_order_statistics():
    # median of a 9-resample <= x_(k) iff >= 5 draws <= x_(k): P = P(Binom(9, k/9) >= 5)
    def cdf(k):
        p = k / 9
        return sum(math.comb(9, j) * p**j * (1 - p) ** (9 - j) for j in range(5, 10))

    lo_k = next(k for k in range(1, 10) if cdf(k) >= 0.025)
    hi_k = next(k for k in range(1, 10) if cdf(k) >= 0.975)
    x = [float(v) for v in range(1, 10)]
    est = bootstrap_median(x[::-1], n=40000)
    assert (est.lo, est.hi) == (x[lo_k - 1], x[hi_k - 1]) == (2.0, 8.0)


def test_bootstrap_interval_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = [
        (e := bootstrap_median(rng.lognormal(0.0, 0.3, 25), n=1000, seed=s)).lo <= 1.0 <= e.hi
        for s in range(300)
    ]
    assert 0.90 <= np.mean(hits) <= 0.99


def test_one_round_has_no_interval_and_gets_no_verdict():
    est = bootstrap_median([2.0])
    assert est.lo is est.hi is None
    assert verdict(est, bound=10.0) == "inconclusive"


def test_paired_ratio_cancels_a_drift_that_unpaired_medians_would_not():
    drift = np.linspace(1.0, 3.0, 9)  # the machine slows down 3x during the group
    a, b = 0.9 * drift, 1.0 * drift
    paired = paired_ratio(a, b)
    assert paired.value == pytest.approx(0.9) and paired.hi == pytest.approx(0.9)
    lo_unpaired = bootstrap_median(a).lo / bootstrap_median(b).hi
    assert lo_unpaired < 0.6  # dividing independent intervals would lose the verdict
    assert verdict(paired, bound=1.05) == "holds"


def test_summed_adds_rounds_pairwise():
    assert summed([1.0, 2.0, 3.0], [10.0, 20.0]) == [11.0, 22.0]


@pytest.mark.parametrize(
    "lo, hi, flagged, expected",
    [
        (0.8, 0.95, False, "holds"),
        (1.10, 1.3, False, "misses"),
        (0.9, 1.2, False, "inconclusive"),
        (0.8, 0.95, True, "flagged"),
        (1.1, 1.3, True, "flagged"),
    ],
)
def test_verdict_needs_the_whole_interval_on_one_side_of_the_bound(lo, hi, flagged, expected):
    assert verdict(Estimate((lo + hi) / 2, lo, hi, 5), 1.05, flagged) == expected


def test_verdict_without_an_estimate_says_not_measured():
    assert verdict(None, 1.0) == "not measured"


def test_a_group_is_flagged_when_load_exceeds_threads_plus_half():
    assert loaded(2.6, 2) and not loaded(2.4, 2) and not loaded(None, 2)


def test_numbers_print_with_significant_digits_and_no_e_notation():
    assert significant(0.000123456) == "0.00012"
    assert significant(1234.5) == "1200"
    assert significant(0.9876, 3) == "0.988"
    assert with_interval(Estimate(1.234, 1.1, 1.46, 5)) == "1.2 [1.1, 1.5]"
    assert "e" not in with_interval(Estimate(3e-7, 1e-7, 5e-7, 5))
