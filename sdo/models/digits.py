"""digits-ddpm: a small class-conditional DDPM on scikit-learn's 8x8 digits, cheap enough for float64 BPTT at
N = 1000 on a trained (not random) model, and digits-classifier, the CNN that scores its samples."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from ..schedule import DDPM_SCHEDULE
from .base import Denoiser, timestep_batch
from .mlp import sinusoidal_embedding

CLASSES = 10
TEST_SIZE = (
    297  # held-out images (a seeded split of the 1,797); the DDPM and the classifier train on the rest
)


def digits_tensors(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits (values 0..16) as (n, 1, 8, 8) float32 in [-1, 1] and int64 labels, seeded split."""
    from sklearn.datasets import load_digits

    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; valid: train, test")
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).div(8.0).sub(1.0)[:, None]
    y = torch.tensor(data.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    idx = perm[TEST_SIZE:] if split == "train" else perm[:TEST_SIZE]
    return x[idx], y[idx]


def class_embedding(table: nn.Embedding, labels: torch.Tensor | None, batch: int) -> torch.Tensor:
    """Rows of `table` for integer labels, weights @ rows for float class weights (B, k), the null row for None."""
    if labels is None:
        labels = torch.full((batch,), table.num_embeddings - 1, device=table.weight.device)
    if labels.is_floating_point():
        return labels.to(table.weight.dtype) @ table.weight[: labels.shape[-1]]
    return table(labels)


class DigitsNet(nn.Module):
    """A residual MLP eps_theta(x, t, c) on flattened 8x8 images: time and class embeddings added in every
    block; class index `classes` is the null class (classifier-free guidance). Returns `.sample` like diffusers."""

    def __init__(self, hidden: int = 256, depth: int = 4, classes: int = CLASSES, pixels: int = 64):
        super().__init__()
        self.pixels = pixels
        self.inp = nn.Linear(pixels, hidden)
        self.time = nn.Sequential(nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.label = nn.Embedding(classes + 1, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth)
        )
        self.mix = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, pixels))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t, class_labels: torch.Tensor | None = None) -> SimpleNamespace:
        flat = x.reshape(x.shape[0], self.pixels)
        t = timestep_batch(t, flat)
        emb = self.time(sinusoidal_embedding(t, 64)) + class_embedding(self.label, class_labels, x.shape[0])
        h = self.inp(flat)
        for block, mix in zip(self.blocks, self.mix):
            h = h + mix(block(h) + emb)
        return SimpleNamespace(sample=self.out(h).reshape(x.shape))


class DigitsDenoiser(Denoiser):
    """The trained DigitsNet behind the Denoiser interface: unconditional (the null class, one call) or
    conditional on a (B, 10) class-weight vector c with classifier-free guidance w (2 calls batched when w != 1)."""

    def __init__(self, net: DigitsNet, conditional: bool = False, guidance: float = 1.0):
        super().__init__(DDPM_SCHEDULE, "epsilon", (1, 8, 8), (CLASSES,) if conditional else None)
        self.net, self.conditional, self.guidance = net, conditional, float(guidance)

    def default_cond(self, batch: int, generator: torch.Generator) -> torch.Tensor | None:
        """Random classes as one-hot (B, 10) when conditional; None otherwise."""
        if not self.conditional:
            return None
        labels = torch.randint(0, CLASSES, (batch,), generator=generator)
        return nn.functional.one_hot(labels, CLASSES).float()

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None) -> torch.Tensor:
        if not self.conditional or cond is None:
            if self.conditional:
                raise ValueError(f"this conditional model needs a class vector cond of shape (B, {CLASSES})")
            return self.net(x, t).sample
        if self.guidance == 1.0:
            return self.net(x, t, cond).sample
        eps_c, eps_u = self.net(torch.cat([x, x]), _twice(t, x), _with_null(cond)).sample.chunk(2)
        return eps_u + self.guidance * (eps_c - eps_u)


def _twice(t, x: torch.Tensor) -> torch.Tensor:
    t = timestep_batch(t, x)
    return torch.cat([t, t])


def _with_null(cond: torch.Tensor) -> torch.Tensor:
    """[c padded with a 0 null weight; the null class one-hot] as (2B, 11) class weights."""
    null = torch.zeros(cond.shape[0], CLASSES + 1, dtype=cond.dtype, device=cond.device)
    null[:, -1] = 1.0
    return torch.cat([nn.functional.pad(cond, (0, 1)), null])


class DigitsClassifier(nn.Module):
    """A small CNN on (B, 1, 8, 8) digits in [-1, 1]: two 3x3 conv stages, a 64-d penultimate layer, 10 logits."""

    def __init__(self, widths: tuple[int, int] = (32, 64), features: int = 64):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(widths[0], widths[1], 3, padding=1),
            nn.SiLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(widths[1] * 16, features), nn.SiLU())
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(features, CLASSES)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d penultimate features (the feature space of the card's Frechet distance)."""
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.penultimate(x)))


def digits_ddpm(weights: str | Path | None = None, conditional: bool = False, guidance: float = 1.0):
    """digits-ddpm: the trained DigitsNet on the linear DDPM schedule (1000 steps), epsilon prediction."""
    from .trained import _load_state, weights_path

    path = Path(weights) if weights else weights_path("digits-ddpm")
    return DigitsDenoiser(_load_state(DigitsNet(), path), conditional, guidance)


def digits_classifier(weights: str | Path | None = None) -> DigitsClassifier:
    """The trained digits classifier, frozen and in eval mode."""
    from .trained import _load_state, weights_path

    path = Path(weights) if weights else weights_path("digits-classifier")
    return _load_state(DigitsClassifier(), path).eval().requires_grad_(False)
