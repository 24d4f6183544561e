"""Samplers with a differentiable step, by name: native DDIM and adapters over diffusers schedulers."""

from __future__ import annotations

from ..registry import Registry
from .base import History, Sampler, SamplerSpec
from .ddim import DDIM, predict_x0_eps
from .diffusers_adapter import (
    DDIMAdapter,
    DiffusersSampler,
    DPMSolverAdapter,
    EulerAdapter,
    FlowMatchEulerAdapter,
)

SAMPLERS = Registry("sampler")
register_sampler = SAMPLERS.register

register_sampler("ddim", DDIM)
register_sampler("diffusers-ddim", DDIMAdapter)
register_sampler("dpm++2m", DPMSolverAdapter)
register_sampler("euler", EulerAdapter)
register_sampler("flow-euler", FlowMatchEulerAdapter)


def get(name: str, steps: int = 50, **options) -> SamplerSpec:
    """A sampler spec: `name` with N = `steps` steps; built against a model when the problem is made."""
    SAMPLERS.check(name)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    return SamplerSpec(name, steps, dict(options))


def names() -> list[str]:
    """Registered sampler names."""
    return SAMPLERS.names()


__all__ = [
    "DDIM",
    "DDIMAdapter",
    "DPMSolverAdapter",
    "DiffusersSampler",
    "EulerAdapter",
    "FlowMatchEulerAdapter",
    "History",
    "Sampler",
    "SamplerSpec",
    "get",
    "names",
    "predict_x0_eps",
    "register_sampler",
]
