"""Gram-matrix style loss on a feature extractor (Gatys et al.; the paper's style guidance, Sec. 5.1.2)."""

from __future__ import annotations

import torch
from torch import nn

from .features import ConvFeatures


def gram(f: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C H W) per batch element, F of shape (B, C, H, W)."""
    b, c = f.shape[:2]
    flat = f.reshape(b, c, -1)
    return flat @ flat.transpose(1, 2) / flat.shape[1:].numel()


class GramStyle(nn.Module):
    """J(x) = sum_l mean (G(F_l(x)) - G(F_l(ref)))^2 over the extractor's feature maps."""

    def __init__(self, reference: torch.Tensor, features: nn.Module | None = None):
        super().__init__()
        if reference.dim() != 4:
            raise ValueError(
                f"style reference must be an image batch (B, C, H, W); got {tuple(reference.shape)}"
            )
        self.features = features or ConvFeatures(reference.shape[1])
        self.reference = reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x)
        with torch.no_grad():
            refs = self.features(self.reference.to(x))
        return sum(((gram(f) - gram(r)) ** 2).mean() for f, r in zip(feats, refs))
