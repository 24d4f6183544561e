"""BPTT with the saved activations moved to host memory while the graph waits for backward (exact)."""

from __future__ import annotations

import dataclasses

import torch

from .bptt import BPTT

OFFLOAD_MODES = ("auto", "always")
CPU_NOTE = "on CPU identical to bptt (activations already in host memory)"
ALWAYS_CPU_NOTE = "on CPU through save_on_cpu hooks (tensors stay where they are): identical to bptt"


@dataclasses.dataclass
class BPTTOffload(BPTT):
    """Full BPTT (paper Eq. 11) under `torch.autograd.graph.save_on_cpu`: every tensor autograd saves is
    copied to (pinned) host memory and copied back in backward, so device memory stays ~flat in N.
    mode='auto' offloads on CUDA only (on CPU it runs plain BPTT); 'always' runs the hooks on CPU too."""

    name = "bptt-offload"
    exact = True
    mode: str = "auto"

    def __post_init__(self):
        if self.mode not in OFFLOAD_MODES:
            raise ValueError(f"unknown bptt-offload mode {self.mode!r}; valid: {', '.join(OFFLOAD_MODES)}")

    def memory_class(self, problem):
        """Device activation memory: saved tensors live in host memory on CUDA (host memory is O(N))."""
        return "O(1) device, O(N) host" if problem.device.type == "cuda" else "O(N)"

    def estimate(self, problem):
        on_cuda = problem.device.type == "cuda"
        if not on_cuda and self.mode == "auto":
            result = super().estimate(problem)
            result.stats["offload"] = CPU_NOTE
            return result
        with torch.autograd.graph.save_on_cpu(pin_memory=on_cuda):
            result = super().estimate(problem)
        result.stats["offload"] = "saved activations in pinned host memory" if on_cuda else ALWAYS_CPU_NOTE
        return result
