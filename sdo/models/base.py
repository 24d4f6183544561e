"""The denoiser interface every model implements: m_i = f_theta(x_i, t_i, c)."""

from __future__ import annotations

import torch
from torch import nn

from ..schedule import NoiseSchedule

PREDICTION_TYPES = ("epsilon", "v_prediction", "flow")


class Denoiser(nn.Module):
    """A network call f_theta(x, t, c) with the metadata samplers need.

    Subclasses set `prediction_type` (epsilon, v_prediction or flow velocity), the training `schedule`,
    `sample_shape` (one sample, no batch), `cond_shape` (None when unconditional) and optionally a
    `decoder` mapping x_0 to the image J sees (latent models).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction_type: str,
        sample_shape: tuple[int, ...],
        cond_shape: tuple[int, ...] | None = None,
        decoder: nn.Module | None = None,
    ):
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"unknown prediction_type {prediction_type!r}; valid: {', '.join(PREDICTION_TYPES)}"
            )
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.sample_shape = tuple(sample_shape)
        self.cond_shape = None if cond_shape is None else tuple(cond_shape)
        self.decoder = decoder

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError("Denoiser subclasses implement forward(x, t, cond)")

    def network_parameters(self) -> dict[str, nn.Parameter]:
        """The denoiser's own parameters (theta), excluding the decoder's."""
        return {n: p for n, p in self.named_parameters() if not n.startswith("decoder.")}

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """D(x_0): the decoder for latent models, identity otherwise."""
        return x0 if self.decoder is None else self.decoder(x0)

    def default_cond(self, batch: int, generator: torch.Generator) -> torch.Tensor | None:
        """A reproducible conditioning tensor (e.g. a random prompt embedding); None if unconditional."""
        if self.cond_shape is None:
            return None
        return torch.randn((batch, *self.cond_shape), generator=generator)


def timestep_batch(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar timestep to one per batch element, in x's dtype and device."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.expand(x.shape[0]) if t.dim() == 0 else t
