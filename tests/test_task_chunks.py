"""Resumable task runs: a run stopped by a limit and run again computes only the missing chunks and ends with
the tables of an uninterrupted run; a chunk stored with other settings is refused; partial tables say so; and
the attack's dropping of settled samples leaves its deltas unchanged (every task estimator's gradient is
per sample)."""

import copy
import json

import pandas as pd
import pytest
import torch

import sdo
from sdo.tasks.adversarial import (
    AdversarialConfig,
    attack_batch,
    attack_problem,
    run_adversarial,
)
from sdo.tasks.chunks import ChunkRunner, chunk_path, load_chunk, save_chunk
from sdo.tasks.common import DEFAULT_ESTIMATORS, TaskModels
from sdo.tasks.report import claims, write_readme
from sdo.tasks.sampling import class_cond, latents

TIMING = ["s_per_sample"]  # wall time differs between runs; everything else must not


@pytest.fixture(scope="module")
def digits_task():
    from sdo.models.digits import digits_classifier

    classifier = digits_classifier()
    model = sdo.models.get("digits-ddpm", conditional=True, guidance=2.0)
    return TaskModels(model, classifier, classifier, "digits-ddpm")


def small(**kw) -> AdversarialConfig:
    base = dict(n=6, batch=3, steps=8, opt_steps=4, seeds=(0, 1), pool_factor=6, fid_reference=0)
    return AdversarialConfig(**(base | dict(tau=0.5, lr=3.0, kappa=0.5) | kw))


def tables(out) -> dict[str, pd.DataFrame]:
    names = ("adversarial-gd", "adversarial-gd-paired", "adversarial-gd-samples")
    return {n: pd.read_csv(out / f"{n}.csv").drop(columns=TIMING, errors="ignore") for n in names}


