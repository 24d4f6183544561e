"""A small MLP denoiser with a sinusoidal timestep embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..schedule import NoiseSchedule
from .base import Denoiser, timestep_batch


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The DDPM/Transformer sinusoidal embedding of timesteps t (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    ang = t[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


class MLPDenoiser(Denoiser):
    """f_theta(x, t, c) = MLP([x, emb(t), c]) on flattened samples."""

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 64,
        depth: int = 2,
        temb: int = 16,
        cond_dim: int | None = None,
        sample_shape: tuple[int, ...] | None = None,
        schedule: NoiseSchedule | None = None,
        prediction_type: str = "epsilon",
        seed: int = 0,
    ):
        super().__init__(
            schedule or NoiseSchedule(),
            prediction_type,
            sample_shape or (dim,),
            None if not cond_dim else (cond_dim,),
        )
        self.temb = temb
        layers: list[nn.Module] = []
        width = dim + temb + (cond_dim or 0)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for _ in range(depth):
                layers += [nn.Linear(width, hidden), nn.SiLU()]
                width = hidden
            layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        t = timestep_batch(t, flat) / self.schedule.num_train_timesteps
        parts = [flat, sinusoidal_embedding(t * 1000.0, self.temb)]
        if cond is not None:
            parts.append(cond.reshape(x.shape[0], -1).to(flat.dtype))
        return self.net(torch.cat(parts, dim=-1)).reshape(x.shape)
