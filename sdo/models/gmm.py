"""Analytic Gaussian-mixture denoiser: the exact score in closed form (a 'perfectly trained' model)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..schedule import NoiseSchedule
from .base import Denoiser


class GaussianMixtureDenoiser(Denoiser):
    """eps/v/velocity of p_t = sum_k w_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I), in closed form.

    `means` (K, D) are parameters (theta); `cov` is (K, D) diagonal or (K, D, D) full; a conditioning
    vector c (K,) is added to the mixture logits, so wrt="cond" steers the mixture weights.
    """

    def __init__(
        self,
        means: torch.Tensor,
        cov: torch.Tensor,
        weights: torch.Tensor | None = None,
        sample_shape: tuple[int, ...] | None = None,
        schedule: NoiseSchedule | None = None,
        prediction_type: str = "epsilon",
        conditional: bool = False,
    ):
        K, D = means.shape
        if cov.shape not in ((K, D), (K, D, D)):
            raise ValueError(f"cov must have shape ({K}, {D}) or ({K}, {D}, {D}); got {tuple(cov.shape)}")
        shape = sample_shape or (D,)
        if math.prod(shape) != D:
            raise ValueError(f"sample_shape {shape} does not hold D = {D} values")
        super().__init__(schedule or NoiseSchedule(), prediction_type, shape, (K,) if conditional else None)
        self.means = nn.Parameter(means.clone())
        self.register_buffer("cov", cov.clone())
        w = torch.full((K,), 1.0 / K) if weights is None else weights / weights.sum()
        self.register_buffer("log_weights", w.log())

    @property
    def full_cov(self) -> bool:
        return self.cov.dim() == 3

    def posterior_mean(self, x: torch.Tensor, alpha: float, sigma: float, cond=None) -> torch.Tensor:
        """E[x_0 | x_t] for flattened x (B, D)."""
        mu = self.means.to(x.dtype)
        diff = x[:, None, :] - alpha * mu[None]  # (B, K, D)
        if self.full_cov:
            eye = torch.eye(mu.shape[1], dtype=x.dtype, device=x.device)
            C = alpha**2 * self.cov.to(x.dtype) + sigma**2 * eye  # (K, D, D)
            L = torch.linalg.cholesky(C)
            sol = torch.cholesky_solve(diff.permute(1, 2, 0), L).permute(2, 0, 1)  # C^{-1} diff
            logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
            maha = (diff * sol).sum(-1)
            shift = alpha * torch.einsum("kde,bke->bkd", self.cov.to(x.dtype), sol)
        else:
            C = alpha**2 * self.cov.to(x.dtype) + sigma**2  # (K, D)
            sol = diff / C
            logdet = C.log().sum(-1)
            maha = (diff * sol).sum(-1)
            shift = alpha * self.cov.to(x.dtype) * sol
        logits = self.log_weights.to(x.dtype) - 0.5 * (maha + logdet)
        if cond is not None:
            logits = logits + cond
        r = torch.softmax(logits, dim=-1)  # (B, K) responsibilities
        return torch.einsum("bk,bkd->bd", r, mu[None] + shift)

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None) -> torch.Tensor:
        if torch.is_tensor(t) and t.numel() > 1 and bool((t.reshape(-1) != t.reshape(-1)[0]).any()):
            parts = [(x[b : b + 1], tb, None if cond is None else cond[b : b + 1]) for b, tb in enumerate(t)]
            return torch.cat([self.forward(*part) for part in parts])  # one timestep per sample
        t0 = t.reshape(-1)[0] if torch.is_tensor(t) else t
        alpha, sigma = self.schedule.alpha_sigma(t0)
        flat = x.reshape(x.shape[0], -1)
        x0 = self.posterior_mean(flat, alpha, sigma, cond)
        eps = (flat - alpha * x0) / sigma
        if self.prediction_type == "epsilon":
            out = eps
        elif self.prediction_type == "v_prediction":
            out = alpha * eps - sigma * x0
        else:
            out = eps - x0
        return out.reshape(x.shape)


def random_gmm(
    dim: int = 2,
    components: int = 4,
    spread: float = 1.0,
    scale: float = 0.1,
    full: bool = False,
    seed: int = 0,
    sample_shape: tuple[int, ...] | None = None,
    schedule: NoiseSchedule | None = None,
    prediction_type: str = "epsilon",
    conditional: bool = False,
) -> GaussianMixtureDenoiser:
    """A seeded random mixture: means ~ spread * N(0, I), covariances near scale^2 I."""
    g = torch.Generator().manual_seed(seed)
    means = spread * torch.randn(components, dim, generator=g, dtype=torch.float64)
    if full:
        A = scale * torch.randn(components, dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
        cov = A @ A.transpose(-1, -2) + scale**2 * torch.eye(dim, dtype=torch.float64)
    else:
        cov = scale**2 * (0.5 + torch.rand(components, dim, generator=g, dtype=torch.float64))
    return GaussianMixtureDenoiser(
        means.float(), cov.float(), None, sample_shape, schedule, prediction_type, conditional
    )
