"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package (never a download)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FMNIST_DIR = Path(os.environ.get("SDO_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))
INSTALL_HINT = "apt-get install dataset-fashion-mnist"
SPLITS = {"train": "train", "test": "t10k"}
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


class DatasetMissing(FileNotFoundError):
    """The Fashion-MNIST package is not installed; the message says how to install it."""


def fmnist_available(root: Path | None = None) -> bool:
    """Whether the Fashion-MNIST idx files are present."""
    root = Path(root or FMNIST_DIR)
    return all(
        (root / f"{p}-{k}-idx{n}-ubyte.gz").exists()
        for p in SPLITS.values()
        for k, n in (("images", 3), ("labels", 1))
    )


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_fmnist(split: str = "train", root: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (n, 28, 28) and labels as int64 (n,) for split 'train' or 'test'."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    root = Path(root or FMNIST_DIR)
    if not fmnist_available(root):
        raise DatasetMissing(f"Fashion-MNIST not found under {root}; install it with `{INSTALL_HINT}`")
    prefix = SPLITS[split]
    images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def to_model_space(images: torch.Tensor) -> torch.Tensor:
    """uint8 (n, 28, 28) -> float (n, 1, 32, 32) in [-1, 1], padded with background (-1)."""
    x = images.float().div(127.5).sub(1.0).unsqueeze(1)
    return F.pad(x, (2, 2, 2, 2), value=-1.0)


def fmnist_tensors(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images in model space (n, 1, 32, 32), [-1, 1], and labels."""
    images, labels = load_fmnist(split)
    return to_model_space(images), labels
