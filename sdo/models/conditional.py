"""Class-conditional UNets with classifier-free guidance, conditioned on a (soft) one-hot class vector.

The conditioning c is a float vector over the classes (one-hot for a class, any mixture in between), so
wrt="cond" is differentiable: the class embedding is c @ E. The extra last row of E is the null class that
training drops labels to (classifier-free guidance, Ho & Salimans 2022).
"""

from __future__ import annotations

import torch
from torch import nn

from ..schedule import NoiseSchedule
from .base import timestep_batch
from .diffusers_unet import UNetDenoiser


class SoftLabelEmbedding(nn.Embedding):
    """nn.Embedding that also takes float class weights (B, k <= classes + 1): returns weights @ E[:k]."""

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.is_floating_point():
            return labels @ self.weight[: labels.shape[-1]]
        return super().forward(labels)


def soft_label_unet(unet: nn.Module) -> nn.Module:
    """Swap a diffusers UNet's class nn.Embedding for a SoftLabelEmbedding sharing its weight."""
    old = unet.class_embedding
    if not isinstance(old, nn.Embedding):
        raise ValueError("the UNet has no learned class embedding (set num_class_embeds)")
    new = SoftLabelEmbedding(old.num_embeddings, old.embedding_dim)
    new.weight = old.weight
    unet.class_embedding = new
    return unet


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Integer labels (B,) -> float one-hot (B, classes)."""
    return torch.nn.functional.one_hot(labels.long(), classes).float()


class GuidedUNetDenoiser(UNetDenoiser):
    """eps = eps(x, t, null) + w (eps(x, t, c) - eps(x, t, null)), c a (B, classes) class-weight vector.

    `guidance` w = 1 is the plain conditional model (one network evaluation); w != 1 evaluates the
    conditional and unconditional branches in one batch of 2B, and the pair counts as one network call m_i.
    """

    def __init__(self, unet: nn.Module, schedule: NoiseSchedule, classes: int, guidance: float = 1.0):
        if unet.config.num_class_embeds != classes + 1:
            raise ValueError(
                f"the UNet has {unet.config.num_class_embeds} class embeddings; need classes + 1 = {classes + 1}"
            )
        super().__init__(soft_label_unet(unet), schedule, "epsilon", cond_shape=(classes,))
        self.classes, self.guidance = classes, float(guidance)

    def default_cond(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Random classes, one-hot (B, classes), drawn from `generator`."""
        return one_hot(torch.randint(0, self.classes, (batch,), generator=generator), self.classes)

    def null_cond(self, like: torch.Tensor) -> torch.Tensor:
        """The null class as a (B, classes + 1) one-hot on the extra embedding row."""
        null = torch.zeros(like.shape[0], self.classes + 1, dtype=like.dtype, device=like.device)
        null[:, -1] = 1.0
        return null

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ValueError(f"this model needs a class vector cond of shape (B, {self.classes})")
        t = timestep_batch(t, x)
        if self.guidance == 1.0:
            return self.unet(x, t, class_labels=cond).sample
        padded = torch.nn.functional.pad(cond, (0, 1))
        both = self.unet(
            torch.cat([x, x]), torch.cat([t, t]), class_labels=torch.cat([padded, self.null_cond(cond)])
        ).sample
        eps_c, eps_u = both.chunk(2)
        return eps_u + self.guidance * (eps_c - eps_u)
