"""Where cases run: in this process, in a worker subprocess (default: its own RSS peak, and a crash or a
kill by the OOM killer becomes a status), as submitit jobs on this machine (`local`), or as Slurm array
tasks (`slurm`, bench/cluster)."""

from __future__ import annotations

import importlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from .case import Context, run_case
from .grid import Case, check_choice
from .records import device_name, now

LAUNCHERS = ("subprocess", "inprocess", "local", "slurm")
PREFIX = "@@bench-record "


def import_plugins(modules: Iterable[str]) -> None:
    """Import modules that register extra models / estimators (`--import`), in every process."""
    for name in modules:
        importlib.import_module(name)


def measure(case: Case, ctx: Context | None = None, launcher: str = "inprocess") -> dict:
    """One record: the case's axes and key, its measurements, where and when it ran."""
    rec = {"key": case.key, **case.as_dict(), **run_case(case, ctx)}
    rec.update(device_name=device_name(case.device), date=now(), launcher=launcher, pid=os.getpid())
    return rec


def failed(case: Case, status: str, message: str, launcher: str) -> dict:
    """The record of a case whose process died or timed out before it could report."""
    return {
        "key": case.key,
        **case.as_dict(),
        "status": status,
        "message": message,
        "date": now(),
        "device_name": device_name("cpu") if case.device == "cpu" else case.device,
        "launcher": launcher,
    }


def skipped(case: Case, message: str) -> dict:
    """The record of a case the sweep did not start (time budget); resume runs it later."""
    return {"key": case.key, **case.as_dict(), "status": "skipped", "message": message, "date": now()}


class InProcess:
    """Cases run one after another in this process (tests; interactive use)."""

    name = "inprocess"

    def __init__(self, imports: Iterable[str] = ()):
        import_plugins(imports)
        self.ctx = Context()

    def map(self, cases: Iterable[Case]) -> Iterator[tuple[Case, dict]]:
        for case in cases:
            yield case, measure(case, self.ctx, self.name)

    def close(self) -> None:
        self.ctx = Context()


class Subprocess:
    """Cases run in a worker process (`python -m bench.launch`), restarted after a crash or timeout."""

    name = "subprocess"

    def __init__(self, imports: Iterable[str] = (), timeout_s: float | None = None):
        self.imports, self.timeout_s = list(imports), timeout_s
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        cmd = [sys.executable, "-m", "bench.launch", *self.imports]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()

    @staticmethod
    def _read(stream, lines: queue.Queue) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    def map(self, cases: Iterable[Case]) -> Iterator[tuple[Case, dict]]:
        for case in cases:
            yield case, self.run(case)

    def run(self, case: Case) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(json.dumps(case.as_dict()) + "\n")
        self.proc.stdin.flush()
        while True:
            try:
                line = self.lines.get(timeout=self.timeout_s)
            except queue.Empty:
                self.close()
                return failed(case, "timeout", f"no result within {self.timeout_s} s", self.name)
            if line is None:
                return self._died(case)
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX) :])
            sys.stderr.write(line)

    def _died(self, case: Case) -> dict:
        rc = self.proc.wait()
        self.proc = None
        if rc == -9:  # SIGKILL: on Linux almost always the kernel's OOM killer
            return failed(case, "oom", "worker killed by SIGKILL (out of memory?)", self.name)
        return failed(case, "error", f"worker exited with code {rc}", self.name)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def job(case: dict, imports: list[str]) -> dict:
    """A submitit job: one case in a fresh process."""
    import_plugins(imports)
    return measure(Case(**case), launcher="submitit")


class Submitit:
    """One submitit job per case on this machine, one at a time (concurrent jobs would share the cores
    being timed)."""

    name = "local"

    def __init__(self, folder: Path, imports: Iterable[str] = ()):
        import submitit

        self.imports = list(imports)
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster="local")

    def map(self, cases: Iterable[Case]) -> Iterator[tuple[Case, dict]]:
        for case in cases:
            yield case, self._result(case, self._submit(case))

    def _submit(self, case: Case):
        return self.executor.submit(job, case.as_dict(), self.imports)

    def _result(self, case: Case, j) -> dict:
        try:
            return j.result()
        except Exception as exc:  # the job failed outside run_case (node failure, preemption, ...)
            return failed(case, "error", f"submitit job {j.job_id}: {type(exc).__name__}: {exc}", self.name)

    def close(self) -> None:
        pass


def runner(launcher: str, out: Path, imports: Iterable[str] = (), timeout_s: float | None = None, slurm=None):
    """The runner for `launcher` (see LAUNCHERS); `slurm`: bench.cluster.options.SlurmOptions."""
    check_choice("launcher", launcher, LAUNCHERS)
    if launcher == "inprocess":
        return InProcess(imports)
    if launcher == "subprocess":
        return Subprocess(imports, timeout_s)
    if launcher == "local":
        return Submitit(Path(out) / "submitit", imports)
    from .cluster.slurm import SlurmArray

    return SlurmArray(Path(out) / "submitit", imports, slurm)


def worker(imports: list[str]) -> None:
    """Worker loop: a case as JSON per stdin line -> one prefixed record line on stdout."""
    import_plugins(imports)
    ctx = Context()
    for line in sys.stdin:
        if line.strip():
            rec = measure(Case(**json.loads(line)), ctx, "subprocess")
            sys.stdout.write(PREFIX + json.dumps(rec, default=str) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    worker(sys.argv[1:])
