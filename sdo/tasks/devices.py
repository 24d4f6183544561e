"""Where the tasks run: the device named on the command line, the device a module lives on, and results moved
between devices (chunks are stored on the CPU, so a run can be continued on another device)."""

from __future__ import annotations

import itertools

import torch

from ..problem import device_of

TASK_DEVICES = ("cpu", "cuda")


def task_device(device: str | torch.device) -> torch.device:
    """The device the tasks run on: cpu or an available cuda[:k] (ValueError naming the valid choices)."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        kind = None
    if kind not in TASK_DEVICES:
        raise ValueError(f"unsupported device {str(device)!r} for the tasks; valid: cpu, cuda, cuda:k")
    return device_of(device)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (cpu for a module without any)."""
    for t in itertools.chain(module.parameters(), module.buffers()):
        return t.device
    return torch.device("cpu")


def moved(value, device: str | torch.device):
    """`value` with every tensor in it (through dicts, lists and tuples) on `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: moved(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(moved(v, device) for v in value)
    return value
