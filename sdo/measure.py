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
    """Bytes of tensors autograd saved for backward, de-duplicated by storage: `total` over the whole block
    (every graph ever built), `peak` the most held at once by live graphs (a freed graph stops counting)."""

    total: int = 0
    live: int = 0
    peak: int = 0


def _storage_key(t: torch.Tensor) -> tuple:
    try:
        s = t.untyped_storage()
        return (t.device.type, s.data_ptr(), s.nbytes())
    except (RuntimeError, NotImplementedError):
        return ("opaque", id(t), t.numel() * t.element_size())


class _Held:
    """A saved tensor as autograd holds it; counts its storage while any graph holds it."""

    def __init__(self, t: torch.Tensor, out: SavedBytes, refs: dict, seen: set):
        self.t, self.key, self.out, self.refs = t, _storage_key(t), out, refs
        if self.key not in seen:
            seen.add(self.key)
            out.total += self.key[2]
        refs[self.key] = refs.get(self.key, 0) + 1
        if refs[self.key] == 1:
            out.live += self.key[2]
            out.peak = max(out.peak, out.live)

    def __del__(self):
        self.refs[self.key] -= 1
        if self.refs[self.key] == 0:
            del self.refs[self.key]
            self.out.live -= self.key[2]


@contextlib.contextmanager
def saved_tensor_bytes() -> Iterator[SavedBytes]:
    """Context measuring the autograd graph's saved-tensor bytes (deterministic memory proxy)."""
    out, refs, seen = SavedBytes(), {}, set()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: _Held(t, out, refs, seen), lambda held: held.t):
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
