"""Where a result came from: the sdo source (git commit and dirty flag, or the installed version), library
versions, host, device, threads, date and command. Independent of the working directory."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str, cwd: Path = PACKAGE_DIR) -> str | None:
    """`git -C cwd args...` stdout, or None when git or the repository is unavailable."""
    try:
        out = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def source(package_dir: Path = PACKAGE_DIR) -> dict:
    """The installed package's source: its git commit and dirty flag when the package directory is tracked
    by a git work tree (an editable or in-place install), else the distribution version (a wheel)."""
    tracked = _git("ls-files", "--error-unmatch", "__init__.py", cwd=package_dir) is not None
    if tracked:
        dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=package_dir)
        return {
            "git_commit": _git("rev-parse", "HEAD", cwd=package_dir),
            "git_dirty": None if dirty is None else bool(dirty),
            "sdo_version": package_version(),
            "sdo_source": "git",
        }
    return {
        "git_commit": None,
        "git_dirty": None,
        "sdo_version": package_version(),
        "sdo_source": "installed",
    }


def package_version() -> str:
    """The installed sdo distribution's version (the module's __version__ when it is not installed)."""
    try:
        return importlib.metadata.version("sdo")
    except importlib.metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (platform.processor() elsewhere) and the thread count."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


def device_name(device: str | torch.device = "cpu") -> str:
    """A readable name of a device: the GPU's name, or the CPU model with the thread count."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return cpu_name()


def now() -> str:
    """The UTC date and time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def provenance(argv: list[str] | None = None, device: str | torch.device | None = None) -> dict:
    """Source (commit, dirty, version), torch/diffusers/python versions, platform, host, threads, date and
    the command (`argv`, default sys.argv); with `device`, the device and its readable name too."""
    rec = {
        **source(),
        "torch_version": torch.__version__,
        "diffusers_version": importlib.metadata.version("diffusers"),  # read without importing diffusers
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "host": platform.node(),
        "threads": torch.get_num_threads(),
        "date": now(),
        "command": shlex.join([os.path.basename(sys.executable), *(sys.argv if argv is None else argv)]),
    }
    if device is not None:
        rec["device"], rec["device_name"] = str(device), device_name(device)
    return rec
