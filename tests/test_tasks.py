"""The tasks: exclusions decided once and applied to every method alike, delta inside its L-inf ball, LoRA
fine-tuning touches only the adapters, the README's verdicts follow the intervals, and the quick settings run
every task end to end with provenance in every output."""

import json

import pandas as pd
import pytest
import torch
from torch import nn

import sdo
from sdo.tasks.adversarial import (
    ADJUSTED_VERDICTS,
    AdversarialConfig,
    attack_batch,
    candidates,
    margin_objective,
    run_adversarial,
)
from sdo.tasks.common import TaskModels
from sdo.tasks.report import claims
from sdo.tasks.reward import (
    RewardConfig,
    add_lora,
    class_log_odds,
    finetune,
    lora_parameters,
    reward_fn,
    run_reward,
)
from sdo.tasks.sampling import class_cond, coupled_sample_from_latent, latents, sample_from_latent
from sdo.tasks.style import ShiftedSolver, StyleConfig, optimise


class Stub(nn.Module):
    """A classifier on 8x8 images that prefers class `favourite` (logit 5) and depends smoothly on x."""

    def __init__(self, favourite: int):
        super().__init__()
        self.favourite = favourite

    def penultimate(self, x):
        return x.flatten(1)

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10, dtype=x.dtype)
        logits[:, self.favourite] = 5.0
        return logits + 0.1 * torch.tanh(x.flatten(1)[:, :10])


@pytest.fixture(scope="module")
def digits():
    return sdo.models.get("digits-ddpm", conditional=True)


def cfg(**kw):
    base = dict(n=3, steps=4, opt_steps=2, seeds=(0,), batch=3, fid_reference=0, pool_factor=10)
    return AdversarialConfig(**(base | kw))


def test_attacked_misclassifications_are_excluded(digits):
    tm = TaskModels(digits, Stub(0), Stub(0), "digits")
    cand = candidates(tm, cfg(), seed=0, coupled=False)
    assert cand["labels"].tolist() == [0, 0, 0]  # classes cycle 0..9; the stub gets only class 0 right
    assert cand["counts"] == dict(candidates=30, misclassified=27, rejected_by_judge=27, excluded=27)


def test_judge_rejections_are_excluded(digits):
    tm = TaskModels(digits, Stub(0), Stub(1), "digits")  # the judge never sees class 0
    with pytest.raises(ValueError, match="pass the exclusions"):
        candidates(tm, cfg(), seed=0, coupled=False)


def test_every_method_gets_the_same_kept_samples(digits, tmp_path):
    tm = TaskModels(digits, Stub(0), Stub(0), "digits")
    run_adversarial(cfg(), ["sdo", "bptt", "reversible"], tmp_path, tm)
    df = pd.read_csv(tmp_path / "adversarial-gd-samples.csv")
    per_method = {m: list(zip(g["sample"], g.label)) for m, g in df.groupby("method")}
    assert set(per_method) == {"sdo", "bptt", "reversible"}
    assert len({tuple(v) for v in per_method.values()}) == 1
    assert all(label == 0 for _, label in per_method["sdo"])
    strata = pd.read_csv(tmp_path / "adversarial-gd-by-margin.csv")
    assert strata.groupby("method").n.sum().to_dict() == {"sdo": 3, "bptt": 3, "reversible": 3}
    adj = pd.read_csv(tmp_path / "adversarial-gd-adjusted.csv")
    assert set(adj.comparison) == {"sdo vs bptt", "sdo vs reversible"} and (adj.n_pairs == 3).all()
    assert set(adj.verdict) <= set(ADJUSTED_VERDICTS)


@pytest.mark.parametrize("update", ["gd", "sign"])
def test_delta_never_leaves_the_linf_ball(digits, update):
    c = cfg(tau=0.05, lr=10.0, update=update)
    z = torch.randn(3, 1, 8, 8)
    labels, cond = torch.zeros(3, dtype=torch.long), nn.functional.one_hot(torch.zeros(3).long(), 10).float()
    run = attack_batch(digits, Stub(0), z, labels, "sdo", c, cond)
    assert run["status"] == "ok" and len(run["losses"]) == 2
    assert run["delta"].abs().max().item() <= c.tau
    assert run["delta"].abs().max().item() == pytest.approx(c.tau)  # lr 10 saturates the budget


