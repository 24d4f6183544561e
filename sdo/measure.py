"""Deterministic and measured costs: FLOPs, saved-tensor bytes, live tensor bytes, wall time, peak memory
(docs/design.md Sec. 4)."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
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
    """A saved tensor as autograd holds it, kept as a detached alias: holding the tensor itself (with its
    grad_fn) would make node -> saved variable -> this -> tensor -> node a cycle through C++ that gc cannot
    break, keeping every graph built with retain_graph=True alive. Counts its storage while held."""

    def __init__(self, t: torch.Tensor, out: SavedBytes, refs: dict):
        self.t, self.key, self.out, self.refs = t.detach(), _storage_key(t), out, refs
        refs[self.key] = refs.get(self.key, 0) + 1
        if refs[self.key] == 1:  # a storage no live graph holds yet (an address reused later counts again)
            out.total += self.key[2]
            out.live += self.key[2]
            out.peak = max(out.peak, out.live)

    def __del__(self):
        self.refs[self.key] -= 1
        if self.refs[self.key] == 0:
            del self.refs[self.key]
            self.out.live -= self.key[2]


@contextlib.contextmanager
def saved_tensor_bytes() -> Iterator[SavedBytes]:
    """Context measuring the autograd graph's saved-tensor bytes (deterministic memory proxy). Saves made
    under an inner saved-tensor hook (torch.utils.checkpoint, save_on_cpu) are not seen: use live_tensor_bytes
    for the whole call's memory."""
    out, refs = SavedBytes(), {}
    with torch.autograd.graph.saved_tensors_hooks(lambda t: _Held(t, out, refs), lambda held: held.t):
        yield out


@dataclass
class LiveBytes:
    """Bytes of tensor storages allocated inside a block and still alive: `peak` the most at once, `live` now,
    `allocated` the sum over every storage, `held_at_exit` what the block left alive (0 unless it leaked or
    returned tensors). Exact logical sizes (no allocator rounding), identical run to run."""

    live: int = 0
    peak: int = 0
    allocated: int = 0
    held_at_exit: int | None = None


class _LiveBytesMode(TorchDispatchMode):
    """Follows the storages every op returns (outputs that alias an input, i.e. views and in-place results,
    are not new) and drops each when its storage is freed (a weakref callback on the untyped storage)."""

    def __init__(self, out: LiveBytes):
        super().__init__()
        self.out, self.sizes, self.refs, self.lock = out, {}, {}, threading.Lock()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        inputs = {_cdata(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(result):
            if isinstance(t, torch.Tensor):
                self._follow(t, inputs)
        return result

    def _follow(self, t: torch.Tensor, inputs: set) -> None:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return
        key, n = storage._cdata, storage.nbytes()
        with self.lock:
            if key in self.sizes:  # a resize in place of a storage we follow
                self._add(n - self.sizes[key])
                self.sizes[key] = n
            elif key not in inputs and n > 0:
                self.sizes[key] = n
                self.refs[key] = weakref.ref(storage, lambda _, key=key: self._freed(key))
                self.out.allocated += n
                self._add(n)

    def _add(self, n: int) -> None:
        self.out.live += n
        self.out.peak = max(self.out.peak, self.out.live)

    def _freed(self, key: int) -> None:
        with self.lock:
            n = self.sizes.pop(key, 0)
            self.refs.pop(key, None)
            if self.out.held_at_exit is None:
                self.out.live -= n


def _cdata(t: torch.Tensor) -> int | None:
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):
        return None


@contextlib.contextmanager
def live_tensor_bytes() -> Iterator[LiveBytes]:
    """Context measuring the peak bytes of live tensor storages allocated in the block (forward, backward,
    checkpoint recomputation, saved tensors: everything), on CPU and CUDA alike; tensors that existed
    before the block (parameters, inputs) are not counted."""
    out = LiveBytes()
    mode = _LiveBytesMode(out)
    with mode:
        yield out
    gc.collect(1)  # young generations: cycles made in the block (a full collection costs seconds)
    with mode.lock:
        out.held_at_exit = out.live


MIB = 2**20


def mib(nbytes: float | None) -> float | None:
    """Bytes in MiB (None stays None)."""
    return None if nbytes is None else nbytes / MIB


def format_mib(nbytes: float | None, resolution: float = 0.0, digits: int = 3) -> str:
    """MiB to `digits` significant digits; a value below the measurement's `resolution` (bytes) prints as
    '< res' (e.g. '< 0.25'), a missing one as 'n/a'."""
    if nbytes is None:
        return "n/a"
    if resolution > 0 and nbytes < resolution:
        return f"< {resolution / MIB:.{digits}g}"
    return f"{nbytes / MIB:.{digits}g}"


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


LOAD_MARGIN = 0.5  # a timing is loaded when the 1-minute load exceeded its threads + LOAD_MARGIN


def load_1m() -> float | None:
    """The 1-minute load average now (other processes sharing the CPU inflate times); None where unavailable."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def loaded(load: float | None, threads: int | None) -> bool:
    """True when the machine was busier than the measurement itself: load > threads + LOAD_MARGIN."""
    if load is None or threads is None or not math.isfinite(load):
        return False
    return load > threads + LOAD_MARGIN
