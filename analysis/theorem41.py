"""Tightness of the paper's Theorem 4.1 on the Picard fixed-point system of flow-matching Euler (Eq. 10).

The trajectory X = (x_{N-1}, ..., x_0) solves X = F(X), F_n(X) = x_N - (1/N) sum_{i>n} u(x_i, i/N) (Eq. 8).
With J_F = dF/dX, the exact gradient is g (I - J_F)^{-1} dF/dx_N (Eq. 13) and SDO's is g dF/dx_N (Eq. 14).
Everything is formed as explicit matrices on a small Gaussian-mixture problem, so the bound and the error
are exact numbers, not estimates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.autograd.functional import jacobian

import sdo


@dataclass
class TheoremCase:
    """One problem's quantities: lambda = ||J_F||, rho = ||dJ/dX||, L = ||dF/dx_N||, errors and bounds."""

    steps: int
    dim: int
    spread: float
    scale: float
    lam: float
    rho: float
    lip: float
    error: float
    bound_stated: float
    bound_proof: float
    exact_norm: float
    sdo_norm: float
    cosine: float


def velocity(model, n: int, N: int):
    """u(x, n/N) of a flow model as a map on flat vectors (D,) -> (D,)."""
    t = model.schedule.num_train_timesteps * n / N
    return lambda x: model(x[None], t)[0]


def euler_trajectory(model, x_N: torch.Tensor, N: int) -> list[torch.Tensor]:
    """[x_N, x_{N-1}, ..., x_0] of Eq. 10: x_n = x_{n+1} - u(x_{n+1}, (n+1)/N) / N."""
    xs = [x_N]
    with torch.no_grad():
        for n in range(N - 1, -1, -1):
            xs.append(xs[-1] - velocity(model, n + 1, N)(xs[-1]) / N)
    return xs


def picard_jacobians(model, xs: list[torch.Tensor], N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(J_F, dF/dx_N): blocks (row n, column i) = -(1/N) du(x_i)/dx for i > n, rows/columns x_{N-1}..x_0."""
    D = xs[0].numel()
    jac = [jacobian(velocity(model, N - k, N), xs[k]) for k in range(N)]  # du/dx at x_{N-k}, k = 0..N-1
    JF = torch.zeros(N * D, N * D, dtype=xs[0].dtype)
    dFdxN = torch.zeros(N * D, D, dtype=xs[0].dtype)
    for r in range(N):  # row r holds x_{N-1-r}; it sums u over x_i with i > N-1-r, i.e. k = 0..r
        dFdxN[r * D : (r + 1) * D] = torch.eye(D, dtype=xs[0].dtype) - jac[0] / N
        for k in range(1, r + 1):  # x_{N-k} is unknown number k-1 of X
            JF[r * D : (r + 1) * D, (k - 1) * D : k * D] = -jac[k] / N
    return JF, dFdxN


def theorem_case(
    steps: int = 10, dim: int = 2, spread: float = 1.0, scale: float = 0.3, seed: int = 0
) -> TheoremCase:
    """Exact and SDO gradients wrt x_N of J = ||x_0 - target||^2 / 2 and the bounds of Theorem 4.1."""
    model = sdo.models.get("gmm-flow", dim=dim, spread=spread, scale=scale, seed=seed).double()
    g = torch.Generator().manual_seed(seed + 1)
    x_N = torch.randn(dim, generator=g, dtype=torch.float64)
    target = torch.randn(dim, generator=g, dtype=torch.float64)
    xs = euler_trajectory(model, x_N, steps)
    JF, dFdxN = picard_jacobians(model, xs, steps)
    gX = torch.zeros(steps * dim, dtype=torch.float64)
    gX[-dim:] = xs[-1] - target  # dJ/dX is nonzero on x_0 only
    eye = torch.eye(steps * dim, dtype=torch.float64)
    exact = torch.linalg.solve((eye - JF).T, gX) @ dFdxN
    shortcut = gX @ dFdxN
    lam = float(torch.linalg.matrix_norm(JF, 2))
    rho, lip = float(gX.norm()), float(torch.linalg.matrix_norm(dFdxN, 2))
    contraction = lam < 1
    return TheoremCase(
        steps,
        dim,
        spread,
        scale,
        lam,
        rho,
        lip,
        float((exact - shortcut).norm()),
        lam**2 * rho / (1 - lam) if contraction else float("inf"),
        lam * rho * lip / (1 - lam) if contraction else float("inf"),
        float(exact.norm()),
        float(shortcut.norm()),
        float(exact @ shortcut / (exact.norm() * shortcut.norm())),
    )


def theorem_table(steps=(5, 10, 20, 40), scales=(0.1, 0.3, 1.0), dim: int = 2, seeds=(0, 1, 2)):
    """A pandas DataFrame of theorem_case over a grid, with the tightness ratios error / bound."""
    import pandas as pd

    rows = [asdict(theorem_case(n, dim, 1.0, s, seed)) for n in steps for s in scales for seed in seeds]
    df = pd.DataFrame(rows)
    df["tight_stated"] = df["error"] / df["bound_stated"]
    df["tight_proof"] = df["error"] / df["bound_proof"]
    return df
