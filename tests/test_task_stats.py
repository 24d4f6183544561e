"""The task statistics against independent computations (scipy, statsmodels-free textbook values)."""

import numpy as np
import pytest
from scipy import stats

from sdo.tasks.stats import (
    bootstrap_interval,
    clopper_pearson,
    mcnemar_exact,
    paired_share_interval,
    t_interval,
    verdict,
)


@pytest.mark.parametrize("k,n", [(0, 16), (12, 16), (16, 16), (37, 200), (199, 200)])
def test_clopper_pearson_matches_scipy_binomtest_exact_interval(k, n):
    ref = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_clopper_pearson_textbook_values():
    # 16/16: [0.794, 1]; 12/16: [0.476, 0.927] (exact 95 % limits; 0.05/2 ** (1/16) = 0.7941).
    assert clopper_pearson(16, 16)[0] == pytest.approx(0.025 ** (1 / 16), abs=1e-12)
    lo, hi = clopper_pearson(12, 16)
    assert (round(lo, 3), round(hi, 3)) == (0.476, 0.927)


def test_clopper_pearson_rejects_bad_counts():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson(5, 4)


def test_mcnemar_exact_is_the_two_sided_binomial_on_discordant_pairs():
    a = np.array([1] * 30 + [1] * 9 + [0] * 2 + [0] * 10, bool)
    b = np.array([1] * 30 + [0] * 9 + [1] * 2 + [0] * 10, bool)
    # 9 vs 2 discordant: p = 2 * P(X <= 2 | Bin(11, 1/2)) = 2 * (1 + 11 + 55) / 2048
    assert mcnemar_exact(a, b) == pytest.approx(2 * 67 / 2048, abs=1e-12)
    assert mcnemar_exact(a, b) == pytest.approx(stats.binomtest(9, 11, 0.5).pvalue, abs=1e-12)
    assert mcnemar_exact(a, a) == 1.0


def test_paired_share_interval_excludes_half_iff_mcnemar_rejects():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.random(40) < rng.random(), rng.random(40) < rng.random()
        lo, hi = paired_share_interval(a, b)
        if np.isnan(lo):
            continue
        assert (not lo <= 0.5 <= hi) == (mcnemar_exact(a, b) < 0.05)


def test_t_interval_matches_scipy():
    v = [0.61, 0.55, 0.70]
    mean, lo, hi = t_interval(v)
    ref = stats.t.interval(0.95, 2, loc=np.mean(v), scale=stats.sem(v))
    assert (mean, lo, hi) == pytest.approx((np.mean(v), *ref), abs=1e-12)
    assert np.isnan(t_interval([1.0])[1])


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    m, lo, hi = bootstrap_interval(small)
    assert lo < m < hi
    _, lo2, hi2 = bootstrap_interval(large)
    assert hi2 - lo2 < (hi - lo) / 4


@pytest.mark.parametrize(
    "lo,hi,direction,null,expected",
    [
        (0.1, 0.3, "greater", 0.0, "reproduces"),
        (-0.3, -0.1, "greater", 0.0, "contradicts"),
        (-0.1, 0.3, "greater", 0.0, "inconclusive"),
        (0.0, 0.3, "greater", 0.0, "inconclusive"),
        (0.2, 0.4, "less", 0.5, "reproduces"),
        (0.6, 0.9, "less", 0.5, "contradicts"),
        (0.4, 0.6, "less", 0.5, "inconclusive"),
        (float("nan"), float("nan"), "greater", 0.0, "inconclusive"),
    ],
)
def test_verdict_only_follows_what_the_interval_supports(lo, hi, direction, null, expected):
    assert verdict(lo, hi, direction, null) == expected


def test_verdict_rejects_unknown_direction():
    with pytest.raises(ValueError, match="greater, less"):
        verdict(0, 1, "bigger")


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    from sdo.tasks.fid import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = 2.0 * rng.normal(size=(20000, 3)) + np.array([1.0, 0.0, 0.0])
    # ||mu||^2 + tr(I + 4I - 2 * 2I) = 1 + 3 * (1 + 4 - 4) = 4
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
