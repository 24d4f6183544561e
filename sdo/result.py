"""What every estimator returns: the gradient with its diagnostics (torchdeq-style `(z, info)`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

STATUSES = ("ok", "nonfinite", "error", "oom")


@dataclass
class NetworkCalls:
    """Network-call counts (NFE): forwards with / without a graph, recomputed forwards, backwards."""

    fwd_grad: int = 0
    fwd_nograd: int = 0
    fwd_recompute: int = 0
    bwd: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "nfe_fwd_grad": self.fwd_grad,
            "nfe_fwd_nograd": self.fwd_nograd,
            "nfe_fwd_recompute": self.fwd_recompute,
            "nfe_bwd": self.bwd,
        }


@dataclass
class GradResult:
    """grads by name (latent / x_k / cond / parameter names), the loss, x_0 and stats (NFE, S, status)."""

    grads: dict[str, torch.Tensor]
    loss: float
    x0: torch.Tensor
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.stats.get("status", "ok")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def flat(self) -> torch.Tensor:
        """All gradients concatenated into one vector (in a fixed name order)."""
        return torch.cat([self.grads[k].reshape(-1) for k in sorted(self.grads)])

    def norm(self) -> float:
        """The L2 norm of the whole gradient (nan when non-finite)."""
        return float(self.flat().norm()) if self.ok else float("nan")
