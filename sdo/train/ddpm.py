"""Train fmnist-ddpm: epsilon-prediction DDPM (Ho et al.) on Fashion-MNIST with an EMA of the weights."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data import fmnist_tensors
from ..models.trained import fmnist_unet
from ..schedule import DDPM_SCHEDULE
from .common import ProgressLog, infinite_batches, load_checkpoint, save_checkpoint, save_safetensors

WEIGHTS = ("ema", "raw")  # ship the EMA of the weights, or the final training weights


def ddpm_loss(unet, x0: torch.Tensor, abar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """|| eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t) ||^2, t ~ U{0..T-1} (DDPM Eq. 14)."""
    t = torch.randint(0, abar.shape[0], (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    a = abar[t].float().view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    return F.mse_loss(unet(xt, t).sample, eps)


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


def train_ddpm(
    out: Path,
    steps: int = 6000,
    batch: int = 64,
    lr: float = 2e-3,
    warmup: int = 200,
    ema_decay: float = 0.999,
    seed: int = 0,
    checkpoint_every: int = 250,
    work: Path | None = None,
    stop_at: int | None = None,
    resume: bool = True,
    weights: str = "ema",
) -> dict:
    """Train (resuming from work/ckpt.pt if present) and write the EMA (or raw) weights to `out`.

    The learning-rate schedule spans `steps`; `stop_at` ends training early on that schedule (a time budget).
    """
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; valid: {', '.join(WEIGHTS)}")
    stop = steps if stop_at is None else stop_at
    if not 1 <= stop <= steps:
        raise ValueError(f"stop_at must be in 1..steps={steps}; got {stop_at}")
    work = Path(work or out.parent / "work-fmnist-ddpm")
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = fmnist_unet()
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.Adam(unet.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start, wall, losses = 0, 0.0, []
    if not resume:
        for stale in ("ckpt.pt", "log.jsonl"):
            (work / stale).unlink(missing_ok=True)
    ckpt = load_checkpoint(work / "ckpt.pt")
    if ckpt is not None:
        unet.load_state_dict(ckpt["unet"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        gen.set_state(ckpt["gen"])
        start, wall, losses = ckpt["step"], ckpt["wall_s"], ckpt["losses"]
    data, labels = fmnist_tensors("train")
    batches = infinite_batches(data, labels, batch, gen)
    abar = DDPM_SCHEDULE.alphas_cumprod()
    log = ProgressLog(work / "log.jsonl", wall_offset=wall)
    for step in tqdm(range(start, stop), initial=start, total=stop, desc="fmnist-ddpm", mininterval=30):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, lr, warmup, steps)
        x0, _ = next(batches)
        loss = ddpm_loss(unet, x0, abar, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema_update(ema, unet, ema_decay if step >= warmup else 0.0)
        losses.append(loss.item())
        done = step + 1
        if done % 50 == 0:
            log.write(step=done, loss=sum(losses[-50:]) / 50)
        if done % checkpoint_every == 0 or done == stop:
            state = dict(unet=unet.state_dict(), ema=ema.state_dict(), opt=opt.state_dict())
            save_checkpoint(
                work / "ckpt.pt", **state, gen=gen.get_state(), step=done, wall_s=log.wall(), losses=losses
            )
            save_safetensors(ema, work / "ema.safetensors")
    save_safetensors(ema if weights == "ema" else unet, out)
    final = sum(losses[-500:]) / len(losses[-500:])
    return dict(
        steps=stop,
        schedule_steps=steps,
        batch=batch,
        lr=lr,
        ema_decay=ema_decay,
        seed=seed,
        wall_s=log.wall(),
        final_loss=final,
    )
