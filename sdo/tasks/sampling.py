"""Plain (no-grad) batched sampling from a Denoiser with any registered sampler, optionally class-conditional,
and the coupled (EDICT) sampler that the reversible estimator differentiates."""

from __future__ import annotations

import torch

from .. import samplers
from .devices import module_device


@torch.no_grad()
def sample_from_latent(
    model, z: torch.Tensor, steps: int = 20, sampler: str = "ddim", cond: torch.Tensor | None = None
) -> torch.Tensor:
    """x_0 from x_N = init_scale * z by `sampler` with N = `steps` (deterministic samplers only)."""
    solver = samplers.get(sampler, steps=steps).build(model)
    if solver.stochastic:
        raise ValueError(f"sampler {sampler!r} is stochastic; use a deterministic one (e.g. ddim, eta=0)")
    x, history = solver.init_scale * z, solver.initial_history()
    for i in range(steps, 0, -1):
        m = model(solver.model_input(i, x), solver.timestep(i), cond)
        x, history = solver.step(i, x, m, history)
    return x


@torch.no_grad()
def coupled_sample_from_latent(
    model, z: torch.Tensor, steps: int, cond: torch.Tensor | None = None, mix: float = 0.93
) -> torch.Tensor:
    """x_0 of the reversible estimator's coupled EDICT sampler (DDIM steps, mixing p) from x_N = y_N = z."""
    from ..estimators.reversible import coupled_sample
    from ..loop import Rollout
    from ..problem import Problem

    problem = Problem(
        model,
        samplers.get("ddim", steps=steps),
        lambda x: x.sum(),
        batch=len(z),
        latent=z,
        cond=cond,
        device=z.device,
    )
    x, _ = coupled_sample(Rollout(problem), problem.solver.init_scale * problem.latent, steps, mix)
    return x


def latents(model, n: int, seed: int) -> torch.Tensor:
    """n standard-normal latents of the model's sample shape, seeded, on the model's device (drawn on the CPU,
    so every device gets the same values)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *model.sample_shape), generator=g).to(module_device(model))


def class_cond(model, labels: torch.Tensor) -> torch.Tensor | None:
    """One-hot (B, classes) conditioning on the model's device for a class-conditional model; None for an
    unconditional one."""
    if model.cond_shape is None:
        return None
    return torch.nn.functional.one_hot(labels.long(), model.cond_shape[0]).float().to(module_device(model))


@torch.no_grad()
def generate(
    model,
    n: int,
    steps: int = 20,
    seed: int = 0,
    batch: int = 250,
    sampler: str = "ddim",
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """n samples (clamped to [-1, 1]) in batches of `batch`, from seeded latents (class `labels` if given)."""
    z = latents(model, n, seed)
    cond = None if labels is None else class_cond(model, labels)
    outs = [
        sample_from_latent(
            model, z[i : i + batch], steps, sampler, None if cond is None else cond[i : i + batch]
        )
        for i in range(0, n, batch)
    ]
    return torch.cat(outs).clamp(-1, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 [0, 255]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
