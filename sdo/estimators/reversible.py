"""Reversible sampling (EDICT, Wallace et al. 2023; DOODL): a coupled (x, y) DDIM sampler whose steps
invert exactly, so the backward pass rebuilds the states by inversion instead of storing them."""

from __future__ import annotations

import dataclasses

import torch

from ..samplers.ddim import DDIM
from ..theory import Prediction, vjp_kind
from .sweep import Sweep, SweepEstimator, accumulate


def affine_coefficients(solver, i: int) -> tuple[float, float]:
    """(A_i, B_i) with Phi_i(x, m) = A_i x + B_i m: the deterministic DDIM step is affine in (x, m)."""
    one, zero = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    A = float(solver.step(i, one, zero, ())[0])
    B = float(solver.step(i, zero, one, ())[0])
    return A, B


def check_sampler(solver) -> None:
    """The coupled sampler needs a deterministic affine step: the native 'ddim' sampler with eta = 0."""
    if not isinstance(solver, DDIM) or solver.stochastic:
        raise ValueError(
            f"reversible needs the native 'ddim' sampler with eta=0; got {type(solver).__name__}"
            + (" with eta > 0" if isinstance(solver, DDIM) else "")
        )


def coupled_step(rollout, i: int, x, y, mix: float, keep: bool = False):
    """EDICT step i: x' = A x + B f(y); y' = A y + B f(x'); then the mixing layers with weight p."""
    A, B = affine_coefficients(rollout.solver, i)
    x_inter = A * x + B * rollout.network(i, y, keep)
    y_inter = A * y + B * rollout.network(i, x_inter, keep)
    x_new = mix * x_inter + (1 - mix) * y_inter
    y_new = mix * y_inter + (1 - mix) * x_new
    return x_new, y_new


def coupled_sample(rollout, x, first: int, mix: float, keep: bool = False):
    """The coupled sampler's plain forward from x_N = y_N = x over steps first..1: (x_0, y_0)."""
    y = x
    for i in range(first, 0, -1):
        x, y = coupled_step(rollout, i, x, y, mix, keep)
    return x, y


def invert_step(rollout, i: int, x_new, y_new, mix: float):
    """The exact inverse of `coupled_step` (no graph): (x_{i-1}, y_{i-1}) -> (x_i, y_i)."""
    A, B = affine_coefficients(rollout.solver, i)
    y_inter = (y_new - (1 - mix) * x_new) / mix
    x_inter = (x_new - (1 - mix) * y_inter) / mix
    y = (y_inter - B * rollout.network(i, x_inter, False)) / A
    x = (x_inter - B * rollout.network(i, y, False)) / A
    return x, y


class ReversibleSweep(Sweep):
    """Forward without a graph keeping only (x_0, y_0); backward inverts each step and does one VJP per
    network call, reusing that call's output for the inversion (2 forwards + 2 VJPs per step)."""

    mix: float = 0.93

    def forward(self, x):
        with torch.no_grad():
            self.x0, self.y0 = coupled_sample(self.rollout, x, self.first, self.mix)
        return self.x0.clone()

    def backward(self, g):
        x, y, p = self.x0, self.y0, self.mix
        g_x, g_y, total = g, torch.zeros_like(g), None
        for i in range(1, self.first + 1):
            A, B = affine_coefficients(self.rollout.solver, i)
            y_inter = (y - (1 - p) * x) / p  # undo y' = p y_inter + (1 - p) x'
            g_yi, g_x = p * g_y, g_x + (1 - p) * g_y
            x_inter = (x - (1 - p) * y_inter) / p  # undo x' = p x_inter + (1 - p) y_inter
            g_xi, g_yi = p * g_x, g_yi + (1 - p) * g_x
            y, g_xi, g_y, total = self._undo_half(i, x_inter, y_inter, A, B, g_xi, g_yi, total)
            x, g_y, g_x, total = self._undo_half(i, y, x_inter, A, B, g_y, g_xi, total)
        self.x0 = self.y0 = None
        return g_x + g_y, total or []

    def _undo_half(self, i, u, v_new, A, B, g_u, g_v, total):
        """Undo v_new = A v + B f(u): returns v = (v_new - B f(u)) / A, g_u + B g_v^T df/du, A g_v."""
        inputs = [u.detach().requires_grad_(True), *self.leaves]
        with torch.enable_grad():
            m = self.rollout.network(i, inputs[0], keep=True)
            grads = torch.autograd.grad(m, inputs, B * g_v, allow_unused=True)
        self.rollout.calls.bwd += 1
        grads = [torch.zeros_like(t) if gr is None else gr for t, gr in zip(inputs, grads)]
        if self.leaves:
            total = accumulate(total, grads[1:])
        return (v_new - B * m.detach()) / A, g_u + grads[0], A * g_v, total


@dataclasses.dataclass
class Reversible(SweepEstimator):
    """EDICT/DOODL coupled sampler with mixing p; its exact gradient with O(1) stored states in N."""

    name = "reversible"
    exact = False  # exact gradient of the coupled sampler, which is not the problem's sampler
    supported_wrt = ("latent", "params", "cond")
    mix: float = 0.93

    def __post_init__(self):
        if not isinstance(self.mix, (int, float)) or not 0 < self.mix <= 1:
            raise ValueError(f"reversible mix p must be a number in (0, 1]; got {self.mix!r}")

    def check(self, problem):
        super().check(problem)
        check_sampler(problem.solver)

    def predict(self, problem):
        """2N no-graph forwards; backward: 2N recomputed forwards (the inversion) and 2N chained VJPs, the
        VJPs one evaluation behind the inversion (depth 2N + 2N + 1); only (x_0, y_0) are kept."""
        self.check(problem)
        N = problem.steps
        return Prediction(
            fwd_grad=0,
            fwd_nograd=2 * N,
            fwd_recompute=2 * N,
            bwd=2 * N,
            depth=4 * N + 1,
            memory="O(1)",
            bwd_params=2 * N * vjp_kind(problem),
            graphs=1,
            states=2,
        )

    def make_sweep(self, rollout, history, first, leaves):
        sweep = ReversibleSweep(rollout, history, first, leaves)
        sweep.mix = float(self.mix)
        return sweep
