"""Objectives J(x): a scalar loss of the decoded sample batch (lower is better)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class CallableObjective(nn.Module):
    """Wrap any user callable x -> scalar tensor as an objective."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        if not callable(fn):
            raise ValueError(f"objective fn must be callable; got {type(fn).__name__}")
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class TargetMSE(nn.Module):
    """J(x) = mean (x - target)^2; with no target, a seeded standard-normal target of x's shape."""

    def __init__(self, target: torch.Tensor | None = None, seed: int = 1234):
        super().__init__()
        if target is not None and not isinstance(target, torch.Tensor):
            raise ValueError(
                f"target must be a torch.Tensor of the decoded sample's shape; got {type(target).__name__}"
            )
        self.target, self.seed = target, seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        target = self.target
        if target is None:
            g = torch.Generator().manual_seed(self.seed)
            target = torch.randn(x.shape, generator=g, dtype=torch.float64)
        try:
            ok = torch.broadcast_shapes(target.shape, x.shape) == x.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"target shape {tuple(target.shape)} does not match sample shape {tuple(x.shape)}"
            )
        return ((x - target.to(x)) ** 2).mean()