def test_margin_objective_is_negative_kappa_once_misclassified():
    clf = Stub(3)
    x = torch.zeros(1, 1, 8, 8)
    assert margin_objective(clf, torch.tensor([4]), kappa=0.5)(x).item() == pytest.approx(-0.5)


def test_shifted_solver_moves_x_k_by_the_offset(digits):
    solver = sdo.samplers.get("ddim", steps=3).build(digits)
    x, m = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8)
    shifted = ShiftedSolver(solver, k=1, offset=torch.ones(1))
    assert torch.allclose(shifted.step(2, x, m, ())[0], solver.step(2, x, m, ())[0] + 1)
    assert torch.equal(shifted.step(3, x, m, ())[0], solver.step(3, x, m, ())[0])


@pytest.mark.parametrize("wrt", ["latent", "intermediate"])
def test_style_optimisation_does_not_depend_on_the_micro_batch(digits, wrt):
    objective = sdo.objectives.get("callable", fn=lambda x: (x - 0.3).pow(2).flatten(1).sum(1).mean())
    z = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = class_cond(digits, torch.arange(5))
    runs = {
        m: optimise(
            digits, objective, z, wrt, 2, "bptt", StyleConfig(n=5, steps=4, opt_steps=3, micro_batch=m), cond
        )
        for m in (5, 2, 1)
    }
    whole = runs[5]
    assert whole["status"] == "ok" and whole["losses"][-1] < whole["losses"][0]
    for m in (2, 1):
        assert torch.allclose(runs[m]["x"], whole["x"], atol=1e-5)
        assert runs[m]["losses"] == pytest.approx(whole["losses"], rel=1e-5)
    with pytest.raises(ValueError, match="micro_batch"):
        StyleConfig(micro_batch=0)


def test_lora_finetuning_changes_only_the_adapters():
    base = sdo.models.get("fmnist-ddpm")
    rcfg = RewardConfig(batch=1, steps=2, opt_steps=1, eval_n=2, seeds=(0,), prompts=(0,), held_out=(1,))
    reward = reward_fn("class-odds", sdo.models.trained.fmnist_classifier(), rcfg)
    run = finetune(base, reward, "sdo", rcfg, lr=1e-2, seed=0, classes=rcfg.prompts)
    assert run["status"] == "ok"
    tuned = run["model"].state_dict()
    for name, value in base.state_dict().items():
        key = name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(tuned.get(name, tuned.get(key)), value)
    assert any(p.abs().sum() > 0 for n, p in lora_parameters(run["model"]).items() if "lora_B" in n)
    assert set(lora_parameters(add_lora(base, 2, 0))) == set(lora_parameters(run["model"]))


def test_class_log_odds_against_probabilities_and_without_vanishing_gradient():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 9.0, 1.0]], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1])
    p = logits.softmax(1).gather(1, labels[:, None])[:, 0]
    odds = class_log_odds(logits, labels)
    assert torch.allclose(odds, (p / (1 - p)).log())
    (grad,) = torch.autograd.grad(odds[1], logits)
    # d/dz_c of the log-odds is 1 however confident the classifier is (log p's is 1 - p ~ 3e-4 here)
    assert grad[1, 1].item() == pytest.approx(1.0) and grad[1].sum().item() == pytest.approx(0.0)


def test_reward_task_rejects_unknown_rewards(tmp_path):
    with pytest.raises(ValueError, match="valid: class-odds, style"):
        run_reward(RewardConfig(), methods=["sdo"], rewards=["class"], out=tmp_path, tm=object())


