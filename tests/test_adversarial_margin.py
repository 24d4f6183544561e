"""Attack success at equal starting margin: clean-margin strata, the Mantel-Haenszel comparison against SDO,
its verdicts, and the README sentence next to the SDO vs reversible row."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sdo.tasks.adversarial import (
    ADJUSTED_VERDICTS,
    AdversarialConfig,
    adjusted,
    adjusted_verdict,
    by_margin,
    margin_edges,
    margin_stratum,
)
from sdo.tasks.report import claims

CFG = AdversarialConfig(n=20, seeds=(0,))


def frame(method: str, margins, successes, seed: int = 0) -> pd.DataFrame:
    """Per-sample rows of one method: samples 0.. with the given clean margins and outcomes."""
    margins = np.asarray(margins, float)
    return pd.DataFrame(
        dict(seed=seed, sample=np.arange(len(margins)), method=method, clean_margin=margins)
        | dict(success=np.asarray(successes, bool))
    )


def test_strata_are_quantile_bins_of_the_pooled_margins():
    m = np.arange(20)
    df = pd.concat([frame("a", m, m < 7), frame("b", m, m < 1)])
    edges = margin_edges(df)
    assert edges == pytest.approx([0, 4.75, 9.5, 14.25, 19])  # quantiles of 0..19 (each twice)
    assert margin_stratum([0, 4, 4.75, 5, 19], edges).tolist() == [0, 0, 0, 1, 3]
    table = by_margin(df, CFG, edges).set_index(["stratum", "method"])
    assert table.n.tolist() == [5] * 8
    assert table.successes.tolist() == [5, 1, 2, 0, 0, 0, 0, 0]
    assert table.loc[(1, "a"), ["margin_lo", "margin_hi"]].tolist() == [0, 4.75]
    assert table.loc[(2, "b"), ["margin_lo", "margin_hi"]].tolist() == [4.75, 9.5]
    ci = stats.binomtest(2, 5).proportion_ci(0.95, method="exact")
    row = table.loc[(2, "a")]
    assert (row.success_pct, row.ci_lo_pct, row.ci_hi_pct) == pytest.approx((40, 100 * ci.low, 100 * ci.high))
    assert row.mean_clean_margin == pytest.approx(7.0)


def test_few_samples_or_tied_margins_give_fewer_strata():
    few = pd.concat([frame("a", range(9), [True] * 9), frame("b", range(9), [False] * 9)])
    assert margin_edges(few).tolist() == [0, 8]  # 9 samples per method: one stratum
    assert len(margin_edges(pd.concat([few] * 2))) == 4  # 18 per method: three strata
    tied = frame("a", [2.0] * 30, [True] * 30)
    edges = margin_edges(tied)
    assert edges.tolist() == [2, 2] and by_margin(tied, CFG, edges).n.tolist() == [30]
    assert len(margin_edges(tied.iloc[:0])) == 0 and by_margin(tied.iloc[:0], CFG, np.zeros(0)).empty


def test_adjusted_removes_a_difference_that_only_the_starting_margin_makes():
    # within each stratum both methods succeed equally often; reversible starts mostly near the boundary
    low, high = [1.0] * 16 + [50.0] * 4, [1.0] * 4 + [50.0] * 16
    rev = frame("reversible", low, [1] * 12 + [0] * 4 + [1] + [0] * 3)
    ref = frame("sdo", high, [1] * 3 + [0] + [1] * 4 + [0] * 12)
    row = adjusted(pd.concat([ref, rev]), CFG, np.array([0.0, 10.0, 100.0])).iloc[0]
    assert row.comparison == "sdo vs reversible" and row.n_pairs == 20
    assert (row.n_strata, row.n_strata_used) == (2, 2)
    assert row.crude_odds_ratio == pytest.approx(13 * 13 / (7 * 7))
    assert row.odds_ratio_other_over_ref == pytest.approx(1.0)
    assert row.or_lo < 1 < row.or_hi and row.verdict == "inconclusive"


def test_adjusted_verdict_names_the_better_method_at_equal_margin():
    margins = [1.0] * 50 + [50.0] * 50
    strong, weak = [1] * 45 + [0] * 5 + [1] * 40 + [0] * 10, [1] * 10 + [0] * 40 + [1] * 5 + [0] * 45
    edges = np.array([0.0, 10.0, 100.0])
    better = adjusted(pd.concat([frame("sdo", margins, weak), frame("bptt", margins, strong)]), CFG, edges)
    worse = adjusted(pd.concat([frame("sdo", margins, strong), frame("bptt", margins, weak)]), CFG, edges)
    assert better.verdict.item() == "other better at equal margin" and better.or_lo.item() > 1
    assert worse.verdict.item() == "reference better at equal margin" and worse.or_hi.item() < 1
    assert adjusted_verdict(1.2, 3.0) == ADJUSTED_VERDICTS[0]
    assert adjusted_verdict(0.2, 0.9) == ADJUSTED_VERDICTS[1]
    assert adjusted_verdict(0.5, 2.0) == adjusted_verdict(np.nan, np.nan) == "inconclusive"


def test_a_comparison_without_a_shared_stratum_gives_no_number():
    edges = np.array([0.0, 10.0, 100.0])
    ref, rev = frame("sdo", [50.0] * 10, [0, 1] * 5), frame("reversible", [1.0] * 10, [1, 0] * 5)
    elsewhere = frame("adjoint", [50.0] * 10, [1] * 10, seed=1)  # no sample stored for both
    table = adjusted(pd.concat([ref, rev, elsewhere]), CFG, edges).set_index("comparison")
    row = table.loc["sdo vs reversible"]
    assert row.n_strata_used == 0 and np.isnan([row.odds_ratio_other_over_ref, row.or_lo, row.or_hi]).all()
    assert row.verdict == "inconclusive" and row.crude_odds_ratio == pytest.approx(1.0)
    assert table.loc["sdo vs adjoint"].n_pairs == 0 and table.loc["sdo vs adjoint"].verdict == "inconclusive"
    assert adjusted(rev, CFG, edges).empty  # no reference


def paired_row(comparison: str) -> dict:
    """One row of the paired table with made-up values."""
    return dict(
        comparison=comparison,
        n_pairs=10,
        n_pairs_planned=10,
        reference_success_pct=20.0,
        reference_ci_lo_pct=3.0,
        reference_ci_hi_pct=56.0,
        other_success_pct=100.0,
        other_ci_lo_pct=69.0,
        other_ci_hi_pct=100.0,
        only_reference_succeeds=0,
        only_other_succeeds=8,
        mcnemar_p=0.008,
        share_lo=0.0,
        share_hi=0.37,
        perceptual_other_minus_ref=0.0,
        perceptual_diff_lo=-0.1,
        perceptual_diff_hi=0.1,
    )


def write_margin_tables(out, adjusted_verdict: str, or_lo: float = 0.4, or_hi: float = 22.5) -> None:
    """Paired, summary and adjusted tables of a run where reversible wins every discordant pair."""
    pd.DataFrame([paired_row("sdo vs adjoint"), paired_row("sdo vs reversible")]).to_csv(
        out / "adversarial-gd-paired.csv"
    )
    pd.DataFrame(dict(method=["sdo", "adjoint", "reversible"], clean_margin=[97.6, 97.6, 13.8])).to_csv(
        out / "adversarial-gd.csv"
    )
    pd.DataFrame(
        dict(
            comparison=["sdo vs reversible"], n_strata=[2], n_strata_used=[1], odds_ratio_other_over_ref=[3.0]
        )
        | dict(or_lo=[or_lo], or_hi=[or_hi], crude_odds_ratio=[36.0], verdict=[adjusted_verdict])
    ).to_csv(out / "adversarial-gd-adjusted.csv")


def test_readme_states_the_equal_margin_comparison_next_to_reversible(tmp_path):
    write_margin_tables(tmp_path, "inconclusive")
    table = claims(tmp_path).set_index("claim")
    doodl = table.filter(like="DOODL", axis=0).iloc[0]
    assert doodl.verdict == "inconclusive"  # not the paired test's 'contradicts': the images differ
    assert table.filter(like="AdjointDPM", axis=0).iloc[0].verdict == "contradicts"  # same images: paired
    assert "coupled sampler's clean samples (mean clean margin 13.8 vs SDO's 97.6, nearer" in doodl.ours
    assert "at equal starting margin (1 of 2 clean-margin strata informative" in doodl.ours
    assert "reversible / SDO 3.00 [0.40, 22.50], inconclusive" in doodl.ours
    assert "equal starting margin" not in table.filter(like="AdjointDPM", axis=0).iloc[0].ours


@pytest.mark.parametrize(
    "adjusted_verdict, expected",
    [
        (ADJUSTED_VERDICTS[0], "contradicts"),
        (ADJUSTED_VERDICTS[1], "reproduces"),
        ("inconclusive", "inconclusive"),
    ],
)
def test_reversible_success_verdict_follows_the_equal_margin_comparison(tmp_path, adjusted_verdict, expected):
    write_margin_tables(tmp_path, adjusted_verdict, 1.5, 9.0)
    doodl = claims(tmp_path).set_index("claim").filter(like="DOODL", axis=0).iloc[0]
    assert doodl.verdict == expected


def test_readme_says_how_often_the_coupled_sampler_departs_from_ddim(tmp_path):
    write_margin_tables(tmp_path, "inconclusive")
    counts = {
        "0": dict(candidates=1400, misclassified=10, rejected_by_judge=13)
        | dict(excluded_only_by_the_coupled_sample=1171, excluded=1191),
        "1": dict(candidates=100, misclassified=0, rejected_by_judge=0)
        | dict(excluded_only_by_the_coupled_sample=20, excluded=20),
    }
    (tmp_path / "adversarial-gd.json").write_text(json.dumps(dict(exclusion_counts=counts)))
    doodl = claims(tmp_path).set_index("claim").filter(like="DOODL", axis=0).iloc[0]
    # DDIM passes 1400 - 20 = 1380 of seed 0 and all 100 of seed 1; the coupled sample fails 1171 + 20 of them
    assert "fails the exclusions on 1191 of the 1480 candidates whose DDIM sample passes (80 %)" in doodl.ours


def test_image_change_of_a_coupled_sampler_method_gets_no_verdict(tmp_path):
    write_margin_tables(tmp_path, "inconclusive")
    rows = pd.read_csv(tmp_path / "adversarial-gd-paired.csv")
    rows[["perceptual_other_minus_ref", "perceptual_diff_lo", "perceptual_diff_hi", "n_pairs"]] = [
        0.3,
        0.2,
        0.4,
        30,
    ]
    rows.to_csv(tmp_path / "adversarial-gd-paired.csv", index=False)
    table = claims(tmp_path).set_index("claim")
    assert table.loc[
        "SDO changes images less than adjoint (Table 5 LPIPS; ours: judge-feature distance)"
    ].verdict == ("reproduces")
    doodl = table.loc["SDO changes images less than reversible (Table 5 LPIPS; ours: judge-feature distance)"]
    assert doodl.verdict == "inconclusive" and "not SDO's" in doodl.ours
