"""Coordinates in which first-order samplers are Euler steps: x_bar_{i-1} = x_bar_i + (s_{i-1} - s_i) F.

VP models: s = sigma/alpha, x_bar = x/alpha, F = eps_hat (DDIM is exactly Euler here, so its first-order
exponential integrator is Euler too). Flow (rectified-flow) models: s = sigma, x_bar = x, F = the
velocity (flow-Euler, and DDIM on a flow model, are Euler in sigma).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..samplers.ddim import predict_x0_eps


class Coords:
    """(s, x_bar, F) for the problem's model; `grid` maps the sampler's s_i to its timestep t_i."""

    def __init__(self, problem, grid: dict[float, float] | None = None):
        schedule = problem.model.schedule
        self.flow = schedule.kind == "flow"
        self.T = schedule.num_train_timesteps
        self.schedule, self.prediction_type, self.grid = schedule, problem.model.prediction_type, grid or {}
        ab = schedule.alphas_cumprod()
        self.vp_bars = ((1 - ab) / ab).sqrt().numpy()  # s(t) at t = 0..T-1, increasing

    def s(self, t: float) -> float:
        """s at the network timestep t."""
        alpha, sigma = self.schedule.alpha_sigma(t)
        return sigma if self.flow else sigma / alpha

    def alpha(self, s: float) -> float:
        """x = alpha(s) x_bar."""
        return 1.0 if self.flow else 1.0 / math.sqrt(1.0 + s * s)

    def timestep(self, s: float) -> float:
        """t(s): the sampler's t_i on its grid, else the schedule inverted; at s = 0 the smallest training
        timestep (VP: t = 0; flow: t = 1, sigma = 1/T, where a velocity is finite)."""
        if s in self.grid:
            return self.grid[s]
        if self.flow:
            return min(max(s * self.T, 1.0), float(self.T))
        return float(np.interp(s, self.vp_bars, np.arange(len(self.vp_bars))))

    def field(self, m: torch.Tensor, x: torch.Tensor, s: float) -> torch.Tensor:
        """F = dx_bar/ds from the network output m at x."""
        if self.flow:
            if self.prediction_type != "flow":
                raise ValueError(
                    f"a flow schedule needs a flow (velocity) model; got {self.prediction_type!r}"
                )
            return m
        alpha = self.alpha(s)
        return predict_x0_eps(m, x, alpha, alpha * s, self.prediction_type)[1]


def sampler_grid(problem, first: int) -> tuple[list[float], list[float]]:
    """(times t_first..t_1, s_first..s_1 followed by s_0 = 0)."""
    coords = Coords(problem)
    times = [problem.solver.timestep(i) for i in range(first, 0, -1)]
    return times, [coords.s(t) for t in times] + [0.0]
