"""Samplers with a differentiable step, by name: native DDIM and adapters over diffusers schedulers."""

from __future__ import annotations

from ..registry import Registry
from .base import History, Sampler, SamplerSpec
from .ddim import DDIM, predict_x0_eps, vp_timesteps
from .diffusers_adapter import (
    DDIMAdapter,
    DiffusersSampler,
    DPMSolverAdapter,
    EulerAdapter,
    FlowMatchEulerAdapter,
)
from .options import check_options

SAMPLERS = Registry("sampler")
register_sampler = SAMPLERS.register

register_sampler("ddim", DDIM)
register_sampler("diffusers-ddim", DDIMAdapter)
register_sampler("dpm++2m", DPMSolverAdapter)
register_sampler("euler", EulerAdapter)
register_sampler("flow-euler", FlowMatchEulerAdapter)


def get(name: str, steps: int = 50, **options) -> SamplerSpec:
    """A sampler spec: `name` with N = `steps` steps; built against a model when the problem is made.

    `options` override the sampler's settings; for a model loaded from a diffusers checkpoint (directory,
    pipeline or (unet, scheduler) pair) the defaults are its scheduler config. An unknown option or one of
    the wrong type is a ValueError listing the valid ones (`sdo.samplers.options(name)`).
    """
    SAMPLERS.check(name)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    check_options(name, SAMPLERS.factory(name), options)
    return SamplerSpec(name, steps, dict(options))


def options(name: str) -> dict | None:
    """{option: default} sampler `name` accepts (None: any keyword)."""
    from .options import declared_options

    return declared_options(SAMPLERS.factory(name))


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
    "options",
    "predict_x0_eps",
    "register_sampler",
    "vp_timesteps",
]
