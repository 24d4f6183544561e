"""Append-only JSON-lines records with provenance; resume skips the keys already recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sdo.provenance import cpu_name, device_name, now  # noqa: F401 - bench.launch imports them from here
from sdo.provenance import provenance as shared_provenance

RAW = "raw"
RECORDS = "records.jsonl"


def provenance(argv: list[str] | None = None) -> dict:
    """The sweep's provenance (sdo.provenance: source commit or version, library versions, host, command);
    the date and device are recorded per case."""
    rec = shared_provenance(argv)
    rec.pop("date")
    rec.pop("threads")
    return rec


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
