"""Independent reference implementations of DDIM and DPM-Solver++(2M), written from the papers' formulas
(not from sdo.samplers), with the network outputs optionally frozen for explicit-Jacobian checks."""

from __future__ import annotations

import math

import torch


def ddim_coefficients(abar: list[float]) -> list[tuple[float, float]]:
    """(a_p, b_p) with x_{p+1} = a_p x_p + b_p eps_p for DDIM (eta = 0) between abar[p] and abar[p+1]."""
    out = []
    for p in range(len(abar) - 1):
        at, ap = abar[p], abar[p + 1]
        out.append(
            (math.sqrt(ap / at), math.sqrt(1 - ap) - math.sqrt(ap) * math.sqrt(1 - at) / math.sqrt(at))
        )
    return out


def ddim_abar(problem) -> list[float]:
    """abar at the sampler's grid t_N..t_1, then 1 for the clean endpoint (set_alpha_to_one)."""
    ab = problem.model.schedule.alphas_cumprod()
    return [float(ab[int(t)]) for t in problem.solver.times] + [1.0]


def dpm_alpha_sigma(problem) -> list[tuple[float, float]]:
    """(alpha, sigma) on the DPM-Solver grid: VP alpha = 1/sqrt(1 + s^2), sigma = s alpha for VE sigma s."""
    out = []
    for s in problem.solver.scheduler.sigmas.tolist():
        a = 1.0 / math.sqrt(1.0 + s * s)
        out.append((a, s * a))
    return out


def dpm_replay(x: torch.Tensor, eps: list, coef: list[tuple[float, float]]) -> torch.Tensor:
    """DPM-Solver++(2M), midpoint, first order at the first and the final (sigma = 0) step; `eps[p]` is
    either a tensor (frozen network output) or a callable x -> eps."""
    n = len(coef) - 1
    prev_x0 = prev_lam = None
    for p in range(n):
        (a, s), (an, sn) = coef[p], coef[p + 1]
        e = eps[p](x) if callable(eps[p]) else eps[p]
        x0 = (x - s * e) / a
        lam = math.log(a / s)
        if sn == 0:
            x = x0
        else:
            lam_n = math.log(an / sn)
            h = lam_n - lam
            x_new = (sn / s) * x - an * (math.exp(-h) - 1.0) * x0
            if prev_x0 is not None:
                r = (lam - prev_lam) / h
                x_new = x_new - 0.5 * an * (math.exp(-h) - 1.0) * (x0 - prev_x0) / r
            x = x_new
        prev_x0, prev_lam = x0, lam
    return x
