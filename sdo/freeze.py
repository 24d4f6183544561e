"""Which network output the stop-gradient freezes: sg(m_i) freezes the model's own output parameterisation
(the paper's choice); freezing eps, x0_hat or v instead changes the shortcut's frozen chain.

On DDIM (eta = 0) the frozen step x_{i-1}(x_i) is affine in x_i with gain
    eps frozen: alpha_{i-1} / alpha_i,   x0_hat frozen: sigma_{i-1} / sigma_i,   v frozen (VP): alpha_{i-1} alpha_i + sigma_{i-1} sigma_i,
so the chain from x_{N-1} to x_0 multiplies the cotangent by the product of those gains.
"""

from __future__ import annotations

import torch

FREEZE = ("eps", "x0", "v")


def check_freeze(freeze: str | None) -> None:
    """ValueError unless `freeze` is None (the model's own output) or one of FREEZE."""
    if freeze is not None and freeze not in FREEZE:
        raise ValueError(
            f"unknown freeze {freeze!r}; valid: None (the network's own output), {', '.join(FREEZE)}"
        )


def _x0_eps(m: torch.Tensor, x: torch.Tensor, a: float, s: float, prediction_type: str):
    from .samplers.ddim import predict_x0_eps

    return predict_x0_eps(m, x, a, s, prediction_type)


def _model_output(
    x0: torch.Tensor, eps: torch.Tensor, a: float, s: float, prediction_type: str
) -> torch.Tensor:
    """The model output m that gives (x0, eps) at x = a x0 + s eps (inverse of predict_x0_eps)."""
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "v_prediction":
        return a * eps - s * x0
    return eps - x0  # flow velocity


def refreeze(m: torch.Tensor, x: torch.Tensor, a: float, s: float, prediction_type: str, freeze: str):
    """m_i as a function of x_i with `freeze` held constant at its value from the (graph-free) output m.

    x0_hat frozen: eps(x) = (x - a x0) / s; eps frozen: x0(x) = (x - s eps) / a; v frozen (a^2 + s^2 = 1):
    x0(x) = a x - s v, eps(x) = s x + a v.
    """
    x0, eps = _x0_eps(m.detach(), x.detach(), a, s, prediction_type)
    if freeze == "eps":
        x0 = (x - s * eps) / a
    elif freeze == "x0":
        eps = (x - a * x0) / s
    else:
        if prediction_type == "flow":
            raise ValueError(
                "freeze='v' is defined for VP models (alpha^2 + sigma^2 = 1); valid here: eps, x0"
            )
        v = a * eps - s * x0
        x0, eps = a * x - s * v, s * x + a * v
    return _model_output(x0, eps, a, s, prediction_type)


def frozen_gain(coef: list[tuple[float, float]], first: int, freeze: str) -> float:
    """Product of the DDIM frozen-step gains over execution positions first..len(coef)-2 (see module doc)."""
    gain = 1.0
    for p in range(first, len(coef) - 1):
        (a, s), (ap, sp) = coef[p], coef[p + 1]
        gain *= {"eps": ap / a, "x0": sp / s, "v": ap * a + sp * s}[freeze]
    return gain


def ddim_alpha_sigma(solver, i: int) -> tuple[float, float]:
    """(alpha_i, sigma_i) of step i on the native DDIM sampler; ValueError for other samplers."""
    from .samplers.ddim import DDIM

    if not isinstance(solver, DDIM):
        raise ValueError(f"freeze is supported on the native 'ddim' sampler; got {type(solver).__name__}")
    return solver.coef[solver.steps - i]
