"""Resumable task runs: every finished chunk (one method on one batch of samples, a fine-tuning run, a sweep
point, a batch of gradient norms) is a file under <out>/chunks/ with its settings and provenance. A re-run
loads the chunks on disk, computes only the missing ones (until an optional time or chunk limit) and builds
its tables from whatever chunks exist, saying how much of the planned work they rest on."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

CHUNK_DIR = "chunks"


def chunk_path(out: Path, key: str) -> Path:
    """The file of chunk `key` under `out`."""
    return Path(out) / CHUNK_DIR / f"{key}.pt"


def plain(settings: dict) -> dict:
    """`settings` as JSON types (tuples become lists), so stored and requested settings compare equal."""
    return json.loads(json.dumps(settings, default=str))


def storable(value):
    """`value` with numpy arrays as tensors, tensors on the CPU and numpy scalars as Python numbers (what
    torch.load(weights_only) reads back on any machine)."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(storable(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def differences(stored: dict, wanted: dict) -> list[str]:
    """'key: stored -> wanted' for every setting that differs."""
    keys = sorted(set(stored) | set(wanted))
    return [f"{k}: {stored.get(k)!r} -> {wanted.get(k)!r}" for k in keys if stored.get(k) != wanted.get(k)]


def chunk_device(prov: dict) -> str:
    """Where a chunk was computed, from its provenance: 'cuda:0 (NVIDIA H100 ...)' or 'cpu (<CPU model>)'
    (chunks that record no device ran on the CPU)."""
    return f"{prov.get('device', 'cpu')} ({prov.get('device_name', 'unknown')})"


def load_chunk(out: Path, key: str, settings: dict) -> dict | None:
    """The stored chunk `key` (settings, provenance, result), None when absent; ValueError if its settings differ."""
    path = chunk_path(out, key)
    if not path.exists():
        return None
    chunk = torch.load(path, weights_only=True)
    diff = differences(chunk["settings"], plain(settings))
    if diff:
        raise ValueError(
            f"{path} was computed with other settings (stored -> requested: {'; '.join(diff)}); rerun with the "
            f"stored settings, use another --out, or delete that chunk file (or the whole {Path(out) / CHUNK_DIR} "
            "folder) to recompute it"
        )
    return chunk


