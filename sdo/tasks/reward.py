"""Reward fine-tuning with LoRA (paper Sec. 5.2, Eq. 27; Figs. 11 and 13) on fmnist-ddpm via peft:
SDO (random step, seeded) vs AlignProp-uniform vs last-step truncation (AlignProp-1) vs BPTT."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from .. import estimators, objectives, samplers
from ..problem import Problem
from .common import RESULTS, Stopwatch, image_grid, save_json, trained_models, write_table
from .sampling import latents, sample_from_latent

REWARDS = ("class", "brightness")
METHODS = {  # label -> (estimator, options)
    "sdo": ("sdo", {}),
    "alignprop-uniform": ("alignprop", {}),
    "alignprop-1 (last step)": ("truncated", {"K": 1}),
    "bptt": ("bptt", {}),
}
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"]
LORA_PATTERN = r"\.lora_"


@dataclass
class RewardConfig:
    """Task settings (defaults: the CPU-sized `make tasks` run); AdamW as in the paper (betas, wd 1e-4)."""

    batch: int = 8
    steps: int = 10
    opt_steps: int = 30
    lr: float = 3e-3
    rank: int = 4
    clip: float = 1.0  # gradient-norm clipping (the paper clips too)
    target_class: int = 1  # Trouser
    eval_n: int = 32
    eval_every: int = 10  # also log the reward of the fixed eval latents every this many steps
    seed: int = 0

    def __post_init__(self):
        if self.batch < 1 or self.steps < 1 or self.opt_steps < 0 or self.rank < 1:
            raise ValueError("need batch >= 1, steps >= 1, opt_steps >= 0, rank >= 1")
        if not 0 <= self.target_class < 10:
            raise ValueError(f"target_class must be a Fashion-MNIST class 0..9; got {self.target_class}")


def reward_fn(kind: str, classifier, target_class: int):
    """r(x): the classifier's log p(target | x) ('class'), or the mean pixel intensity ('brightness')."""
    if kind == "class":
        return lambda x: classifier(x.clamp(-1, 1)).log_softmax(1)[:, target_class].mean()
    if kind == "brightness":
        return lambda x: x.clamp(-1, 1).mean()
    raise ValueError(f"unknown reward {kind!r}; valid: {', '.join(REWARDS)}")


def add_lora(model, rank: int, seed: int):
    """A copy of the denoiser with LoRA adapters (peft) on attention projections and resnet convs."""
    from peft import LoraConfig, inject_adapter_in_model

    model = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS), model.unet)
    return model


def lora_parameters(model) -> dict[str, torch.nn.Parameter]:
    """The adapter parameters (names containing '.lora_')."""
    return {n: p for n, p in model.named_parameters() if ".lora_" in n}


@torch.no_grad()
def scale_lora(model, alpha: float):
    """theta_old + alpha * theta_LoRA: a copy with every lora_B scaled by alpha (Fig. 13)."""
    out = copy.deepcopy(model)
    for n, p in out.named_parameters():
        if ".lora_B" in n:
            p.mul_(alpha)
    return out


def problem_for(model, z, reward, steps: int) -> Problem:
    """The fine-tuning problem: minimise -r(x_0) wrt the LoRA parameters."""
    objective = objectives.get("callable", fn=lambda x: -reward(x))
    return Problem(
        model,
        samplers.get("ddim", steps=steps),
        objective,
        wrt="params",
        params=[LORA_PATTERN],
        batch=len(z),
        latent=z,
    )


@torch.no_grad()
def eval_reward(model, reward, cfg: RewardConfig) -> float:
    """Mean reward of eval_n samples from fixed latents (seed 10_000)."""
    return reward(sample_from_latent(model, latents(model, cfg.eval_n, 10_000), cfg.steps)).item()


