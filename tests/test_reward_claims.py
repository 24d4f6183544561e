"""The reward task's claims: the interleaved step timing (depth strata, ratio interval, rounds, verdict) and
the reward comparison, which gives no verdict when runs left the data."""

import numpy as np
import pandas as pd
import pytest
import torch

import sdo
from sdo.measure import loaded
from sdo.tasks.report import reward_claims, timing_claim
from sdo.tasks.reward import RewardConfig, best_lr, reward_fn
from sdo.tasks.reward_timing import strata, timing_rounds, timing_summary
from sdo.tasks.stats import bootstrap_ratio


@pytest.mark.parametrize("n_steps, rounds", [(50, 20), (50, 12), (30, 7)])
def test_depth_strata_average_to_alignprops_expected_depth(n_steps, rounds):
    depths = strata(n_steps, rounds)
    assert len(depths) == rounds and depths == sorted(depths)
    assert 1 <= min(depths) and max(depths) <= n_steps
    expected = np.arange(1, n_steps + 1).mean()  # K ~ U{1..N}
    assert abs(np.mean(depths) - expected) <= 0.5


def test_bootstrap_ratio_of_means():
    assert bootstrap_ratio([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]) == (0.5, 0.5, 0.5)
    m, lo, hi = bootstrap_ratio([1.0, 3.0], [2.0, 2.0])
    assert m == 1.0 and lo == pytest.approx(0.5) and hi == pytest.approx(1.5)
    with pytest.raises(ValueError, match="paired"):
        bootstrap_ratio([1.0], [1.0, 2.0])


def test_load_flag():
    assert loaded(1.6, 1) and not loaded(1.4, 1) and not loaded(None, 1) and not loaded(float("nan"), 1)


def summary_row(ratio_hi, rounds=20, load=0.9):
    return pd.Series(
        dict(
            rounds=rounds,
            sdo_s=5.0,
            alignprop_uniform_s=10.0,
            ratio=0.5,
            ratio_lo=0.45,
            ratio_hi=ratio_hi,
            threads=1,
            median_load_1m=load,
            loaded=loaded(load, 1),
        )
    )


def test_timing_claim_verdicts():
    assert timing_claim(summary_row(0.55)).get("verdict") == "reproduces"
    assert timing_claim(summary_row(1.2)).get("verdict") == "inconclusive"
    assert timing_claim(summary_row(0.55, rounds=12)).get("verdict") == "inconclusive"  # too few rounds
    busy = timing_claim(summary_row(0.55, load=2.0))
    assert busy["verdict"] == "inconclusive" and "under load" in busy["ours"]


def test_timing_rounds_alternate_and_use_the_strata():
    base = sdo.models.get("fmnist-ddpm")
    cfg = RewardConfig(batch=1, steps=3, timing_rounds=3, seeds=(0,), prompts=(0, 1), held_out=(2,))
    reward = reward_fn("class-odds", sdo.models.trained.fmnist_classifier(), cfg)
    out = timing_rounds(base, reward, cfg)
    rows = pd.DataFrame(out["rows"])
    assert list(rows.method) == [
        "sdo",
        "alignprop-uniform",
        "alignprop-uniform",
        "sdo",
        "sdo",
        "alignprop-uniform",
    ]
    assert (rows.status == "ok").all() and (rows.seconds > 0).all()
    assert rows[rows.method == "alignprop-uniform"].K.tolist() == strata(3, 3)
    summary = timing_summary(rows, out["threads"])
    assert summary["rounds"] == 3 and summary["ratio"] == pytest.approx(
        summary["sdo_s"] / summary["alignprop_uniform_s"]
    )


def write_runs(path, sdo_drift, ap_drift):
    rows = [
        dict(reward="class-odds", method=m, seed=k, eval_after=after + k, s_per_step=1.0, fid_drift=d)
        for m, after, drifts in (("sdo", 12.0, sdo_drift), ("alignprop-uniform", 10.0, ap_drift))
        for k, d in enumerate(drifts)
    ]
    pd.DataFrame(rows).to_csv(path / "reward-runs.csv", index=False)


def reward_row(path):
    return next(r for r in reward_claims(path) if r["claim"].startswith("SDO reaches a higher reward"))


def test_reward_verdict_needs_runs_that_stayed_on_the_data(tmp_path):
    write_runs(tmp_path, [1.0, -3.0, 4.0], [10.0, 2.0, 0.5])
    assert reward_row(tmp_path)["verdict"] == "reproduces"  # SDO - AlignProp = 2.0 on every seed
    write_runs(tmp_path, [1.0, 300.0, 4.0], [10.0, 2.0, 0.5])
    row = reward_row(tmp_path)
    assert row["verdict"] == "inconclusive"
    assert "1 of 3 SDO runs and 0 of 3 AlignProp-uniform runs left the data" in row["ours"]


def test_sweep_picks_the_best_reward_among_rates_that_stay_on_the_data():
    points = [
        dict(lr=1.0, held_out_eval_reward=10.0, held_out_fid_drift=2.0),
        dict(lr=4.0, held_out_eval_reward=11.0, held_out_fid_drift=40.0),
        dict(
            lr=16.0, held_out_eval_reward=30.0, held_out_fid_drift=900.0
        ),  # hacked: best reward, off the data
    ]
    assert best_lr(points, 50.0) == 4.0
    assert best_lr(points, 1.0) == 1.0  # none on the data: the least drifting
    assert best_lr(points, float("inf")) == 16.0


def test_fid_reference_holds_only_the_samples_classes():
    from sdo.data import fmnist_tensors
    from sdo.tasks.reward import reference_images

    images, labels = fmnist_tensors("test")
    got = reference_images((7, 9), 50)
    expected = images[(labels == 7) | (labels == 9)][:50]
    assert got.shape == (50, *images.shape[1:]) and torch.equal(got, expected)
    assert not torch.equal(got, images[:50])


def test_peak_drop_is_the_fall_from_the_best_eval():
    from sdo.tasks.reward import peak_drop

    log = [dict(step=5, eval_reward=3.0), dict(step=6), dict(step=10, eval_reward=5.0)]
    assert peak_drop(1.0, log, 4.0) == pytest.approx(1.0)
    assert peak_drop(1.0, log, 6.0) == 0.0  # ends at its best
    assert peak_drop(7.0, [], 6.0) == pytest.approx(1.0)  # fell below the base model
    assert np.isnan(peak_drop(1.0, log, float("nan")))  # a failed run has no final eval


@pytest.mark.parametrize(
    "ap1_drops, verdict",
    [((2.0, 2.2, 1.9), "reproduces"), ((0.0, 0.1, 0.0), "contradicts"), ((0.0, 2.0, 0.1), "inconclusive")],
)
def test_instability_claim_follows_the_interval_of_the_paired_fall(tmp_path, ap1_drops, verdict):
    sdo_drops = (0.5, 0.6, 0.4)
    rows = [
        dict(
            reward="class-odds", method=m, seed=s, peak_drop=d, eval_after=1.0, s_per_step=1.0, fid_drift=0.0
        )
        for m, drops in (("sdo", sdo_drops), ("alignprop-1", ap1_drops))
        for s, d in enumerate(drops)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "reward-runs.csv", index=False)
    (row,) = [r for r in reward_claims(tmp_path) if "unstable" in r["claim"]]
    assert row["verdict"] == verdict and "over 3 seeds" in row["ours"]
