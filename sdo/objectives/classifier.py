"""Classifier objectives: cross-entropy toward a class, or the adversarial margin (paper Sec. 5.1.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CLASSIFIER_LOSSES = ("ce", "margin")


class ClassifierLoss(nn.Module):
    """J(x) = CE(classifier(x), target), or margin max(z_y - max_{j!=y} z_j, -kappa) to make y lose."""

    def __init__(
        self, classifier: nn.Module, target: int | torch.Tensor = 0, kind: str = "ce", kappa: float = 0.0
    ):
        super().__init__()
        if kind not in CLASSIFIER_LOSSES:
            raise ValueError(f"unknown classifier loss {kind!r}; valid: {', '.join(CLASSIFIER_LOSSES)}")
        self.classifier, self.target, self.kind, self.kappa = classifier, target, kind, kappa

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(x)
        y = torch.as_tensor(self.target, device=x.device).long().expand(x.shape[0])
        if self.kind == "ce":
            return F.cross_entropy(logits, y)
        true = logits.gather(1, y[:, None])[:, 0]
        other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
        return torch.clamp(true - other, min=-self.kappa).mean()
