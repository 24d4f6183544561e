"""Append-only JSON-lines records with provenance; resume skips the keys already recorded."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

RAW = "raw"
RECORDS = "records.jsonl"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (platform.processor() elsewhere) and the thread count."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


def device_name(device: str) -> str:
    """A readable name of the device a case ran on."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return cpu_name()


def provenance(argv: list[str] | None = None) -> dict:
    """Git commit and dirty flag, library versions, host, date and the exact command of this sweep."""
    import diffusers

    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if dirty is None else bool(dirty),
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "host": platform.node(),
        "command": shlex.join([os.path.basename(sys.executable), *(sys.argv if argv is None else argv)]),
    }


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def records_path(out: str | Path) -> Path:
    return Path(out) / RAW / RECORDS


def append(out: str | Path, record: dict) -> None:
    """Append one record (one line) and flush it to disk, so an interrupted sweep loses nothing."""
    path = records_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def load(out: str | Path) -> list[dict]:
    """Every record under out/raw/*.jsonl (a torn last line from a killed run is skipped)."""
    rows = []
    for path in sorted((Path(out) / RAW).glob("*.jsonl")):
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows


def latest(rows: list[dict]) -> list[dict]:
    """The last record of each case key (a re-run of a failed case supersedes it)."""
    by_key = {r["key"]: r for r in rows if "key" in r}
    return list(by_key.values())


def finished(out: str | Path, retry: tuple[str, ...] = ()) -> set[str]:
    """Keys already recorded, except those whose latest status is `skipped` (never started) or in `retry`."""
    return {r["key"] for r in latest(load(out)) if r.get("status") not in ("skipped", *retry)}
