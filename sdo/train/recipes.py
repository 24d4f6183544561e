"""The training recipes of the suite's own diffusion models: architecture, data and hyper-parameters."""

from __future__ import annotations

from pathlib import Path

import torch

from ..models.trained import WEIGHTS_DIR, fmnist_cond_unet, fmnist_unet
from .ddpm import DDPMRecipe

TRAINING_DIR = WEIGHTS_DIR.parent / "training"  # resumable state, logs and EMA snapshots per model

# EMA snapshots kept for studies of gradient accuracy against training progress (random init -> trained).
SNAPSHOTS = (0, 250, 500, 1000, 2000, 4000, 8000, 12000)


def fmnist_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST training images in model space and their labels."""
    from ..data import fmnist_tensors

    return fmnist_tensors("train")


DIGITS_SNAPSHOTS = (0, 500, 1000, 2000, 5000, 10000, 15000, 20000)


def digits_net() -> torch.nn.Module:
    """The digits-ddpm network (random weights)."""
    from ..models.digits import DigitsNet

    return DigitsNet()


def digits_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The training split of sklearn's 8x8 digits in model space and their labels."""
    from ..models.digits import digits_tensors

    return digits_tensors("train")


RECIPES = {
    # v1: unconditional, 0.65M parameters (kept for reproducibility of earlier results).
    "fmnist-ddpm": (
        lambda: DDPMRecipe(fmnist_unet, steps=5000, batch=32, lr=1e-3, ema_decay=0.999),
        fmnist_data,
    ),
    # v2: class-conditional with 10% label dropout, min-SNR-5 weighting, 2.7M parameters.
    "fmnist-ddpm-v2": (
        lambda: DDPMRecipe(
            fmnist_cond_unet,
            steps=12000,
            batch=64,
            lr=1e-3,
            warmup=500,
            ema_decay=0.9995,
            classes=10,
            label_dropout=0.1,
            min_snr=5.0,
            checkpoint_every=200,
            snapshots=SNAPSHOTS,
        ),
        fmnist_data,
    ),
    # digits-ddpm: sklearn's 8x8 digits, a 0.65M-parameter residual MLP, class-conditional with 20% label
    # dropout (unconditional sampling uses the null class); 20,000 steps at about 21 ms each on one CPU thread
    # (7 minutes; 18 minutes of wall time on the shared 2-core machine under load).
    "digits-ddpm": (
        lambda: DDPMRecipe(
            digits_net,
            steps=20000,
            batch=128,
            lr=1e-3,
            warmup=200,
            ema_decay=0.999,
            classes=10,
            label_dropout=0.2,
            checkpoint_every=1000,
            snapshots=DIGITS_SNAPSHOTS,
        ),
        digits_data,
    ),
}


def recipe_names() -> list[str]:
    return list(RECIPES)


def get_recipe(name: str, **overrides) -> tuple[DDPMRecipe, tuple[torch.Tensor, torch.Tensor]]:
    """The recipe for model `name` with `overrides` (None values ignored), and its training data."""
    if name not in RECIPES:
        raise ValueError(f"unknown model to train {name!r}; valid: {', '.join(RECIPES)}")
    make, data = RECIPES[name]
    recipe = make()
    for key, value in overrides.items():
        if value is not None:
            setattr(recipe, key, value)
    return recipe, data()


def work_dir(name: str, root: Path | None = None) -> Path:
    """Where model `name`'s checkpoint, log and snapshots live."""
    return Path(root or TRAINING_DIR) / name
