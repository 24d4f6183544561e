"""Adapters that put diffusers UNets (and an AutoencoderKL decoder) behind the Denoiser interface."""

from __future__ import annotations

import torch
from torch import nn

from ..schedule import NoiseSchedule
from .base import Denoiser, timestep_batch


class UNetDenoiser(Denoiser):
    """A diffusers `UNet2DModel` (class labels as c) or `UNet2DConditionModel` (prompt embedding as c)."""

    def __init__(
        self,
        unet: nn.Module,
        schedule: NoiseSchedule,
        prediction_type: str = "epsilon",
        cond_shape: tuple[int, ...] | None = None,
        decoder: nn.Module | None = None,
    ):
        cfg = unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        super().__init__(schedule, prediction_type, (cfg.in_channels, size, size), cond_shape, decoder)
        self.unet = unet
        self.cross_attention = hasattr(cfg, "cross_attention_dim") and cfg.cross_attention_dim is not None

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None) -> torch.Tensor:
        t = timestep_batch(t, x)
        if self.cross_attention:
            if cond is None:
                raise ValueError(
                    "this UNet2DConditionModel needs a conditioning tensor (encoder_hidden_states)"
                )
            return self.unet(x, t, encoder_hidden_states=cond).sample
        return self.unet(x, t, class_labels=cond).sample

    def network_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if n.startswith("unet.")}


class LatentDecoder(nn.Module):
    """D(x_0) = vae.decode(x_0 / scaling_factor): the AutoencoderKL decoder half only."""

    def __init__(self, vae: nn.Module, scaling_factor: float):
        super().__init__()
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder
        self.scaling_factor = scaling_factor

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z / self.scaling_factor))