def save_chunk(out: Path, key: str, settings: dict, result: dict, prov: dict) -> Path:
    """Write chunk `key` atomically (a temporary file, then os.replace) with its settings and provenance."""
    path = chunk_path(out, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = dict(key=key, settings=plain(settings), provenance=prov, result=storable(result))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(chunk, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class ChunkRunner:
    """Loads finished chunks and computes missing ones; starts none after `max_minutes` or after `max_chunks`
    new ones (None: no limit)."""

    def __init__(
        self, out: Path, max_minutes: float | None = None, max_chunks: int | None = None, device="cpu"
    ):
        if max_minutes is not None and max_minutes < 0:
            raise ValueError(f"max_minutes must be >= 0 or None; got {max_minutes}")
        if max_chunks is not None and max_chunks < 0:
            raise ValueError(f"max_chunks must be >= 0 or None; got {max_chunks}")
        self.out, self.device, self.max_chunks = Path(out), device, max_chunks
        self.deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
        self.loaded, self.computed, self.missing, self.origins = [], [], [], {}
        self.bar, self._provenance = None, None

    def stopped(self) -> bool:
        """Whether the time or chunk limit forbids starting another chunk."""
        late = self.deadline is not None and time.monotonic() >= self.deadline
        return late or (self.max_chunks is not None and len(self.computed) >= self.max_chunks)

    def progress(self, desc: str, total: int) -> None:
        """Start a progress bar of `total` chunks (closing the previous one)."""
        self.close()
        self.bar = tqdm(total=total, desc=desc, unit="chunk")

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def provenance(self) -> dict:
        """Provenance of a chunk saved now (the source and versions read once per run, the date now)."""
        from ..provenance import now, provenance

        if self._provenance is None:
            self._provenance = plain(provenance(device=self.device))
        return self._provenance | {"date": now()}

    def get(self, key: str, settings: dict, compute: Callable[[], dict]) -> dict | None:
        """Chunk `key`'s result (its tensors on the CPU): from disk, else computed and saved; None when a limit
        stops it (noted missing)."""
        chunk = load_chunk(self.out, key, settings)
        if chunk is not None:
            result = chunk["result"]
            self.loaded.append(key)
            self.origins[key] = chunk_device(chunk.get("provenance", {}))
        elif self.stopped():
            self.missing.append(key)
            result = None
        else:
            result = storable(compute())
            prov = self.provenance()
            save_chunk(self.out, key, settings, result, prov)
            self.computed.append(key)
            self.origins[key] = chunk_device(prov)
        self._tick(key)
        return result

    def skip(self, keys: Iterable[str]) -> None:
        """Note `keys` as missing without looking for them (what they depend on is missing)."""
        for key in keys:
            self.missing.append(key)
            self._tick(key)

    def _tick(self, key: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(key, refresh=False)
            self.bar.update()

    def coverage(self, keys: Iterable[str]) -> dict:
        """How many of the planned chunks `keys` are stored, which are missing, and the devices that computed
        the stored ones."""
        keys, absent = list(keys), set(self.missing)
        missing = [k for k in keys if k in absent]
        return dict(
            planned_chunks=len(keys),
            stored_chunks=len(keys) - len(missing),
            complete=not missing,
            missing_chunks=missing,
            chunk_devices=sorted({self.origins[k] for k in keys if k in self.origins}),
        )

    def summary(self) -> str:
        """One line: chunks loaded, computed now and missing."""
        line = (
            f"chunks under {self.out / CHUNK_DIR}: {len(self.loaded)} loaded, {len(self.computed)} computed now, "
            f"{len(self.missing)} missing"
        )
        if self.missing:
            line += " (a limit stopped the run; the same command computes only what is missing)"
        return line


def _hash_values(h, t: torch.Tensor) -> None:
    """Feed a tensor's raw bytes to the hash `h`."""
    h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def fingerprint(module: torch.nn.Module) -> str:
    """A short SHA-256 of a module's state (parameters and buffers): other weights give another value."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        _hash_values(h, t)
    return h.hexdigest()[:16]


def tensor_digest(*tensors: torch.Tensor | None) -> str:
    """A short SHA-256 of tensors' values, dtypes and shapes (None counts as absent)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        _hash_values(h, t)
    return h.hexdigest()[:16]


def settings_of(config, fields: Iterable[str], **extra) -> dict:
    """The named fields of a config with `extra`: what a chunk's result depends on."""
    values = vars(config) if hasattr(config, "__dataclass_fields__") else dict(config)
    return {k: values[k] for k in fields} | extra


def model_settings(tm) -> dict:
    """The models a task's chunks depend on: name, weight fingerprints and classifier-free guidance."""
    return dict(
        model=tm.name,
        model_weights=fingerprint(tm.model),
        guidance=getattr(tm.model, "guidance", None),
        attacked_weights=fingerprint(tm.attacked),
        judge_weights=fingerprint(tm.judge),
    )


def coverage_note(stored: int, planned: int, unit: str) -> str:
    """'complete: 600 samples' or 'partial: 120 of 600 planned samples (20 %)'."""
    if planned and stored >= planned:
        return f"complete: {stored} {unit}"
    pct = 100 * stored / planned if planned else 0.0
    return f"partial: {stored} of {planned} planned {unit} ({pct:.0f} %)"


MISSING_GROUPS_SHOWN = 12


def missing_groups(keys: list[str]) -> str:
    """Missing chunk keys grouped by all but their last part: 'adversarial/gd/seed1/sdo (4)', ..."""
    counts = {}
    for key in keys:
        group = key.rsplit("/", 1)[0]
        counts[group] = counts.get(group, 0) + 1
    shown = [f"{g} ({n})" for g, n in list(counts.items())[:MISSING_GROUPS_SHOWN]]
    more = len(counts) - MISSING_GROUPS_SHOWN
    return ", ".join(shown) + (f" and {more} more groups" if more > 0 else "")


def table_note(cover: dict, task: str, json_name: str) -> str:
    """The line under a table saying whether it rests on all planned chunks, and which are missing."""
    stored, planned = cover["stored_chunks"], cover["planned_chunks"]
    if cover["complete"]:
        return f"Complete: all {planned} planned {task} chunks are stored."
    return (
        f"**Partial**: {stored} of {planned} planned {task} chunks are stored ({100 * stored / planned:.0f} %); "
        f"rows with complete = False rest on less than the planned work (wider intervals). Missing: "
        f"{missing_groups(cover['missing_chunks'])}; every missing chunk is listed in {json_name}, and the "
        "same command computes them."
    )
