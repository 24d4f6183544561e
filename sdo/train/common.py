"""Shared training helpers: seeding, checkpoints that resume, safetensors export, progress logs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn


def save_safetensors(module: nn.Module | dict, path: Path, half: bool = False) -> None:
    """Write a state dict as safetensors (optionally fp16) to `path`."""
    from safetensors.torch import save_file

    state = module.state_dict() if isinstance(module, nn.Module) else module
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


def save_checkpoint(path: Path, **state) -> None:
    """Atomically save a resumable training checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint at `path`, or None when there is none."""
    return torch.load(path, weights_only=False) if path.exists() else None


class ProgressLog:
    """Append JSON lines {step, loss, wall_s, ...} to a log file, flushing each line."""

    def __init__(self, path: Path, wall_offset: float = 0.0):
        self.path, self.start, self.offset = path, time.time(), wall_offset
        path.parent.mkdir(parents=True, exist_ok=True)

    def wall(self) -> float:
        """Training wall time so far, including time from resumed runs."""
        return self.offset + time.time() - self.start

    def write(self, **fields) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({**fields, "wall_s": round(self.wall(), 1)}) + "\n")


def infinite_batches(data: torch.Tensor, labels: torch.Tensor, batch: int, generator: torch.Generator):
    """Shuffled minibatches forever (one permutation per epoch), seeded."""
    n = data.shape[0]
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch + 1, batch):
            idx = perm[i : i + batch]
            yield data[idx], labels[idx]
