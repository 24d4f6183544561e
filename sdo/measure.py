"""Deterministic and measured costs: FLOPs, saved-tensor bytes, wall time, peak memory (DESIGN.md Sec. 4)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker: we need totals only, and the tracker's backward
    hooks break torch.autograd.grad when a leaf tensor is fed straight into a module."""

    parents = frozenset({"Global"})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of fn() (forward and any backward it runs), by torch's FlopCounterMode."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return int(counter.get_total_flops())


@dataclass
class SavedBytes:
    """Bytes of tensors autograd saved for backward, de-duplicated by storage."""

    total: int = 0


def _storage_key(t: torch.Tensor) -> tuple:
    try:
        s = t.untyped_storage()
        return (t.device.type, s.data_ptr(), s.nbytes())
    except (RuntimeError, NotImplementedError):
        return ("opaque", id(t), t.numel() * t.element_size())


@contextlib.contextmanager
def saved_tensor_bytes() -> Iterator[SavedBytes]:
    """Context measuring the autograd graph's saved-tensor bytes (deterministic memory proxy)."""
    seen: set[tuple] = set()
    out = SavedBytes()

    def pack(t: torch.Tensor):
        key = _storage_key(t)
        if key not in seen:
            seen.add(key)
            out.total += key[2]
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield out


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels on CUDA (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device | str = "cpu") -> tuple[object, float]:
    """(fn(), wall seconds), synchronising the device around the call."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - t0


@contextlib.contextmanager
def cuda_peak_memory(device: torch.device | str) -> Iterator[dict]:
    """Context recording torch.cuda.max_memory_allocated over the block (bytes), CUDA only."""
    rec: dict = {"peak_bytes": None}
    dev = torch.device(device)
    if dev.type != "cuda":
        yield rec
        return
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    yield rec
    torch.cuda.synchronize(dev)
    rec["peak_bytes"] = int(torch.cuda.max_memory_allocated(dev))
