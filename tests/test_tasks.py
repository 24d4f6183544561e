"""Each task runs end to end on a tiny setting and writes its table and figure; the adversarial perturbation
stays inside its L-inf ball; LoRA fine-tuning changes only the adapter weights."""

import pandas as pd
import pytest
import torch

import sdo
from sdo.data import INSTALL_HINT, fmnist_available
from sdo.models.trained import fmnist_classifier
from sdo.tasks.__main__ import TINY, run
from sdo.tasks.adversarial import AdversarialConfig, attack, margin_objective, pick_correct
from sdo.tasks.reward import RewardConfig, add_lora, finetune, lora_parameters, reward_fn, scale_lora
from sdo.tasks.style import ShiftedSolver

needs_fmnist = pytest.mark.skipif(not fmnist_available(), reason=f"Fashion-MNIST missing: {INSTALL_HINT}")


@pytest.fixture(scope="module")
def models():
    return sdo.models.get("fmnist-ddpm"), fmnist_classifier()


def test_adversarial_tiny_writes_table_and_figure(tmp_path):
    df = run("adversarial", tiny=True, out=tmp_path, estimators=["sdo", "bptt"], updates=["sign"])[
        "adversarial-sign"
    ]
    assert set(df.estimator) == {"sdo", "bptt"}
    for suffix in ("csv", "md", "png", "json"):
        assert (tmp_path / f"adversarial-sign.{suffix}").exists()
    table = pd.read_csv(tmp_path / "adversarial-sign.csv")
    assert {"success_pct", "pixel_l2", "ssim", "lpips", "wall_s"} <= set(table.columns)


@pytest.mark.parametrize("update", ["gd", "sign"])
def test_adversarial_delta_never_leaves_the_linf_ball(models, update):
    model, clf = models
    cfg = AdversarialConfig(n=2, steps=3, opt_steps=3, tau=0.05, lr=10.0, update=update, fid_reference=0)
    z, _, labels = pick_correct(model, clf, cfg)
    run_ = attack(model, clf, z, labels, "sdo", cfg)
    assert len(run_["losses"]) == 3
    assert run_["delta"].abs().max().item() <= cfg.tau
    assert run_["delta"].abs().max().item() == pytest.approx(cfg.tau)  # lr 10 saturates the budget


def test_margin_objective_is_negative_kappa_once_misclassified():
    clf = fmnist_classifier()
    x = torch.zeros(1, 1, 32, 32)
    wrong = clf(x).argmin(1)
    assert margin_objective(clf, wrong, kappa=0.5)(x).item() == pytest.approx(-0.5)


@needs_fmnist
def test_style_tiny_writes_table_and_figure(tmp_path):
    df = run("style", tiny=True, out=tmp_path, estimators=["sdo", "bptt"])["style"]
    assert len(df) == 4 and set(df.estimator) == {"sdo", "bptt"}
    assert (tmp_path / "style.png").exists() and (tmp_path / "style.md").exists()


def test_shifted_solver_moves_x_k_by_the_offset(models):
    model, _ = models
    solver = sdo.samplers.get("ddim", steps=3).build(model)
    x, m = torch.randn(1, 1, 32, 32), torch.randn(1, 1, 32, 32)
    shifted = ShiftedSolver(solver, k=1, offset=torch.ones(1))
    assert torch.allclose(shifted.step(2, x, m, ())[0], solver.step(2, x, m, ())[0] + 1)
    assert torch.equal(shifted.step(3, x, m, ())[0], solver.step(3, x, m, ())[0])


def test_reward_tiny_writes_tables_and_figures(tmp_path):
    df = run("reward", tiny=True, out=tmp_path, methods=["sdo", "bptt"])["reward"]
    assert len(df) == 4 and set(df.method) == {"sdo", "bptt"}
    for name in (
        "reward-finetune.md",
        "reward-curves.png",
        "reward-gradnorm-depth.md",
        "reward-gradnorm-depth.png",
    ):
        assert (tmp_path / name).exists()
    assert (tmp_path / "reward-lora-scale.png").exists()


def test_lora_finetuning_changes_only_adapter_weights(models):
    base, clf = models
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    cfg = RewardConfig(batch=1, steps=2, opt_steps=2, lr=1e-2)
    run_ = finetune(base, reward_fn("class", clf, cfg.target_class), "sdo", cfg)
    tuned = dict(run_["model"].named_parameters())
    adapters = lora_parameters(run_["model"])
    assert adapters and run_["status"] == "ok"
    changed = {
        n
        for n, p in tuned.items()
        if n not in adapters and not torch.equal(p, before[n.replace(".base_layer", "")])
    }
    assert changed == set()
    fresh = lora_parameters(add_lora(base, cfg.rank, cfg.seed))
    assert any(not torch.equal(adapters[n], fresh[n]) for n in adapters)
    assert all(torch.equal(p, before[n]) for n, p in base.named_parameters())  # base model untouched


def test_lora_scale_zero_recovers_the_base_model(models):
    base, clf = models
    cfg = RewardConfig(batch=1, steps=2, opt_steps=1, lr=1e-1)
    tuned = finetune(base, reward_fn("brightness", clf, 0), "bptt", cfg)["model"]
    x, t = torch.randn(1, 1, 32, 32), torch.tensor([500.0])
    with torch.no_grad():
        assert torch.allclose(scale_lora(tuned, 0.0)(x, t), base(x, t), atol=1e-6)
        assert not torch.allclose(tuned(x, t), base(x, t), atol=1e-6)


def test_tiny_settings_exist_for_every_task():
    assert set(TINY) == set(sdo.tasks.TASKS)
