"""Peak memory of a block above the state after model load and warm-up (docs/design.md Sec. 4).

CUDA: the caching allocator's peak (`max_memory_allocated`). CPU: the process's peak resident set size
(VmHWM), reset before the block through /proc/self/clear_refs (Linux), after returning freed heap pages
to the OS with malloc_trim, so the figure is the case's own high-water mark. The subprocess launcher
runs cases in a worker process that holds nothing but the current model and reference gradient.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from collections.abc import Iterator

import torch

from sdo.measure import cuda_peak_memory, synchronize

_STATUS = "/proc/self/status"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size (None where /proc is unavailable)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> int | None:
    """Peak resident set size since start or the last reset_peak_rss()."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc malloc_trim)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).malloc_trim(0)


@contextlib.contextmanager
def peak_memory(device: str | torch.device) -> Iterator[dict]:
    """Context filling {'peak_bytes': peak above the start, 'peak_total_bytes': absolute, 'method': ...}."""
    dev = torch.device(device)
    rec: dict = {"peak_bytes": None, "peak_total_bytes": None, "method": None}
    if dev.type == "cuda":
        synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        with cuda_peak_memory(dev) as cuda:
            yield rec
        rec.update(peak_total_bytes=cuda["peak_bytes"], method="cuda-allocator")
        rec["peak_bytes"] = cuda["peak_bytes"] - base
        return
    release_memory()
    base = rss_bytes()
    ok = base is not None and reset_peak_rss()
    yield rec
    if ok:
        peak = peak_rss_bytes()
        rec.update(peak_bytes=max(peak - base, 0), peak_total_bytes=peak, method="cpu-rss-hwm")
