"""Where cases run: whole groups in this process or in a fresh worker process per group (default; see
bench/workers.py: a crash or a kill by the OOM killer becomes a status), one case per submitit job on this
machine (`local`), or groups as Slurm array tasks (`slurm`, bench/cluster)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .case import Context, run_case
from .grid import Case, check_choice
from .records import device_name, now

LAUNCHERS = ("subprocess", "inprocess", "local", "slurm")


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
    if launcher in ("inprocess", "subprocess"):  # whole groups, rounds interleaved (bench.workers)
        from .workers import group_runner

        return group_runner(launcher, imports, timeout_s)
    if launcher == "local":
        return Submitit(Path(out) / "submitit", imports)
    from .cluster.slurm import SlurmArray

    return SlurmArray(Path(out) / "submitit", imports, slurm)