def finetune(base, reward, method: str, cfg: RewardConfig) -> dict:
    """Fine-tune LoRA adapters with one method; per-step reward, cumulative wall time and gradient norm."""
    name, opts = METHODS[method]
    est = estimators.get(name, **({"seed": cfg.seed} if name in ("sdo", "alignprop") else {}), **opts)
    model = add_lora(base, cfg.rank, cfg.seed)
    params = list(lora_parameters(model).values())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=1e-4)
    log, wall, status = [], 0.0, "ok"
    for step in range(cfg.opt_steps):
        z = latents(base, cfg.batch, cfg.seed * 100_000 + step)
        with Stopwatch() as clock:
            problem = problem_for(model, z, reward, cfg.steps)
            res = est(problem)
            if res.ok:
                grads = [res.grads[n] for n in problem.parameter_names()]
                for p, g in zip(problem.parameters().values(), grads):
                    p.grad = g
                norm = torch.nn.utils.clip_grad_norm_(list(problem.parameters().values()), cfg.clip).item()
                opt.step()
                opt.zero_grad(set_to_none=True)
        if not res.ok:
            status = res.status
            break
        wall += clock.seconds
        entry = dict(step=step + 1, reward=-res.loss, wall_s=wall, grad_norm=norm)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.opt_steps:
            entry["eval_reward"] = eval_reward(model, reward, cfg)
        log.append(entry)
    return dict(model=model, log=log, status=status)


def gradient_norm_vs_depth(base, reward, cfg: RewardConfig) -> pd.DataFrame:
    """Fig. 11a: ||dJ/dtheta|| (all UNet weights) when backpropagating through the last K steps (truncated
    BPTT, K = N is full BPTT) vs SDO's single retained step at depth K (i' = K)."""
    z = latents(base, cfg.batch, cfg.seed + 7)
    objective = objectives.get("callable", fn=lambda x: -reward(x))
    problem = Problem(
        base, samplers.get("ddim", steps=cfg.steps), objective, wrt="params", batch=len(z), latent=z
    )
    rows = []
    for k in range(1, cfg.steps + 1):
        for label, est in (
            ("backprop depth K", estimators.get("truncated", K=k)),
            ("sdo (step i'=K)", estimators.get("sdo", step=k)),
        ):
            res = est(problem)
            rows.append(
                dict(
                    depth=k, method=label, status=res.status, grad_norm=res.norm() if res.ok else float("nan")
                )
            )
    return pd.DataFrame(rows)


def run_reward(
    cfg: RewardConfig | None = None, methods=None, rewards=REWARDS, out: Path = RESULTS
) -> pd.DataFrame:
    """Reward curves (step and wall time), eval rewards, Fig. 11a and Fig. 13 analogues; writes reward-*."""
    cfg = cfg or RewardConfig()
    base, classifier = trained_models()
    methods = list(methods or METHODS)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; valid: {', '.join(METHODS)}")
    rows, curves, tuned = [], {}, {}
    for kind in rewards:
        reward = reward_fn(kind, classifier, cfg.target_class)
        before = eval_reward(base, reward, cfg)
        for method in tqdm(methods, desc=f"reward {kind}"):
            run = finetune(base, reward, method, cfg)
            log = pd.DataFrame(run["log"])
            curves[f"{kind}/{method}"] = run["log"]
            tuned[(kind, method)] = run["model"]
            last = log.tail(5)
            rows.append(
                dict(
                    reward=kind,
                    method=method,
                    status=run["status"],
                    eval_before=before,
                    eval_after=eval_reward(run["model"], reward, cfg)
                    if run["status"] == "ok"
                    else float("nan"),
                    train_reward_last5=last.reward.mean() if len(log) else float("nan"),
                    wall_s=log.wall_s.iloc[-1] if len(log) else float("nan"),
                    s_per_step=(log.wall_s.iloc[-1] / len(log)) if len(log) else float("nan"),
                    grad_norm_median=log.grad_norm.median() if len(log) else float("nan"),
                )
            )
    df = pd.DataFrame(rows)
    write_table(df, "reward-finetune", out)
    save_json(dict(config=vars(cfg), curves=curves), out / "reward-curves.json")
    plot_curves(curves, rewards, methods, out / "reward-curves.png")
    depth = gradient_norm_vs_depth(base, reward_fn("class", classifier, cfg.target_class), cfg)
    write_table(depth, "reward-gradnorm-depth", out)
    plot_depth(depth, out / "reward-gradnorm-depth.png")
    if ("class", "sdo") in tuned:
        lora_interpolation(tuned, classifier, cfg, out)
    return df


