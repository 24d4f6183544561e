"""fmnist-classifier-eval: a second Fashion-MNIST classifier of a different architecture and seed, the judge
that the tasks never optimise against (quality filter, FID features, perceptual distance, class preserved)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class FMNISTEvalClassifier(nn.Module):
    """An MLP on flattened (B, 1, 32, 32) images in [-1, 1] (a different model family from the attacked CNN):
    1024 -> 512 -> 128 (GELU; the penultimate features) -> 10 logits, dropout 0.2 before each layer."""

    def __init__(self, hidden: tuple[int, int] = (512, 128), pixels: int = 1024, classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(pixels, hidden[0]),
            nn.GELU(),
            nn.Dropout(0.2),
            nn.Linear(hidden[0], hidden[1]),
            nn.GELU(),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(hidden[1], classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d penultimate features (B, 128): the evaluation feature space (FID, perceptual distance)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.penultimate(x)))


def fmnist_eval_classifier(weights: str | Path | None = None) -> FMNISTEvalClassifier:
    """The trained evaluation classifier, frozen and in eval mode."""
    from .trained import _load_state, weights_path

    path = Path(weights) if weights else weights_path("fmnist-classifier-eval")
    return _load_state(FMNISTEvalClassifier(), path).eval().requires_grad_(False)
