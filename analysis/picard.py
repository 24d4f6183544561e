"""Theorem 4.1's quantities on trained networks, without forming matrices: DDIM in x_bar = x / alpha is Euler in
sigma_bar = sigma / alpha, so its Picard operator is F_n(X) = x_bar_N + sum_{i>n} (sigma_bar_{i-1} - sigma_bar_i)
eps(alpha_i x_bar_i, t_i) (the analogue of paper Eq. 8). lambda = ||dF/dX||_2 and L = ||dF/dx_bar_N||_2 are
estimated by power iteration with Jacobian-vector and vector-Jacobian products of the network.
"""

from __future__ import annotations

import math

import torch
from torch.func import jvp, vjp
from torch.nn.attention import SDPBackend, sdpa_kernel

import sdo
from sdo.samplers.ddim import DDIM

from .theorem41 import stated_and_proof_bounds


def _ddim_grid(problem: sdo.Problem) -> tuple[list[float], list[float]]:
    """alpha_i and sigma_bar_i for i = N..0 (position p = N - i) of the native DDIM sampler."""
    if not isinstance(problem.solver, DDIM) or problem.solver.stochastic:
        raise ValueError("the Picard analysis needs the native deterministic 'ddim' sampler")
    alphas = [a for a, _ in problem.solver.coef]
    return alphas, [s / a for a, s in problem.solver.coef]


def trajectory(problem: sdo.Problem) -> list[torch.Tensor]:
    """[x_N, ..., x_0] with no graph."""
    x, xs = problem.solver.init_scale * problem.latent, []
    with torch.no_grad():
        for i in range(problem.steps, 0, -1):
            xs.append(x)
            m = problem.model(problem.solver.model_input(i, x), problem.solver.timestep(i), problem.cond)
            x, _ = problem.solver.step(i, x, m, ())
    return [*xs, x]


class PicardOperator:
    """J_F v and J_F^T u for the x_bar Picard system; blocks D_i = (sigma_bar_{i-1} - sigma_bar_i) alpha_i eps'(x_i)."""

    def __init__(self, problem: sdo.Problem):
        self.problem, self.N = problem, problem.steps
        self.alphas, self.sbar = _ddim_grid(problem)
        self.xs = trajectory(problem)

    def _eps(self, i: int):
        p, t = self.N - i, self.problem.solver.timestep(i)
        return lambda x: self.problem.model(x, t, self.problem.cond), self.xs[p]

    def coef(self, i: int) -> float:
        p = self.N - i
        return (self.sbar[p + 1] - self.sbar[p]) * self.alphas[p]

    def block(self, i: int, v: torch.Tensor) -> torch.Tensor:
        """D_i v."""
        f, x = self._eps(i)
        with sdpa_kernel([SDPBackend.MATH]):  # the fused CPU attention kernels have no forward-mode AD
            return self.coef(i) * jvp(f, (x,), (v,))[1].detach()

    def block_t(self, i: int, u: torch.Tensor) -> torch.Tensor:
        """D_i^T u."""
        f, x = self._eps(i)
        return self.coef(i) * vjp(f, x)[1](u)[0].detach()

    def apply(self, v: list[torch.Tensor]) -> list[torch.Tensor]:
        """(J_F v)_n = sum_{i=n+1}^{N-1} D_i v_i, blocks indexed n = 0..N-1 (x_bar_n)."""
        out, acc = [torch.zeros_like(v[0]) for _ in range(self.N)], torch.zeros_like(v[0])
        for n in range(self.N - 2, -1, -1):
            acc = acc + self.block(n + 1, v[n + 1])
            out[n] = acc.clone()
        return out

    def apply_t(self, u: list[torch.Tensor]) -> list[torch.Tensor]:
        """(J_F^T u)_i = D_i^T sum_{n<i} u_n."""
        out, acc = [torch.zeros_like(u[0]) for _ in range(self.N)], torch.zeros_like(u[0])
        for i in range(1, self.N):
            acc = acc + u[i - 1]
            out[i] = self.block_t(i, acc)
        return out

    def first_block(self, v: torch.Tensor) -> torch.Tensor:
        """M v with M = I + D_N: every row of dF/dx_bar_N is M, so ||dF/dx_bar_N||_2 = sqrt(N) ||M||_2."""
        return v + self.block(self.N, v)

    def first_block_t(self, u: torch.Tensor) -> torch.Tensor:
        return u + self.block_t(self.N, u)


def _norm(blocks) -> float:
    return math.sqrt(sum(float((b * b).sum()) for b in blocks))


def power_norm(apply, apply_t, v: list[torch.Tensor], iters: int = 30) -> float:
    """||A||_2 by power iteration on A^T A from the start blocks v."""
    est = 0.0
    for _ in range(iters):
        scale = _norm(v)
        if scale == 0:
            return 0.0
        v = [b / scale for b in v]
        w = apply_t(apply(v))
        est, v = math.sqrt(_norm(w)), w
    return est


def trained_case(problem: sdo.Problem, iters: int = 30) -> dict:
    """lambda, rho, L, ||exact - SDO|| (wrt x_bar_N) and both bounds of Theorem 4.1 on `problem` (wrt latent)."""
    op = PicardOperator(problem)
    g = torch.Generator().manual_seed(problem.seed + 11)
    start = [torch.randn(op.xs[0].shape, generator=g, dtype=op.xs[0].dtype) for _ in range(op.N)]
    lam = power_norm(op.apply, op.apply_t, start, iters) if op.N > 1 else 0.0
    m_norm = power_norm(
        lambda v: [op.first_block(v[0])], lambda u: [op.first_block_t(u[0])], start[:1], iters
    )
    lip = math.sqrt(op.N) * m_norm
    exact, short = sdo.grad(problem, "bptt"), sdo.grad(problem, "sdo")
    x0 = exact.x0.clone().requires_grad_(True)
    rho = float(torch.autograd.grad(problem.objective(problem.model.decode(x0)), x0)[0].norm())
    to_xbar = op.alphas[0] / problem.solver.init_scale  # d/dx_bar_N = alpha_N d/dx_N, x_N = init_scale z
    ge, gs = exact.grads["latent"] * to_xbar, short.grads["latent"] * to_xbar
    stated, proof = stated_and_proof_bounds(lam, rho, lip)
    return dict(
        steps=op.N,
        lam=lam,
        rho=rho,
        lip=lip,
        error=float((ge - gs).norm()),
        bound_stated=stated,
        bound_proof=proof,
        cosine=float((ge * gs).sum() / (ge.norm() * gs.norm())),
        norm_ratio=float(gs.norm() / ge.norm()),
    )
