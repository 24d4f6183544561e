"""Group runners for this machine: a group's cases measured together (bench.case.run_group), in this
process or in a fresh worker process per group, so every group starts from a clean baseline (a case that
leaks memory cannot shift the next group's RSS) and a crash or an OOM kill becomes a status."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator

from .case import Context, run_group
from .grid import Case
from .launch import failed, import_plugins
from .records import device_name, now

PREFIX = "@@bench-record "
RUNNING = "@@bench-running "
GROUP_LAUNCHERS = ("subprocess", "inprocess")


def measure_group(cases: list[Case], ctx: Context | None, launcher: str, running=None) -> list[dict]:
    """One record per case: its axes and key, its measurements, where and when it ran."""
    recs = run_group(cases, ctx, running)
    where = dict(date=now(), launcher=launcher, pid=os.getpid(), group_id=f"{os.getpid()}-{time.time_ns()}")
    return [
        {"key": c.key, **c.as_dict(), **r, "device_name": device_name(c.device), **where}
        for c, r in zip(cases, recs)
    ]


class InProcessGroups:
    """Groups run one after another in this process (tests; interactive use)."""

    name = "inprocess"

    def __init__(self, imports: Iterable[str] = ()):
        import_plugins(imports)
        self.ctx = Context()

    def map(self, groups: Iterable[list[Case]]) -> Iterator[tuple[list[Case], list[dict]]]:
        for cases in groups:
            yield cases, measure_group(cases, self.ctx, self.name)

    def close(self) -> None:
        self.ctx = Context()


class SubprocessGroups:
    """Each group in a fresh worker process (`python -m bench.workers`); a worker that dies or times out
    fails the group's unreported cases with a status."""

    name = "subprocess"

    def __init__(self, imports: Iterable[str] = (), timeout_s: float | None = None):
        self.imports, self.timeout_s = list(imports), timeout_s
        self.proc: subprocess.Popen | None = None

    def map(self, groups: Iterable[list[Case]]) -> Iterator[tuple[list[Case], list[dict]]]:
        for cases in groups:
            yield cases, self.run(cases)

    def run(self, cases: list[Case]) -> list[dict]:
        """The group's records; when the worker dies, the case it was running gets the status and the
        others are measured again in a fresh worker without it."""
        recs, culprit = self._attempt(cases)
        if culprit is None:
            return recs
        rest = [c for c in cases if c.key != culprit.key]
        by_key = {r["key"]: r for r in (self.run(rest) if rest else [])}
        by_key[culprit.key] = recs[0]
        return [by_key[c.key] for c in cases]

    def _attempt(self, cases: list[Case]) -> tuple[list[dict], Case | None]:
        """(records, None) from a worker that reported, or ([the failed record], the case it ran)."""
        self.close()
        cmd = [sys.executable, "-m", "bench.workers", *self.imports]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_read, args=(self.proc.stdout, lines), daemon=True).start()
        self.proc.stdin.write(json.dumps([c.as_dict() for c in cases]) + "\n")
        self.proc.stdin.close()
        by_key, current = {c.key: c for c in cases}, cases[0]
        while True:
            try:
                line = lines.get(timeout=self.timeout_s)
            except queue.Empty:
                self.close()
                return [
                    failed(current, "timeout", f"no progress within {self.timeout_s} s", self.name)
                ], current
            if line is None:
                return [self._died(current)], current
            if line.startswith(RUNNING):
                current = by_key[line[len(RUNNING) :].strip()]
            elif line.startswith(PREFIX):
                self.close()
                return json.loads(line[len(PREFIX) :]), None
            else:
                sys.stderr.write(line)

    def _died(self, case: Case) -> dict:
        rc = self.proc.wait()
        self.proc = None
        if rc == -9:  # SIGKILL: on Linux almost always the kernel's OOM killer
            return failed(case, "oom", "worker killed by SIGKILL (out of memory?)", self.name)
        return failed(case, "error", f"worker exited with code {rc}", self.name)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None


def _read(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def group_runner(launcher: str, imports: Iterable[str] = (), timeout_s: float | None = None):
    """The group runner for `launcher` (one of GROUP_LAUNCHERS)."""
    if launcher == "inprocess":
        return InProcessGroups(imports)
    return SubprocessGroups(imports, timeout_s)


def worker(imports: list[str]) -> None:
    """Worker: one group as a JSON list of cases on stdin -> one prefixed line with its records."""
    import_plugins(imports)
    cases = [Case(**c) for c in json.loads(sys.stdin.readline())]

    def running(case: Case) -> None:
        sys.stdout.write(RUNNING + case.key + "\n")
        sys.stdout.flush()

    recs = measure_group(cases, Context(), "subprocess", running)
    sys.stdout.write(PREFIX + json.dumps(recs, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    worker(sys.argv[1:])
