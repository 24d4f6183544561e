"""Training noise schedules shared by models and samplers: x_t = alpha_t x_0 + sigma_t eps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCHEDULE_KINDS = ("vp", "flow")
BETA_SCHEDULES = ("linear", "scaled_linear")


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete VP schedule (DDPM betas) or the rectified-flow path alpha = 1 - sigma."""

    kind: str = "vp"
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self):
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"unknown schedule kind {self.kind!r}; valid: {', '.join(SCHEDULE_KINDS)}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(
                f"unknown beta_schedule {self.beta_schedule!r}; valid: {', '.join(BETA_SCHEDULES)}"
            )

    def betas(self) -> torch.Tensor:
        """DDPM betas in float64, as diffusers builds them."""
        T = self.num_train_timesteps
        if self.beta_schedule == "linear":
            return torch.linspace(self.beta_start, self.beta_end, T, dtype=torch.float64)
        return torch.linspace(self.beta_start**0.5, self.beta_end**0.5, T, dtype=torch.float64) ** 2

    def alphas_cumprod(self) -> torch.Tensor:
        """abar_t for t = 0..T-1 (float64)."""
        return torch.cumprod(1.0 - self.betas(), dim=0)

    def alpha_sigma(self, t: float | torch.Tensor) -> tuple[float, float]:
        """(alpha_t, sigma_t) at a possibly fractional timestep, interpolating sigma/alpha linearly in t
        (the same interpolation diffusers' Euler scheduler uses)."""
        t = float(t)
        if self.kind == "flow":
            s = t / self.num_train_timesteps
            return 1.0 - s, s
        ab = self.alphas_cumprod()
        ve = ((1 - ab) / ab).sqrt()
        lo = min(max(int(math.floor(t)), 0), len(ve) - 1)
        hi = min(lo + 1, len(ve) - 1)
        w = t - lo
        s = float((1 - w) * ve[lo] + w * ve[hi])
        alpha = 1.0 / math.sqrt(1.0 + s * s)
        return alpha, s * alpha

    def scheduler_config(self) -> dict:
        """Keyword arguments for a diffusers scheduler trained on this schedule."""
        if self.kind == "flow":
            return {"num_train_timesteps": self.num_train_timesteps}
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": self.beta_schedule,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
        }


SD_SCHEDULE = NoiseSchedule(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
DDPM_SCHEDULE = NoiseSchedule()
FLOW_SCHEDULE = NoiseSchedule(kind="flow")
