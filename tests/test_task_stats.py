"""The task statistics against independent computations (scipy, statsmodels-free textbook values)."""

import numpy as np
import pytest
from scipy import stats

from sdo.tasks.stats import (
    bootstrap_interval,
    clopper_pearson,
    mantel_haenszel,
    mcnemar_columns,
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


def test_mcnemar_columns_name_the_discordant_counts_and_carry_the_exact_test():
    a = np.array([1] * 30 + [1] * 9 + [0] * 2 + [0] * 10, bool)
    b = np.array([1] * 30 + [0] * 9 + [1] * 2 + [0] * 10, bool)
    cols = mcnemar_columns(a, b, "only_a", "only_b")
    assert (cols["only_a"], cols["only_b"]) == (9, 2)
    assert cols["mcnemar_p"] == pytest.approx(2 * 67 / 2048, abs=1e-12)
    ref = stats.binomtest(9, 11).proportion_ci(0.95, method="exact")
    assert (cols["share_lo"], cols["share_hi"]) == pytest.approx((ref.low, ref.high), abs=1e-12)


# R's mantelhaen.test (2x2xK): common odds ratio and its Robins-Breslow-Greenland 95 % interval; the first
# is R's Penicillin and Rabbits example (Agresti 1990, pp. 231-237).
RABBITS = [[[0, 0], [6, 5]], [[3, 0], [3, 6]], [[6, 2], [0, 4]], [[5, 6], [1, 0]], [[2, 5], [0, 0]]]
FIVE_STRATA = [
    [[20, 14], [10, 24]],
    [[15, 12], [3, 15]],
    [[3, 2], [3, 2]],
    [[12, 3], [7, 5]],
    [[1, 0], [3, 2]],
]


@pytest.mark.parametrize(
    "tables,expected,used",
    [(RABBITS, (7.0, 1.026713, 47.725133), 3), (FIVE_STRATA, (3.5912, 1.781135, 7.240633), 5)],
)
def test_mantel_haenszel_matches_r_mantelhaen_test(tables, expected, used):
    ratio, lo, hi, n = mantel_haenszel(tables)
    assert (ratio, lo, hi) == pytest.approx(expected, rel=1e-4)
    assert n == used  # the rabbits' first and last strata have ad = bc = 0


def test_mantel_haenszel_follows_the_formula_by_hand():
    a, b, c, d = np.array([[4, 6, 2, 8], [9, 3, 5, 5], [1, 1, 0, 3]], float).T
    n = a + b + c + d
    r, s, p, q = a * d / n, b * c / n, (a + d) / n, (b + c) / n
    var = (p * r).sum() / (2 * r.sum() ** 2)
    var += (p * s + q * r).sum() / (2 * r.sum() * s.sum()) + (q * s).sum() / (2 * s.sum() ** 2)
    ratio = r.sum() / s.sum()
    tables = np.stack([a, b, c, d], 1).reshape(-1, 2, 2)
    expected = (ratio, ratio * np.exp(-1.959964 * var**0.5), ratio * np.exp(1.959964 * var**0.5))
    assert mantel_haenszel(tables)[:3] == pytest.approx(expected, rel=1e-6)
    assert mantel_haenszel(tables, level=0.99)[1] < expected[1]


def test_mantel_haenszel_of_strata_with_one_odds_ratio_is_that_ratio():
    tables = [[[2, 3], [1, 6]], [[8, 6], [4, 12]], [[20, 5], [10, 10]]]  # each stratum: ad / bc = 4
    assert mantel_haenszel(tables)[0] == pytest.approx(4.0, rel=1e-12)


def test_mantel_haenszel_of_one_stratum_is_the_plain_odds_ratio_with_woolf_interval():
    ratio, lo, hi, used = mantel_haenszel([[12, 5], [7, 9]])
    half = 1.959964 * np.sqrt(1 / 12 + 1 / 5 + 1 / 7 + 1 / 9)
    assert (ratio, lo, hi) == pytest.approx((12 * 9 / 35, 108 / 35 * np.exp(-half), 108 / 35 * np.exp(half)))
    assert used == 1
    assert mantel_haenszel([[2, 2], [2, 2]])[1:3] == pytest.approx((0.0625488, 15.987508), rel=1e-6)


def test_mantel_haenszel_of_identical_groups_holds_one():
    tables = [[[k, m], [k, m]] for k, m in ((3, 7), (10, 2), (5, 5))]
    ratio, lo, hi, _ = mantel_haenszel(tables)
    assert ratio == pytest.approx(1.0) and lo < 1 < hi


def test_mantel_haenszel_without_a_usable_stratum_is_nan():
    # one group absent, or both always succeed: no stratum informs the ratio
    assert np.isnan(mantel_haenszel([[[3, 2], [0, 0]], [[4, 0], [5, 0]]])[:3]).all()
    assert mantel_haenszel([[[3, 2], [0, 0]], [[4, 0], [5, 0]]])[3] == 0
    assert np.isnan(mantel_haenszel(np.zeros((0, 2, 2)))[0])
    ratio, lo, hi, used = mantel_haenszel([[[0, 4], [3, 1]], [[5, 0], [5, 0]]])  # only ad = 0 strata
    assert ratio == 0.0 and np.isnan(lo) and np.isnan(hi) and used == 1
    with pytest.raises(ValueError, match="non-negative"):
        mantel_haenszel([[-1, 2], [3, 4]])


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
