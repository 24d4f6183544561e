"""The `slurm` launcher: a sweep's pending groups (cases sharing model, sampler, N, wrt, dtype, device) go
to Slurm as one job array, one group per array task, measured together as the subprocess launcher does
(bench.workers.measure_group); at most --slurm-array-parallelism tasks run at once, and the array is split
only where the cluster's MaxArraySize is smaller. Records come back as tasks end; a task that ends without
a result (cancelled, node failure, out of memory, time limit) fails its cases with its Slurm state, read
from squeue (see watcher.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import launch
from ..grid import Case
from .options import SlurmOptions
from .watcher import QueueWatcher, run

POLL_S = 2.0  # how often result files are looked for
QUEUE_DELAY_S = 60  # squeue is asked at 2, 4, 8, ... s after the last submission, then at most this often
STATUS = {"TIMEOUT": "timeout", "DEADLINE": "timeout", "OUT_OF_MEMORY": "oom"}  # any other state: error
ENV = {  # record field <- the variable Slurm sets in a job
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
    "slurm_array_task_id": "SLURM_ARRAY_TASK_ID",
    "slurm_node": "SLURMD_NODENAME",
}


def slurm_ids(environ: dict | None = None) -> dict:
    """The Slurm job id, array job and task ids and node name of the running job ({} outside Slurm)."""
    environ = os.environ if environ is None else environ
    if "SLURM_JOB_ID" not in environ:
        return {}
    return {field: environ.get(var) for field, var in ENV.items()}


def task(cases: list[dict], imports: list[str]) -> list[dict]:
    """One array task: a group's cases measured together, each record with the task's Slurm ids."""
    from ..workers import measure_group

    launch.import_plugins(imports)
    return [{**rec, **slurm_ids()} for rec in measure_group([Case(**c) for c in cases], None, "slurm")]


def max_array_size() -> int:
    """The cluster's MaxArraySize (tasks per array), 1001 (Slurm's default) when it cannot be read."""
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", run(["scontrol", "show", "config"]).stdout, re.M)
    return int(found.group(1)) if found else 1001


@contextlib.contextmanager
def _exit_on_hangup():
    """SIGTERM and SIGHUP (a closed terminal) exit through the sweep's cleanup, which cancels the tasks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, lambda signum, frame: sys.exit(128 + signum)) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SlurmArray:
    """Groups of cases as Slurm array tasks through submitit; `map` yields (cases, records) as tasks end."""

    name = "slurm"

    def __init__(self, folder: Path, imports: Iterable[str] = (), options: SlurmOptions | None = None):
        import submitit

        self.imports, self.options = list(imports), options or SlurmOptions()
        self.executor = submitit.SlurmExecutor(folder=str(folder))
        self.executor.update_parameters(**self.options.parameters())
        self.watcher = QueueWatcher(QUEUE_DELAY_S)
        self.running: dict[str, tuple[list[Case], object]] = {}  # job id -> (group, submitit job)

    def map(self, groups: Iterable[list[Case]]) -> Iterator[tuple[list[Case], list[dict]]]:
        self._submit([list(g) for g in groups])
        with _exit_on_hangup():
            while self.running:
                self.watcher.update_if_long_enough("standard")
                for job_id, (cases, job) in list(self.running.items()):
                    recs = self._records(cases, job)
                    if recs is not None:
                        del self.running[job_id]
                        yield cases, recs
                if self.running:
                    time.sleep(POLL_S)

    def _submit(self, groups: list[list[Case]]) -> None:
        for chunk in chunks(groups, max_array_size()):
            n = len(chunk)
            jobs = self.executor.map_array(
                task, [[c.as_dict() for c in g] for g in chunk], [self.imports] * n
            )
            for group, j in zip(chunk, jobs):
                j.watcher = self.watcher
                self.watcher.register_job(j.job_id)
                self.running[j.job_id] = (group, j)
            print(f"bench: submitted {_count(n, 'group')} ({_count(sum(map(len, chunk)), 'case')}) as slurm job"
                  f" {jobs[0].job_id.split('_')[0]} ({self._how(n)}); job files in {self.executor.folder}", flush=True)  # fmt: skip

    def _how(self, n: int) -> str:
        return (
            f"an array of {n} tasks, {min(n, self.options.array_parallelism)} at a time"
            if n > 1
            else "one job"
        )

    def _records(self, cases: list[Case], job) -> list[dict] | None:
        """The task's records, failure records if it ended without them, or None while it may still run."""
        if job.paths.result_pickle.exists():
            return self._result(cases, job)
        if not self.watcher.is_done(job.job_id, mode="cache"):
            return None
        info = self.watcher.get_info(job.job_id, mode="cache")
        state = info.get("State", "UNKNOWN")
        if state == "COMPLETED":  # the result file may lag on a shared file system; submitit waits for it
            return self._result(cases, job)
        message = (
            f"slurm job {job.job_id} ended {state} on node {info.get('NodeList') or '?'} without a result"
        )
        return self._failed(cases, job, STATUS.get(state, "error"), message)

    def _result(self, cases: list[Case], job) -> list[dict]:
        try:
            return job.result()
        except Exception as exc:  # the job failed outside the measurement (its log names the cause)
            status = "timeout" if "timed-out" in str(exc) else "error"  # submitit's notice before --time
            return self._failed(cases, job, status, f"slurm job {job.job_id}: {type(exc).__name__}: {exc}")

    def _failed(self, cases: list[Case], job, status: str, message: str) -> list[dict]:
        info = self.watcher.get_info(job.job_id, mode="cache")
        array_id, _, index = job.job_id.partition("_")
        ids = {
            "slurm_job_id": info.get("JobIDRaw") or job.job_id,
            "slurm_array_job_id": array_id if index else None,
            "slurm_array_task_id": index or None,
            "slurm_node": info.get("NodeList") or None,
        }
        return [{**launch.failed(c, status, message[-2000:], self.name), **ids} for c in cases]

    def close(self) -> None:
        """Cancel the tasks still queued or running (an interrupted sweep); a re-run submits them again."""
        if self.running:
            ids = sorted(self.running)
            subprocess.run(["scancel", *ids], capture_output=True)
            print(f"bench: cancelled {len(ids)} unfinished slurm tasks: {' '.join(ids)}", file=sys.stderr)
            self.running.clear()
