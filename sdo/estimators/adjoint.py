"""The adjoint ODE (AdjointDPM): the probability-flow ODE dx_bar/ds = F(x_bar, s) in the coordinates where
first-order samplers are Euler (VP: s = sigma/alpha, x_bar = x/alpha, F = eps_hat; rectified flow: s = sigma,
x_bar = x, F = velocity), solved backwards for the adjoint by torchdiffeq.odeint_adjoint (no stored
trajectory; the backward re-evaluates the network)."""

from __future__ import annotations

import dataclasses

import torch
from torchdiffeq import odeint_adjoint

from ..loop import Rollout, finish
from ..theory import Prediction, vjp_kind
from .adjoint_coords import Coords, sampler_grid
from .base import Estimator

ADJOINT_METHODS = ("euler", "midpoint", "rk4", "dopri5", "bosh3", "adaptive_heun")
ADJOINT_WRT = ("latent", "params", "cond")
FIXED_GRID_EVALS = {"euler": 1, "midpoint": 2, "rk4": 4}  # field evaluations per step


class PFODE(torch.nn.Module):
    """The vector field F(x_bar, s) on the problem's model; counts network calls."""

    def __init__(self, rollout: Rollout, coords: Coords):
        super().__init__()
        self.rollout, self.coords = rollout, coords

    def forward(self, s: torch.Tensor, x_bar: torch.Tensor) -> torch.Tensor:
        s = float(s.detach())
        x = self.coords.alpha(s) * x_bar
        m = self.rollout.call(x, self.coords.timestep(s), keep=True)
        if torch.is_grad_enabled() and m.requires_grad:
            self.rollout.calls.bwd += 1  # torchdiffeq's augmented dynamics: one VJP per evaluation
        return self.coords.field(m, x, s)


def check_adjoint_problem(problem, name: str) -> None:
    """Raise ValueError for a wrt, model or sampler the ODE formulation does not cover."""
    if problem.wrt not in ADJOINT_WRT:
        raise ValueError(f"{name} does not support wrt={problem.wrt!r}; supported: {', '.join(ADJOINT_WRT)}")
    flow_schedule = problem.model.schedule.kind == "flow"
    if flow_schedule != (problem.model.prediction_type == "flow"):
        raise ValueError(
            f"{name} supports VP models with epsilon or v_prediction outputs and flow-schedule models with "
            f"velocity outputs; got a {problem.model.schedule.kind} schedule with "
            f"{problem.model.prediction_type!r}"
        )
    if problem.solver.stochastic:
        raise ValueError(f"{name} integrates the probability-flow ODE; the sampler must be deterministic")
    if not getattr(problem.solver, "on_grid", True):
        raise ValueError(
            f"{name} integrates the probability-flow ODE on the sampler's grid; this sampler clips x0_hat, "
            "steps off its grid or ends short of t = 0 (use clip_sample=False, set_alpha_to_one=True and a "
            "timestep_spacing whose steps land on the grid, e.g. leading or N dividing T)"
        )


@dataclasses.dataclass
class Adjoint(Estimator):
    """odeint_adjoint from s(t_N) to 0: method='euler' on the sampler's grid reproduces DDIM's (and
    flow-Euler's) x_0 and is then the first-order exponential-integrator adjoint (AdjointDEIS-1, see
    adjoint_deis.py); an adaptive method (e.g. 'dopri5' with rtol, atol) solves the ODE itself.
    Converges to BPTT as N grows."""

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

    def predict(self, problem) -> Prediction:
        """Fixed grids: s evaluations per step forward, and in backward s recomputed forwards and s VJPs;
        torchdiffeq keeps the N + 1 grid states it returns (O(N|x|)). Adaptive methods: counts unknown."""
        check_adjoint_problem(problem, "adjoint")
        evals = FIXED_GRID_EVALS.get(self.method)
        n = None if evals is None else evals * problem.steps
        return Prediction(
            fwd_grad=0,
            fwd_nograd=n,
            fwd_recompute=n,
            bwd=n,
            depth=None if n is None else 3 * n,
            memory="O(N|x|)",
            bwd_params=None if n is None else n * vjp_kind(problem),
            states=problem.steps + 1,
        )

    def estimate(self, problem):
        check_adjoint_problem(problem, "adjoint")
        rollout = Rollout(problem)
        _, _, first, leaves = rollout.start()
        times, bars = sampler_grid(problem, first)
        grid = torch.tensor(bars, dtype=problem.dtype, device=problem.device)
        coords = Coords(problem, {float(b): t for b, t in zip(grid[:-1], times)})
        z = leaves["latent"] if problem.wrt == "latent" else problem.latent
        x_N = problem.solver.init_scale * z
        adjoint_params = tuple(leaves.values()) if problem.wrt in ("params", "cond") else ()
        x_bar = odeint_adjoint(
            PFODE(rollout, coords),
            x_N / coords.alpha(bars[0]),
            grid,
            method=self.method,
            rtol=self.rtol,
            atol=self.atol,
            adjoint_params=adjoint_params,
        )[-1]
        return finish(rollout, x_bar, leaves, method=self.method)  # alpha(s = 0) = 1: x_0 = x_bar_0