def test_interrupted_run_resumes_to_the_uninterrupted_tables(digits_task, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_adversarial(small(), ["sdo", "bptt"], whole, digits_task, ChunkRunner(whole))

    first = ChunkRunner(parts, max_chunks=3)  # seed 0's candidates and two of its attack chunks
    run_adversarial(small(), ["sdo", "bptt"], parts, digits_task, first)
    assert len(first.computed) == 3 and len(first.missing) == 7  # seed 1's candidates and chunks too
    partial = pd.read_csv(parts / "adversarial-gd.csv").set_index("method")
    assert not partial.complete.any() and (partial.n < partial.n_planned).all()

    second = ChunkRunner(parts)
    run_adversarial(small(), ["sdo", "bptt"], parts, digits_task, second)
    assert set(second.loaded) == set(first.computed)
    assert set(second.computed) == set(first.missing) and not second.missing
    for name, table in tables(whole).items():
        pd.testing.assert_frame_equal(tables(parts)[name], table, obj=name)
    saved = tables(whole)["adversarial-gd"].calls_saved_pct
    assert ((saved > 0) & (saved < 100)).any()  # settled samples left their batches


def test_a_time_limit_of_zero_computes_nothing_and_labels_everything_partial(digits_task, tmp_path):
    runner = ChunkRunner(tmp_path, max_minutes=0)
    run_adversarial(small(), ["sdo", "bptt"], tmp_path, digits_task, runner)
    assert runner.computed == [] and len(runner.missing) == 10  # 2 candidate sets and 8 attack chunks
    table = pd.read_csv(tmp_path / "adversarial-gd.csv")
    assert (table.n == 0).all() and not table.complete.any()
    cover = json.loads((tmp_path / "adversarial-gd.json").read_text())["coverage"]
    assert cover["stored_chunks"] == 0 and len(cover["missing_chunks"]) == 8
    note = (tmp_path / "adversarial-gd.md").read_text()
    assert "**Partial**: 0 of 8" in note and "Missing: adversarial/gd/seed0/sdo (2), " in note


def test_partial_results_are_labelled_in_tables_json_and_readme(digits_task, tmp_path):
    runner = ChunkRunner(tmp_path, max_chunks=4)  # seed 0's candidates, sdo's two chunks, bptt's first
    run_adversarial(small(), ["sdo", "bptt"], tmp_path, digits_task, runner)
    paired = pd.read_csv(tmp_path / "adversarial-gd-paired.csv").iloc[0]
    assert (paired.n_pairs, paired.n_pairs_planned, paired.complete) == (3, 12, False)
    cover = json.loads((tmp_path / "adversarial-gd.json").read_text())["coverage"]
    assert cover["complete"] is False and set(cover["missing_chunks"]) < set(runner.missing)
    write_readme(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert "`adversarial-gd.json`: partial: 3 of 8 planned chunks (38 %); missing:" in readme
    assert "**Partial**: rows with complete = False" in readme


def test_a_replica_runs_on_its_first_ranges_only_and_matches_its_original(digits_task, tmp_path):
    runner = ChunkRunner(tmp_path)
    run_adversarial(small(), ["sdo", "bptt", "checkpoint"], tmp_path, digits_task, runner)
    checkpoint_chunks = [k for k in runner.computed if "/checkpoint/" in k]
    assert checkpoint_chunks == [f"adversarial/gd/seed{s}/checkpoint/samples-0000-0002" for s in (0, 1)]
    table = pd.read_csv(tmp_path / "adversarial-gd.csv").set_index("method")
    assert table.n_planned.to_dict() == dict(sdo=12, bptt=12, checkpoint=6) and table.complete.all()
    paired = pd.read_csv(tmp_path / "adversarial-gd-paired.csv").set_index("comparison")
    assert paired.loc["sdo vs checkpoint", "n_pairs_planned"] == 6
    (replica,) = json.loads((tmp_path / "adversarial-gd.json").read_text())["replicas"]
    assert (replica["method"], replica["replicates"], replica["shared"]) == ("checkpoint", "bptt", 6)
    assert replica["same_outcome"] == 6 and replica["max_l2_gap"] < 1e-3
    assert (
        "checkpoint computes bptt's gradient by construction" in (tmp_path / "adversarial-gd.md").read_text()
    )


def test_a_replica_with_no_shared_samples_says_so():
    from sdo.tasks.common import replica_sentence

    none = dict(method="checkpoint", replicates="bptt", shared=0, same_outcome=0, max_l2_gap=float("nan"))
    assert replica_sentence(none, "the first seed").endswith("no sample is stored for both yet.")


def test_claims_say_what_they_rest_on(tmp_path):
    pd.DataFrame(
        dict(comparison=["sdo vs adjoint"], n_pairs=[150], n_pairs_planned=[600])
        | dict(reference_success_pct=[90.0], reference_ci_lo_pct=[84.0], reference_ci_hi_pct=[94.0])
        | dict(other_success_pct=[30.0], other_ci_lo_pct=[23.0], other_ci_hi_pct=[38.0])
        | dict(only_reference_succeeds=[90], only_other_succeeds=[0], mcnemar_p=[1e-10])
        | dict(share_lo=[0.96], share_hi=[1.0], perceptual_other_minus_ref=[0.1])
        | dict(perceptual_diff_lo=[0.05], perceptual_diff_hi=[0.2])
    ).to_csv(tmp_path / "adversarial-gd-paired.csv")
    table = claims(tmp_path)
    assert set(table.rests_on) == {"partial: 150 of 600 planned paired samples (25 %)"}
    assert set(table.verdict) == {"reproduces"}  # the interval decides; partial data only widens it


def test_a_chunk_stored_with_other_settings_is_refused(digits_task, tmp_path):
    run_adversarial(small(), ["sdo"], tmp_path, digits_task, ChunkRunner(tmp_path, max_chunks=2))
    with pytest.raises(ValueError, match=r"lr: 3\.0 -> 2\.0.*delete that chunk file"):
        run_adversarial(small(lr=2.0), ["sdo"], tmp_path, digits_task, ChunkRunner(tmp_path))


def test_chunk_files_are_written_whole_and_checked_on_load(tmp_path):
    save_chunk(tmp_path, "a/b", dict(steps=3, seeds=(0, 1)), dict(x=torch.ones(2)), prov={})
    assert [p.name for p in chunk_path(tmp_path, "a/b").parent.iterdir()] == ["b.pt"]
    assert torch.equal(load_chunk(tmp_path, "a/b", dict(steps=3, seeds=[0, 1]))["result"]["x"], torch.ones(2))
    with pytest.raises(ValueError, match=r"steps: 3 -> 4"):
        load_chunk(tmp_path, "a/b", dict(steps=4, seeds=(0, 1)))
    assert load_chunk(tmp_path, "a/c", {}) is None


@pytest.mark.parametrize("update", ["gd", "sign"])
@pytest.mark.parametrize("estimator", ["sdo", "bptt", "reversible"])
def test_dropping_settled_samples_keeps_the_full_loops_deltas(digits_task, update, estimator):
    """In float64, so that the batch size's effect on rounding stays far below the tolerance."""
    model, classifier = copy.deepcopy(digits_task.model).double(), digits_task.attacked.double()
    cfg = small(update=update, opt_steps=6, lr=3.0 if update == "gd" else 0.15)
    z, labels = latents(model, 6, 3).double(), torch.arange(6)
    cond = class_cond(model, labels).double()
    run = {
        compact: attack_batch(model, classifier, z, labels, estimator, cfg, cond, compact)
        for compact in (True, False)
    }
    assert sum(run[True]["sizes"]) < sum(run[False]["sizes"]) == 6 * cfg.opt_steps  # samples did leave
    assert torch.allclose(run[True]["delta"], run[False]["delta"], rtol=0, atol=1e-9)
    assert run[True]["losses"] == pytest.approx(run[False]["losses"], rel=1e-9, abs=1e-9)


def test_every_task_estimator_gives_a_per_sample_gradient():
    """Dropping samples is exact only when sample b's gradient ignores the others: checked in float64 on the
    task's GroupNorm UNet with classifier-free guidance (a batch of 2 vs its second sample alone)."""
    from sdo.models.trained import fmnist_classifier

    model = copy.deepcopy(sdo.models.get("fmnist-ddpm-v2", guidance=3.0)).double()
    classifier = fmnist_classifier().double()
    z, labels = latents(model, 2, 0).double(), torch.tensor([3, 7])
    cond, cfg = class_cond(model, labels).double(), AdversarialConfig(steps=2, kappa=100.0)

    def gradient(estimator, rows):
        problem = attack_problem(model, classifier, z[rows], labels[rows], cfg, cond[rows])
        return sdo.estimators.get(estimator)(problem).grads["latent"]

    for estimator in DEFAULT_ESTIMATORS:
        whole, alone = gradient(estimator, slice(0, 2)), gradient(estimator, slice(1, 2))
        assert torch.allclose(whole[1:], alone, rtol=1e-9, atol=1e-9 * whole.abs().max()), estimator
