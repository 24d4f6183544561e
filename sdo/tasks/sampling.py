"""Plain (no-grad) batched sampling from a Denoiser with any registered sampler."""

from __future__ import annotations

import torch

from .. import samplers


@torch.no_grad()
def sample_from_latent(model, z: torch.Tensor, steps: int = 20, sampler: str = "ddim") -> torch.Tensor:
    """x_0 from x_N = init_scale * z by `sampler` with N = `steps` (deterministic samplers only)."""
    solver = samplers.get(sampler, steps=steps).build(model)
    if solver.stochastic:
        raise ValueError(f"sampler {sampler!r} is stochastic; use a deterministic one (e.g. ddim, eta=0)")
    x, history = solver.init_scale * z, solver.initial_history()
    for i in range(steps, 0, -1):
        m = model(solver.model_input(i, x), solver.timestep(i))
        x, history = solver.step(i, x, m, history)
    return x


def latents(model, n: int, seed: int) -> torch.Tensor:
    """n standard-normal latents of the model's sample shape, seeded."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *model.sample_shape), generator=g)


@torch.no_grad()
def generate(
    model, n: int, steps: int = 20, seed: int = 0, batch: int = 250, sampler: str = "ddim"
) -> torch.Tensor:
    """n samples (clamped to [-1, 1]) in batches of `batch`, from seeded latents."""
    z = latents(model, n, seed)
    outs = [sample_from_latent(model, z[i : i + batch], steps, sampler) for i in range(0, n, batch)]
    return torch.cat(outs).clamp(-1, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 [0, 255]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