def test_learning_rate_sweep_runs_as_long_as_the_fine_tuning_runs():
    # a rate that stays on the data for a short sweep can leave it over a longer run
    assert RewardConfig().sweep_steps == RewardConfig().opt_steps == 20
    assert RewardConfig(opt_steps=7).sweep_steps == 7
    assert RewardConfig(opt_steps=7, sweep_steps=3).sweep_steps == 3


def test_readme_verdicts_follow_the_intervals(tmp_path):
    pd.DataFrame(
        dict(
            comparison=["sdo vs adjoint", "sdo vs reversible"],
            n_pairs=[200, 200],
            n_pairs_planned=[200, 200],
            reference_success_pct=[90.0, 50.0],
            reference_ci_lo_pct=[85.0, 40.0],
            reference_ci_hi_pct=[95.0, 60.0],
            other_success_pct=[40.0, 51.0],
            other_ci_lo_pct=[30.0, 41.0],
            other_ci_hi_pct=[50.0, 61.0],
            only_reference_succeeds=[90, 10],
            only_other_succeeds=[10, 12],
            mcnemar_p=[1e-10, 0.8],
            share_lo=[0.82, 0.23],
            share_hi=[0.95, 0.66],
            perceptual_other_minus_ref=[-0.2, 0.01],
            perceptual_diff_lo=[-0.3, -0.01],
            perceptual_diff_hi=[-0.1, 0.03],
        )
    ).to_csv(tmp_path / "adversarial-gd-paired.csv")
    table = claims(tmp_path).set_index("claim").verdict
    assert table.filter(like="AdjointDPM").item() == "reproduces"
    assert table.filter(like="DOODL").item() == "inconclusive"
    assert table.filter(like="less than adjoint").item() == "contradicts"


@pytest.mark.slow
def test_quick_tasks_run_end_to_end_with_provenance(tmp_path):
    from sdo.tasks.__main__ import main

    rc = main(
        ["all", "--quick", "--model", "fmnist-ddpm", "--out", str(tmp_path), "--update", "gd"]
        + ["--estimators", "sdo", "reversible", "--methods", "sdo", "alignprop-uniform"]
        + ["--set", "adversarial.steps=4"]  # the candidate pool's sampling dominates; 4 steps keep it short
    )
    assert rc == 0
    for name in ("adversarial-gd", "style", "reward-curves", "reward-timing"):
        prov = json.loads((tmp_path / f"{name}.json").read_text())["provenance"]
        assert {"git_commit", "torch_version", "threads", "date", "command"} <= set(prov)
    assert pd.read_csv(tmp_path / "reward-timing.csv").rounds.item() == 2
    assert len(pd.read_csv(tmp_path / "reward-timing-rounds.csv")) == 4
    assert {"held_out_fid_drift", "on_data"} <= set(pd.read_csv(tmp_path / "reward-sweep.csv").columns)
    assert (tmp_path / "reward-samples.png").stat().st_size > 0
    table = pd.read_csv(tmp_path / "adversarial-gd.csv")
    assert set(table.method) == {"sdo", "reversible"} and (table.n == 8).all()
    assert {"ci_lo_pct", "ci_hi_pct", "perceptual", "fid_change"} <= set(table.columns)
    readme = (tmp_path / "README.md").read_text()
    assert "| claim | ours | verdict | rests_on |" in readme
    assert "`adversarial-gd.json`: complete: 4 chunks" in readme and "partial:" not in readme


@pytest.mark.slow
def test_quick_tasks_with_no_time_left_build_partial_tables(tmp_path):
    from sdo.tasks.__main__ import main

    args = ["all", "--quick", "--model", "fmnist-ddpm", "--out", str(tmp_path), "--update", "gd"]
    assert main(args + ["--estimators", "sdo", "--methods", "sdo", "--max-minutes", "0"]) == 0
    assert not list((tmp_path / "chunks").rglob("*.pt"))
    for name, count in (("adversarial-gd", "n"), ("style", "n"), ("reward-finetune", "seeds")):
        table = pd.read_csv(tmp_path / f"{name}.csv")
        assert len(table) and (table[count] == 0).all() and not table.complete.any(), name
    readme = (tmp_path / "README.md").read_text()
    for name in ("adversarial-gd", "style", "reward-curves"):
        assert f"`{name}.json`: partial: 0 of" in readme
    assert "not measured yet" in readme