def lora_interpolation(tuned, classifier, cfg: RewardConfig, out: Path) -> None:
    """Fig. 13: samples and rewards at LoRA scales alpha (theta_old + alpha theta_LoRA), plus the two rewards'
    LoRAs combined (sum of their weight deltas)."""
    z = latents(tuned[("class", "sdo")], min(8, cfg.eval_n), 10_000)
    reward = reward_fn("class", classifier, cfg.target_class)
    grids, labels, rows = [], [], []
    for alpha in (0.0, 0.5, 1.0, 1.5, 2.0):
        m = scale_lora(tuned[("class", "sdo")], alpha)
        x = sample_from_latent(m, z, cfg.steps).clamp(-1, 1)
        grids.append(x)
        labels.append(f"class LoRA x{alpha}")
        rows.append(
            dict(lora="class", alpha=alpha, class_reward=reward(x).item(), brightness=x.mean().item())
        )
    if ("brightness", "sdo") in tuned:
        combo = merged(tuned[("class", "sdo")], tuned[("brightness", "sdo")])
        x = sample_from_latent(combo, z, cfg.steps).clamp(-1, 1)
        grids.append(x)
        labels.append("class + brightness")
        rows.append(
            dict(
                lora="class+brightness", alpha=1.0, class_reward=reward(x).item(), brightness=x.mean().item()
            )
        )
    write_table(pd.DataFrame(rows), "reward-lora-scale", out)
    image_grid(grids, labels, out / "reward-lora-scale.png", "LoRA scale interpolation (SDO fine-tuned)")


@torch.no_grad()
def merged(a, b):
    """theta_old + dtheta_a + dtheta_b: b's adapters added as extra weight deltas on a copy of a."""
    out = copy.deepcopy(a)
    pa = dict(out.named_modules())
    for name, mod in b.named_modules():
        if hasattr(mod, "get_delta_weight") and hasattr(mod, "base_layer"):
            pa[name].base_layer.weight.add_(mod.get_delta_weight("default"))
    return out


def plot_curves(curves: dict, rewards, methods, path: Path) -> None:
    """Fig. 11b/c analogue: reward vs optimiser step and vs wall time, one row per reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rewards), 2, figsize=(9, 3.2 * len(rewards)), squeeze=False)
    for r, kind in enumerate(rewards):
        for method in methods:
            log = pd.DataFrame(curves.get(f"{kind}/{method}", []))
            if log.empty:
                continue
            line = axes[r][0].plot(log.step, log.reward, alpha=0.5, label=method)[0]
            axes[r][1].plot(log.wall_s, log.reward, alpha=0.5, color=line.get_color(), label=method)
            if "eval_reward" in log:
                ev = log.dropna(subset=["eval_reward"])
                axes[r][0].plot(ev.step, ev.eval_reward, "o-", color=line.get_color(), lw=2)
                axes[r][1].plot(ev.wall_s, ev.eval_reward, "o-", color=line.get_color(), lw=2)
        axes[r][0].set(xlabel="optimiser step", ylabel=f"{kind} reward (thin: batch, dots: eval set)")
        axes[r][1].set(xlabel="wall time (s, excluding evaluation)", ylabel=f"{kind} reward")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_depth(df: pd.DataFrame, path: Path) -> None:
    """Fig. 11a analogue: gradient norm vs backprop depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for method, g in df.groupby("method"):
        ax.plot(g.depth, g.grad_norm, marker="o", label=method)
    ax.set(xlabel="backprop depth K (steps from the end)", ylabel="||dJ/dtheta||", yscale="log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
