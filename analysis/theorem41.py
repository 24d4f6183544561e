"""Tightness of the paper's Theorem 4.1 on the Picard fixed-point system of flow-matching Euler (Eq. 10).

Reading used here: the unknowns are X = (x_{N-1}, ..., x_0) and x_N is the parameter, X = F(X, x_N) with
F_n = x_N - (1/N) sum_{i>n} u(x_i, i/N) (Eq. 8); lambda = ||dF/dX|| (strictly block lower-triangular), rho =
||dJ/dX||, L = ||dF/dx_N||. (Read literally, with x_N among the unknowns and F_N = x_N, dF/dx_{0:N} has an
identity block and spectral radius 1, so it is never a contraction.) The exact gradient is
g (I - J_F)^{-1} dF/dx_N (Eq. 13) and SDO's is g dF/dx_N (Eq. 14); their difference is bounded by the proof's
lambda rho L / (1 - lambda), first order in lambda. The statement's lambda^2 rho / (1 - lambda) needs L <= lambda,
which fails: L is of order one (1/sqrt(2) at N = 2 as lambda -> 0).
Everything is formed as explicit matrices on small Gaussian problems, so errors and bounds are exact numbers.
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
    return case_for(model, steps, seed, spread, scale)


def case_for(model, steps: int, seed: int = 0, spread: float = float("nan"), scale: float = float("nan")):
    """theorem_case for any flow model on flat vectors: x_N and the target drawn from `seed`."""
    dim = model.sample_shape[0]
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
    bounds = stated_and_proof_bounds(lam, rho, lip)
    return TheoremCase(
        steps,
        dim,
        spread,
        scale,
        lam,
        rho,
        lip,
        float((exact - shortcut).norm()),
        *bounds,
        float(exact.norm()),
        float(shortcut.norm()),
        float(exact @ shortcut / (exact.norm() * shortcut.norm())),
    )


def stated_and_proof_bounds(lam: float, rho: float, lip: float) -> tuple[float, float]:
    """(lambda^2 rho / (1 - lambda), lambda rho L / (1 - lambda)); NaN where lambda >= 1 (no contraction)."""
    if not lam < 1:
        return float("nan"), float("nan")
    return lam**2 * rho / (1 - lam), lam * rho * lip / (1 - lam)


def affine_gaussian(dim: int = 2, variance: float = 0.5):
    """Rectified flow to data N(0, variance I): the velocity is linear in x, u(x, t) = a(t) x with
    a(t) = (t - (1 - t) s^2) / ((1 - t)^2 s^2 + t^2), so its Jacobian is the same everywhere."""
    from sdo.models.gmm import GaussianMixtureDenoiser
    from sdo.schedule import FLOW_SCHEDULE

    mean = torch.zeros(1, dim, dtype=torch.float64)
    cov = torch.full((1, dim), variance, dtype=torch.float64)
    model = GaussianMixtureDenoiser(mean, cov, schedule=FLOW_SCHEDULE, prediction_type="flow")
    return model.double()


def variance_for_lambda(lam: float) -> float:
    """The data variance s^2 whose N = 2 Picard contraction is lambda: lambda = |a(1/2)| / 2 = (1 - s^2) / (1 + s^2)."""
    return (1 - lam) / (1 + lam)


def lambda_sweep(lams=(0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3), steps: int = 2, dim: int = 2, seeds=(0, 1, 2)):
    """Theorem 4.1's quantities on the affine Gaussian as lambda -> 0 (exact N = 2 targets; any N allowed)."""
    import pandas as pd

    rows = []
    for lam in lams:
        for seed in seeds:
            case = case_for(affine_gaussian(dim, variance_for_lambda(lam)), steps, seed, scale=lam)
            rows.append({**asdict(case), "lambda_target": lam})
    return with_tightness(pd.DataFrame(rows))


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    import numpy as np

    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    return float(np.polyfit(lx, ly, 1)[0])


def with_tightness(df):
    """Add error / bound columns (NaN where the theorem does not apply)."""
    df["tight_stated"] = df["error"] / df["bound_stated"]
    df["tight_proof"] = df["error"] / df["bound_proof"]
    return df


def theorem_table(steps=(5, 10, 20, 40), scales=(0.1, 0.3, 1.0), dim: int = 2, seeds=(0, 1, 2)):
    """A pandas DataFrame of theorem_case over a grid, with the tightness ratios error / bound."""
    import pandas as pd

    rows = [asdict(theorem_case(n, dim, 1.0, s, seed)) for n in steps for s in scales for seed in seeds]
    return with_tightness(pd.DataFrame(rows))
