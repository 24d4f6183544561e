"""Small seeded feature extractors and classifiers used as defaults for style and classifier objectives."""

from __future__ import annotations

import torch
from torch import nn


class ConvFeatures(nn.Module):
    """A fixed random conv stack returning its intermediate feature maps (for Gram-matrix losses)."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (16, 32), seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            chans = (in_channels, *widths)
            self.layers = nn.ModuleList(
                nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.SiLU()) for a, b in zip(chans[:-1], chans[1:])
            )
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class SmallClassifier(nn.Module):
    """A small CNN classifier (random weights unless trained); logits over `classes`."""

    def __init__(self, in_channels: int = 3, classes: int = 10, width: int = 16, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                nn.SiLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
            self.head = nn.Linear(2 * width, classes)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
