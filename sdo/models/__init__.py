"""Models behind one denoiser interface, by name or from a local diffusers directory."""

from __future__ import annotations

import os

import torch

from ..registry import Registry
from ..schedule import FLOW_SCHEDULE
from . import configs
from .base import Denoiser
from .diffusers_unet import LatentDecoder, UNetDenoiser
from .digits import digits_ddpm
from .gmm import GaussianMixtureDenoiser, random_gmm
from .local import from_objects, load_local
from .mlp import MLPDenoiser
from .trained import fmnist_ddpm, fmnist_ddpm_v2

MODELS = Registry("model")
register_model = MODELS.register

register_model("gmm", random_gmm)
register_model("gmm-flow", random_gmm, schedule=FLOW_SCHEDULE, prediction_type="flow")
register_model("mlp", MLPDenoiser)
register_model("fmnist-ddpm", fmnist_ddpm)  # trained on Fashion-MNIST, sdo/models/weights/
register_model("fmnist-ddpm-v2", fmnist_ddpm_v2)  # class-conditional, classifier-free guidance
register_model("digits-ddpm", digits_ddpm)  # sklearn 8x8 digits; conditional=True for class-conditional
register_model("unet-tiny", configs.pixel_unet, config=configs.UNET_TINY)
register_model("ddpm-cifar10", configs.pixel_unet, config=configs.DDPM_CIFAR10)
register_model("ddpm-256", configs.pixel_unet, config=configs.DDPM_256)
register_model(
    "ldm-tiny",
    configs.latent_unet,
    unet_config=configs.LDM_TINY_UNET,
    vae_config=configs.LDM_TINY_VAE,
    tokens=configs.LDM_TINY_TOKENS,
    scaling=1.0,
)
register_model(
    "sd15",
    configs.latent_unet,
    unet_config=configs.SD15_UNET,
    vae_config=configs.SD15_VAE,
    tokens=configs.SD15_TOKENS,
    scaling=configs.SD15_SCALING,
)


def get(name, seed: int = 0, **options) -> Denoiser:
    """Build model `name` with weights seeded by `seed`; or load a local diffusers directory path; or wrap
    diffusers objects in memory: a pipeline or a (unet, scheduler[, vae]) tuple (modules shared, not
    copied). A diffusers model keeps its scheduler config as the samplers' defaults."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        return from_objects(name, **options)
    if name not in MODELS and (os.sep in name or name.startswith((".", "~"))) and not os.path.exists(name):
        raise ValueError(f"model path {name!r} does not exist (registered models: {', '.join(names())})")
    if name not in MODELS and os.path.isdir(name):
        return load_local(name, **options).eval()  # loaded here, so ours to put in inference mode
    MODELS.check(name)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MODELS.get(name, **options)
    return model.eval()


def names() -> list[str]:
    """Registered model names."""
    return MODELS.names()


__all__ = [
    "Denoiser",
    "GaussianMixtureDenoiser",
    "LatentDecoder",
    "MLPDenoiser",
    "UNetDenoiser",
    "get",
    "from_objects",
    "load_local",
    "names",
    "random_gmm",
    "register_model",
]
