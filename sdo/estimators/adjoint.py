"""The adjoint ODE (AdjointDPM): the probability-flow ODE dx_bar/dsigma_bar = eps_hat(alpha x_bar, t) in
(sigma_bar = sigma/alpha, x_bar = x/alpha) coordinates, where DDIM is exactly Euler, solved backwards for
the adjoint by torchdiffeq.odeint_adjoint (no stored trajectory; the backward re-evaluates the network)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torchdiffeq import odeint_adjoint

from ..loop import Rollout, finish
from ..samplers.ddim import predict_x0_eps
from .base import Estimator

ADJOINT_METHODS = ("euler", "midpoint", "rk4", "dopri5", "bosh3", "adaptive_heun")
ADJOINT_WRT = ("latent", "params", "cond")


class PFODE(torch.nn.Module):
    """The vector field eps_hat(x = alpha x_bar, t(sigma_bar)) on the problem's model; counts network calls."""

    def __init__(self, rollout: Rollout, grid: dict[float, float]):
        super().__init__()
        self.rollout, self.grid = rollout, grid
        schedule = rollout.problem.model.schedule
        ab = schedule.alphas_cumprod()
        self.sigma_bars = ((1 - ab) / ab).sqrt().numpy()  # sigma_bar(t) at t = 0..T-1, increasing

    def timestep(self, sigma_bar: float) -> float:
        """t(sigma_bar): the sampler's t_i on its grid, else the schedule's sigma_bar(t) inverted."""
        if sigma_bar in self.grid:
            return self.grid[sigma_bar]
        return float(np.interp(sigma_bar, self.sigma_bars, np.arange(len(self.sigma_bars))))

    def forward(self, s: torch.Tensor, x_bar: torch.Tensor) -> torch.Tensor:
        sigma_bar = float(s.detach())
        alpha = 1.0 / math.sqrt(1.0 + sigma_bar**2)
        x = alpha * x_bar
        m = self.rollout.call(x, self.timestep(sigma_bar), keep=True)
        if torch.is_grad_enabled() and m.requires_grad:
            self.rollout.calls.bwd += 1  # torchdiffeq's augmented dynamics: one VJP per evaluation
        return predict_x0_eps(m, x, alpha, alpha * sigma_bar, self.rollout.problem.model.prediction_type)[1]


@dataclasses.dataclass
class Adjoint(Estimator):
    """odeint_adjoint from sigma_bar(t_N) to 0: method='euler' on the sampler's grid reproduces DDIM's x_0;
    an adaptive method (e.g. 'dopri5' with rtol, atol) solves the ODE itself. Converges to BPTT as N grows."""

    name = "adjoint"
    exact = False  # converges to the discrete gradient as N grows
    method: str = "euler"
    rtol: float = 1e-5
    atol: float = 1e-5

    def __post_init__(self):
        if self.method not in ADJOINT_METHODS:
            raise ValueError(f"unknown adjoint method {self.method!r}; valid: {', '.join(ADJOINT_METHODS)}")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"adjoint rtol and atol must be > 0; got rtol={self.rtol}, atol={self.atol}")

    def check(self, problem) -> None:
        """Raise ValueError for a wrt, model or sampler the ODE formulation does not cover."""
        if problem.wrt not in ADJOINT_WRT:
            raise ValueError(
                f"adjoint does not support wrt={problem.wrt!r}; supported: {', '.join(ADJOINT_WRT)}"
            )
        if problem.model.schedule.kind != "vp" or problem.model.prediction_type == "flow":
            raise ValueError(
                "adjoint supports VP-schedule models with epsilon or v_prediction outputs, not flow"
            )
        if problem.solver.stochastic:
            raise ValueError("adjoint integrates the probability-flow ODE; the sampler must be deterministic")

    def estimate(self, problem):
        self.check(problem)
        rollout = Rollout(problem)
        _, _, first, leaves = rollout.start()
        solver, schedule = problem.solver, problem.model.schedule
        times = [solver.timestep(i) for i in range(first, 0, -1)]
        bars = [s / a for a, s in (schedule.alpha_sigma(t) for t in times)] + [0.0]
        grid = torch.tensor(bars, dtype=problem.dtype, device=problem.device)
        field = PFODE(rollout, {float(b): t for b, t in zip(grid[:-1], times)})
        z = leaves["latent"] if problem.wrt == "latent" else problem.latent
        alpha_N = schedule.alpha_sigma(times[0])[0]
        adjoint_params = tuple(leaves.values()) if problem.wrt in ("params", "cond") else ()
        x_bar = odeint_adjoint(
            field,
            z / alpha_N,
            grid,
            method=self.method,
            rtol=self.rtol,
            atol=self.atol,
            adjoint_params=adjoint_params,
        )[-1]
        return finish(rollout, x_bar, leaves, method=self.method)  # alpha_0 = 1: x_0 = x_bar_0
