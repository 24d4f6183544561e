"""Slurm job states from `squeue` (the controller's live view, which works without accounting), and from
`sacct` only for jobs squeue no longer lists and only where accounting is enabled: no per-poll warnings."""

from __future__ import annotations

import subprocess
import sys
import time

from submitit.slurm.slurm import SlurmInfoWatcher

FIELDS = ("JobID", "State", "NodeList", "JobIDRaw")  # squeue %i|%T|%N|%A; the same names in sacct
SQUEUE = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%N|%A"]
SACCT = ["sacct", "--noheader", "--parsable2", "--allocations", "--format=" + ",".join(FIELDS)]
GONE = "GONE"  # listed by neither squeue nor sacct: ended long enough ago to be purged
ACTIVE = {  # states of a job that may still produce a result (squeue's and sacct's names)
    *("UNKNOWN", "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING"),
    *("PREEMPTED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SPECIAL_EXIT", "STAGE_OUT"),
    *("RESV_DEL_HOLD", "READY"),
}


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    """cmd's output as text; no exception (the caller reads returncode and stderr)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(cmd, 1, "", str(exc))


def parse(text: str) -> dict[str, dict[str, str]]:
    """`JobID|State|NodeList|JobIDRaw` lines -> {job id as submitit names it (123 or 123_4): fields}."""
    info = {}
    for line in text.splitlines():
        row = dict(zip(FIELDS, (v.strip() for v in line.split("|"))))
        if len(row) == len(FIELDS) and row["JobID"] and "." not in row["JobID"] and "[" not in row["JobID"]:
            row["State"] = row["State"].split(" ")[0]  # sacct: "CANCELLED by 0"
            info[row["JobID"]] = row
    return info


class QueueWatcher(SlurmInfoWatcher):
    """submitit's watcher with squeue as the source of job states (sacct fails where accounting is off)."""

    def __init__(self, delay_s: int = 60):
        super().__init__(delay_s)
        self.accounting: bool | None = None  # unknown until sacct is first needed
        self.failing = False  # squeue failed at the last poll (controller unreachable); states are kept

    def update(self) -> None:
        """Refresh the states of the registered, unfinished jobs (one squeue call per poll)."""
        todo = self._registered - self._finished
        if not todo:
            return
        self._num_calls += 1
        mains = sorted({j.split("_")[0] for j in todo})
        info = self._squeue(mains)
        if info is not None:
            missing = [j for j in todo if j not in info]
            info.update(self._sacct(missing))
            info.update({j: {"JobID": j, "State": GONE} for j in missing if j not in info})
            self._info_dict.update(info)
        self._last_status_check = time.time()
        self._finished |= {j for j in todo if self.is_done(j, mode="cache")}

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        """Whether the job has ended (completed, failed, cancelled, timed out, ... or purged)."""
        return self.get_state(job_id, mode=mode).upper() not in ACTIVE

    def _squeue(self, mains: list[str]) -> dict | None:
        proc = run([*SQUEUE, "--jobs=" + ",".join(mains)])
        if proc.returncode == 0 or "Invalid job id" in proc.stderr:  # (a single id the controller purged)
            self.failing = False
            return parse(proc.stdout) if proc.returncode == 0 else {}
        if not self.failing:  # one line per outage, not one per poll
            print(
                f"bench: squeue failed ({proc.stderr.strip()}); keeping the last known job states",
                file=sys.stderr,
            )
        self.failing = True
        return None

    def _sacct(self, ids: list[str]) -> dict:
        if not ids or self.accounting is False:
            return {}
        proc = run([*SACCT, "--jobs=" + ",".join(sorted({j.split("_")[0] for j in ids}))])
        self.accounting = proc.returncode == 0
        return parse(proc.stdout) if self.accounting else {}