def test_set_overrides_one_task_and_rejects_malformed_items():
    from sdo.tasks.__main__ import settings

    assert settings("adversarial", False, [1], ["adversarial.n=50", "reward.batch=4"]) == dict(
        seeds=(1,), n=50
    )
    assert settings("reward", True, None, ["reward.batch=4"])["batch"] == 4
    with pytest.raises(ValueError, match="TASK.KEY=VALUE"):
        settings("style", False, None, ["n=5"])


@pytest.mark.slow
def test_style_runs_a_replica_on_the_first_seed_only_and_checks_it(tmp_path):
    from sdo.tasks.__main__ import main

    args = ["style", "--quick", "--model", "fmnist-ddpm", "--out", str(tmp_path)]
    assert main(args + ["--estimators", "bptt", "checkpoint"]) == 0
    stored = sorted(
        p.relative_to(tmp_path / "chunks").as_posix() for p in (tmp_path / "chunks").rglob("*.pt")
    )
    assert [p for p in stored if "checkpoint" in p] == [
        "style/seed0/x_N/checkpoint.pt",
        "style/seed0/x_t/checkpoint.pt",
    ]
    table = pd.read_csv(tmp_path / "style.csv")
    assert table.set_index(["variable", "method"]).n_planned.to_dict() == {
        ("x_N", "bptt"): 4,
        ("x_t", "bptt"): 4,
        ("x_N", "checkpoint"): 2,
        ("x_t", "checkpoint"): 2,
    }
    assert table.complete.all()
    (replica,) = json.loads((tmp_path / "style.json").read_text())["replicas"]
    assert (replica["shared"], replica["same_outcome"]) == (4, 4) and replica["max_l2_gap"] < 1e-3


@pytest.mark.slow
def test_style_measures_a_coupled_sampler_method_against_its_own_unguided_samples(tmp_path):
    from sdo.tasks.__main__ import main

    model = sdo.models.get("fmnist-ddpm")
    z = latents(model, 2, 0)
    assert not torch.allclose(
        coupled_sample_from_latent(model, z, 4), sample_from_latent(model, z, 4), atol=1e-3
    )
    args = ["style", "--quick", "--model", "fmnist-ddpm", "--out", str(tmp_path), "--seeds", "0"]
    assert main(args + ["--estimators", "reversible", "sdo", "--set", "style.opt_steps=0"]) == 0
    rows = pd.read_csv(tmp_path / "style-samples.csv")
    unmoved = rows[rows.variable == "x_N"]
    assert set(unmoved.method) == {"reversible", "sdo"}
    assert unmoved.style_ratio.to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert unmoved.pixel_l2.max() < 1e-4


def test_estimators_without_support_for_a_variable_are_named_with_the_valid_ones():
    from sdo.tasks.common import usable_estimators

    assert usable_estimators(["reversible", "sdo"], "intermediate") == ["sdo"]
    assert usable_estimators(["reversible"], "intermediate", required=False) == []
    with pytest.raises(ValueError, match=r"supports wrt='intermediate'; valid: \[.*'sdo'") as err:
        usable_estimators(["reversible"], "intermediate")
    assert "'reversible'" not in str(err.value).split("valid:")[1]


@pytest.mark.slow
def test_style_runs_an_estimator_at_the_variables_it_supports_only(tmp_path):
    from sdo.tasks.__main__ import main

    args = ["style", "--quick", "--model", "fmnist-ddpm", "--out", str(tmp_path), "--seeds", "0"]
    assert main(args + ["--estimators", "reversible"]) == 0
    table = pd.read_csv(tmp_path / "style.csv")
    assert list(zip(table.variable, table.method, table.n)) == [("x_N", "reversible", 2)]
