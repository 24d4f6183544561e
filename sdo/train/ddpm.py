"""Train the suite's DDPMs: epsilon prediction (Ho et al.), EMA of the weights, optional class conditioning with
label dropout (classifier-free guidance) and min-SNR loss weighting; resumable bit-exactly.

Every step's batch and noise are a function of (seed, step) alone, so a run stopped at step k and resumed from
its checkpoint (weights, EMA, optimizer, step) continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..schedule import DDPM_SCHEDULE
from .common import ProgressLog, load_checkpoint, save_checkpoint, save_safetensors

WEIGHTS = ("ema", "raw")  # ship the EMA of the weights, or the final training weights


@dataclass
class DDPMRecipe:
    """What to train and how; `classes` > 0 makes it class-conditional with `label_dropout` to the null class."""

    make_unet: Callable[[], torch.nn.Module]
    steps: int = 6000
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 200
    ema_decay: float = 0.999
    seed: int = 0
    classes: int = 0
    label_dropout: float = 0.1
    min_snr: float = 0.0
    checkpoint_every: int = 250
    snapshots: tuple[int, ...] = field(default=())


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator for one training step's timesteps, noise and label dropout."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step + 1)


class EpochBatches:
    """Minibatch indices for any step: epoch e's permutation is seeded by (seed, e), so no iterator state."""

    def __init__(self, n: int, batch: int, seed: int):
        self.n, self.batch, self.seed, self._perm = n, batch, seed, (None, None)

    def indices(self, step: int) -> torch.Tensor:
        per_epoch = self.n // self.batch
        epoch, k = divmod(step, per_epoch)
        if self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1][k * self.batch : (k + 1) * self.batch]


def loss_weights(abar_t: torch.Tensor, min_snr: float) -> torch.Tensor:
    """min(SNR, gamma) / SNR for epsilon prediction (Hang et al. 2023); ones when gamma = 0."""
    if min_snr <= 0:
        return torch.ones_like(abar_t)
    snr = abar_t / (1 - abar_t)
    return snr.clamp(max=min_snr) / snr


def ddpm_loss(unet, x0, labels, abar, recipe: DDPMRecipe, g: torch.Generator) -> torch.Tensor:
    """E w(t) || eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, c) ||^2 (DDPM Eq. 14), t ~ U{0..T-1}."""
    t = torch.randint(0, abar.shape[0], (x0.shape[0],), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = abar[t].float()
    xt = a.sqrt().view(-1, 1, 1, 1) * x0 + (1 - a).sqrt().view(-1, 1, 1, 1) * eps
    kwargs = {}
    if recipe.classes:
        drop = torch.rand(x0.shape[0], generator=g) < recipe.label_dropout
        kwargs["class_labels"] = torch.where(drop, torch.full_like(labels, recipe.classes), labels)
    per_sample = F.mse_loss(unet(xt, t, **kwargs).sample, eps, reduction="none").mean((1, 2, 3))
    return (loss_weights(a, recipe.min_snr) * per_sample).mean()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)


def lr_at(step: int, lr: float, warmup: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to 10% of lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(frac * torch.pi)).item()))


def _state(unet, ema, opt, step, wall, losses) -> dict:
    return dict(
        unet=unet.state_dict(),
        ema=ema.state_dict(),
        opt=opt.state_dict(),
        step=step,
        wall_s=wall,
        losses=losses,
    )


def train_ddpm(
    recipe: DDPMRecipe,
    data: torch.Tensor,
    labels: torch.Tensor,
    out: Path,
    work: Path,
    stop_at: int | None = None,
    resume: bool = True,
    weights: str = "ema",
    name: str = "ddpm",
) -> dict:
    """Train (resuming from work/ckpt.pt if present) and write the EMA (or raw) weights to `out`.

    The learning-rate schedule spans `recipe.steps`; `stop_at` ends this run early on that schedule (a time
    budget); a later run with resume continues. EMA snapshots at `recipe.snapshots` go to work/snapshots/
    (float16: they serve studies of accuracy against training progress, not further training).
    """
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; valid: {', '.join(WEIGHTS)}")
    stop = recipe.steps if stop_at is None else stop_at
    if not 1 <= stop <= recipe.steps:
        raise ValueError(f"stop_at must be in 1..steps={recipe.steps}; got {stop_at}")
    work.mkdir(parents=True, exist_ok=True)
    if not resume:
        for stale in ("ckpt.pt", "log.jsonl"):
            (work / stale).unlink(missing_ok=True)
    torch.manual_seed(recipe.seed)
    unet = recipe.make_unet()
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.Adam(unet.parameters(), lr=recipe.lr)
    start, wall, losses = 0, 0.0, []
    ckpt = load_checkpoint(work / "ckpt.pt")
    if ckpt is not None:
        unet.load_state_dict(ckpt["unet"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        start, wall, losses = ckpt["step"], ckpt["wall_s"], ckpt["losses"]
    elif 0 in recipe.snapshots:
        save_safetensors(ema, work / "snapshots" / "ema-000000.safetensors", half=True)
    batches = EpochBatches(len(data), recipe.batch, recipe.seed)
    abar = DDPM_SCHEDULE.alphas_cumprod()
    log = ProgressLog(work / "log.jsonl", wall_offset=wall)
    unet.train()
    for step in tqdm(range(start, stop), initial=start, total=stop, desc=name, mininterval=30):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe.lr, recipe.warmup, recipe.steps)
        idx = batches.indices(step)
        loss = ddpm_loss(unet, data[idx], labels[idx], abar, recipe, step_generator(recipe.seed, step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema_update(ema, unet, min(recipe.ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        done = step + 1
        if done % 50 == 0:
            log.write(step=done, loss=sum(losses[-50:]) / 50)
        if done in recipe.snapshots:
            save_safetensors(ema, work / "snapshots" / f"ema-{done:06d}.safetensors", half=True)
        if done % recipe.checkpoint_every == 0 or done == stop:
            save_checkpoint(work / "ckpt.pt", **_state(unet, ema, opt, done, log.wall(), losses))
            save_safetensors(ema, work / "ema.safetensors")
    save_safetensors(ema if weights == "ema" else unet, out)
    tail = losses[-500:] or [float("nan")]
    return dict(
        steps=stop,
        schedule_steps=recipe.steps,
        batch=recipe.batch,
        lr=recipe.lr,
        ema_decay=recipe.ema_decay,
        classes=recipe.classes,
        label_dropout=recipe.label_dropout if recipe.classes else None,
        min_snr=recipe.min_snr,
        seed=recipe.seed,
        weights=weights,
        wall_s=log.wall(),
        final_loss=sum(tail) / len(tail),
    )
