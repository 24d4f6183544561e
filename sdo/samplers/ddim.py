"""Native DDIM (eta = 0 deterministic; eta > 0 with explicitly passed noise), any prediction type."""

from __future__ import annotations

import math

import torch

from ..schedule import NoiseSchedule
from .base import History, Sampler


def predict_x0_eps(m, x, alpha: float, sigma: float, prediction_type: str):
    """(x0_hat, eps_hat) from a model output m at x_t = alpha x0 + sigma eps."""
    if prediction_type == "epsilon":
        return (x - sigma * m) / alpha, m
    if prediction_type == "v_prediction":  # v = alpha eps - sigma x0, alpha^2 + sigma^2 = 1
        return alpha * x - sigma * m, sigma * x + alpha * m
    return x - sigma * m, x + alpha * m  # flow velocity m = eps - x0, alpha + sigma = 1


def trailing_timesteps(schedule: NoiseSchedule, steps: int) -> list[float]:
    """t_N..t_1: diffusers' 'trailing' grid for VP (t_N = T-1); for flow, linspace(T, 1, N) as diffusers'
    FlowMatchEulerDiscreteScheduler (sigma from 1 to 1/T)."""
    T = schedule.num_train_timesteps
    if schedule.kind == "flow":
        return torch.linspace(T, 1, steps, dtype=torch.float64).tolist()
    return [float(round(T - p * T / steps) - 1) for p in range(steps)]


class DDIM(Sampler):
    """x_{i-1} = alpha_{i-1} x0_hat + sqrt(sigma_{i-1}^2 - s^2) eps_hat + s z (Song et al., Eq. 12)."""

    def __init__(self, schedule: NoiseSchedule, prediction_type: str, steps: int, eta: float = 0.0):
        super().__init__(steps)
        if eta < 0:
            raise ValueError(f"eta must be >= 0; got {eta}")
        self.schedule, self.prediction_type, self.eta = schedule, prediction_type, eta
        self.stochastic = eta > 0
        self.times = trailing_timesteps(schedule, steps)
        self.coef = [schedule.alpha_sigma(t) for t in self.times] + [(1.0, 0.0)]  # (alpha, sigma), t_0 clean

    def timestep(self, i: int) -> float:
        return self.times[self._check_index(i)]

    def noise_scale(self, i: int) -> float:
        """s_i = eta sigma_{i-1} sqrt(1 - SNR_i / SNR_{i-1}): the DDPM posterior std at eta = 1."""
        p = self._check_index(i)
        (a, s), (ap, sp) = self.coef[p], self.coef[p + 1]
        if self.eta == 0 or sp == 0:
            return 0.0
        return self.eta * sp * math.sqrt(max(0.0, 1 - (a * sp) ** 2 / (ap * s) ** 2))

    def step(self, i: int, x, m, history: History, noise=None):
        p = self._check_index(i)
        (a, s), (ap, sp) = self.coef[p], self.coef[p + 1]
        x0, eps = predict_x0_eps(m, x, a, s, self.prediction_type)
        std = self.noise_scale(i)
        out = ap * x0 + math.sqrt(max(sp**2 - std**2, 0.0)) * eps
        if std > 0:
            if noise is None:
                raise ValueError("DDIM with eta > 0 needs the step's noise passed explicitly")
            out = out + std * noise
        return out, history
