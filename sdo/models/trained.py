"""The suite's own small trained models on Fashion-MNIST, shipped as safetensors in sdo/models/weights/."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..schedule import DDPM_SCHEDULE
from .diffusers_unet import UNetDenoiser

WEIGHTS_DIR = Path(__file__).parent / "weights"

# fmnist-ddpm: a small pixel UNet, 1 channel, 32x32 (Fashion-MNIST padded 28 -> 32), epsilon prediction.
FMNIST_UNET = dict(
    sample_size=32,
    in_channels=1,
    out_channels=1,
    layers_per_block=1,
    block_out_channels=(16, 32, 64),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=None,
    norm_num_groups=8,
)


class FMNISTClassifier(nn.Module):
    """A small CNN on (B, 1, 32, 32) images in [-1, 1]: three conv + max-pool stages, a 128-d penultimate layer
    (the FID feature space), logits over the 10 classes."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 64), features: int = 128, classes: int = 10):
        super().__init__()
        chans = (1, *widths)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2))
            for a, b in zip(chans[:-1], chans[1:])
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * 4 * 4, features), nn.SiLU())
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(features, classes)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each conv stage (for Gram-matrix style losses, paper Eq. 24)."""
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d penultimate features (B, features): the FID feature space."""
        return self.fc(self.feature_maps(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.penultimate(x)))


class ClassifierFeatures(nn.Module):
    """The classifier's conv-stage feature maps as a frozen extractor (for objectives.GramStyle)."""

    def __init__(self, classifier: FMNISTClassifier, stages: tuple[int, ...] = (0, 1)):
        super().__init__()
        self.classifier, self.stages = classifier, stages

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.classifier.feature_maps(x)
        return [feats[i] for i in self.stages]


def weights_path(name: str) -> Path:
    """The shipped safetensors file for `name`; ValueError naming the file when it is missing."""
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.exists():
        raise ValueError(f"trained weights {path} are missing; retrain them with `make models`")
    return path


def _load_state(module: nn.Module, path: Path) -> nn.Module:
    from safetensors.torch import load_file

    state = {k: v.float() for k, v in load_file(str(path)).items()}
    module.load_state_dict(state)
    return module


def fmnist_unet() -> nn.Module:
    """The fmnist-ddpm UNet2DModel architecture (random weights)."""
    from diffusers import UNet2DModel

    return UNet2DModel(**FMNIST_UNET)


def fmnist_ddpm(weights: str | Path | None = None) -> UNetDenoiser:
    """fmnist-ddpm: the trained epsilon-prediction UNet on the linear DDPM schedule (1000 steps)."""
    path = Path(weights) if weights else weights_path("fmnist-ddpm")
    return UNetDenoiser(_load_state(fmnist_unet(), path), DDPM_SCHEDULE, "epsilon")


def fmnist_classifier(weights: str | Path | None = None) -> FMNISTClassifier:
    """The trained Fashion-MNIST classifier, frozen and in eval mode."""
    path = Path(weights) if weights else weights_path("fmnist-classifier")
    model = _load_state(FMNISTClassifier(), path).eval()
    return model.requires_grad_(False)


# fmnist-ddpm-v2: class-conditional (10 classes + a null class for classifier-free guidance), 32x32.
# The size was picked from a measured speed/quality sweep; see fmnist-ddpm-v2.md.
FMNIST_COND_UNET = dict(
    sample_size=32,
    in_channels=1,
    out_channels=1,
    layers_per_block=1,
    block_out_channels=(32, 64, 128),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    attention_head_dim=32,
    norm_num_groups=16,
    num_class_embeds=11,
)


def fmnist_cond_unet(config: dict | None = None) -> nn.Module:
    """The fmnist-ddpm-v2 class-conditional UNet2DModel architecture (random weights)."""
    from diffusers import UNet2DModel

    return UNet2DModel(**(config or FMNIST_COND_UNET))


def fmnist_ddpm_v2(weights: str | Path | None = None, guidance: float = 3.0):
    """fmnist-ddpm-v2: class-conditional epsilon-prediction UNet, classifier-free guidance `guidance`."""
    from .conditional import GuidedUNetDenoiser

    path = Path(weights) if weights else weights_path("fmnist-ddpm-v2")
    return GuidedUNetDenoiser(_load_state(fmnist_cond_unet(), path), DDPM_SCHEDULE, 10, guidance)
