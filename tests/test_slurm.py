"""The slurm launcher against a real, throwaway single-node Slurm (bench/cluster/local-slurm.sh, accounting
disabled): the tiny grid goes as one job array, an array task cancelled mid-run is recorded as failed with
its Slurm ids, and a re-run completes it. Skipped where Slurm is not installed."""

import logging
import os
import re
import shutil
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

import sdo
from bench import cli, records, report
from bench.cluster import slurm, watcher
from bench.cluster.options import SlurmOptions
from bench.cluster.watcher import QueueWatcher, parse

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "cluster" / "local-slurm.sh"
INSTALL = "needs Slurm: apt-get install slurm-wlm munge"
HELD = textwrap.dedent(
    '''
    """Test-only estimator: sdo; wrt latent it first waits while the file $BENCH_HOLD exists (and writes its
    Slurm array task id next to it)."""
    import dataclasses
    import os
    import pathlib
    import time

    import sdo
    from sdo.estimators import Estimator, register_estimator


    @dataclasses.dataclass
    class Held(Estimator):
        def estimate(self, problem):
            hold = pathlib.Path(os.environ["BENCH_HOLD"])
            if problem.wrt != "latent":
                return sdo.grad(problem, "sdo")
            if hold.exists():
                task = hold.with_suffix(".tmp")
                task.write_text(os.environ["SLURM_ARRAY_JOB_ID"] + "_" + os.environ["SLURM_ARRAY_TASK_ID"])
                task.rename(hold.with_suffix(".task"))
            deadline = time.monotonic() + 120
            while hold.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            return sdo.grad(problem, "sdo")


    if "t-held" not in sdo.estimators.names():
        register_estimator("t-held", Held)
    '''
)


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory, request):
    """SLURM_CONF of a single-node Slurm started for this session; stopped (daemons killed) at its end."""
    if shutil.which("sbatch") is None or shutil.which("slurmd") is None or shutil.which("munged") is None:
        pytest.skip(INSTALL)
    if os.geteuid() != 0:
        pytest.skip("the local Slurm needs root (slurmd starts jobs as their submitting user)")
    folder = tmp_path_factory.mktemp("local-slurm")
    request.addfinalizer(lambda: subprocess.run([str(SCRIPT), "stop", str(folder)], capture_output=True))
    proc = subprocess.run([str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"export SLURM_CONF={folder}/slurm.conf"
    return str(folder / "slurm.conf")


@pytest.fixture
def held(tmp_path, monkeypatch):
    """The t-held estimator as an importable module (here and in the jobs) and its hold file."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "bench_held.py").write_text(HELD)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("BENCH_HOLD", str(hold))
    yield hold
    sdo.estimators.ESTIMATORS._factories.pop("t-held", None)
    sdo.estimators.ESTIMATORS._defaults.pop("t-held", None)


def _cancel_when_held(hold: Path, cancelled: list) -> None:
    """scancel the array task that reports it is holding (as an admin would, mid-run)."""
    task, deadline = hold.with_suffix(".task"), time.monotonic() + 150
    while not task.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if task.exists():
        cancelled.append(task.read_text())
        subprocess.run(["scancel", cancelled[0]], check=True, timeout=30)


@pytest.mark.slow  # two waves of Slurm jobs, each a fresh Python importing torch (20-26 s on one shared core)
def test_tiny_grid_runs_as_one_slurm_array_a_cancelled_task_fails_and_a_rerun_completes_it(
    local_slurm, held, tmp_path, monkeypatch, capsys, caplog
):
    monkeypatch.setenv("SLURM_CONF", local_slurm)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the jobs' threads: the machine's cores are shared
    monkeypatch.setattr(report, "write", lambda out: None)  # tables and figures are tested elsewhere
    monkeypatch.setattr(slurm, "POLL_S", 0.5)  # a cancelled task is seen within a second, not 2-30 s later
    monkeypatch.setattr(slurm, "QUEUE_DELAY_S", 1)
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    argv = ["run", "--grid", "tiny", "--steps", "2", "--wrt", "latent,params", "--estimators", "sdo,t-held"]
    argv += ["--no-floors", "--import", "bench_held", "--out", str(out), "--quiet", "--launcher", "slurm"]
    argv += ["--slurm-cpus-per-task", "1", "--slurm-mem", "1G", "--slurm-time", "10"]
    cancelled: list[str] = []
    canceller = threading.Thread(target=_cancel_when_held, args=(held, cancelled))
    canceller.start()
    assert cli.main(argv) == 0
    canceller.join()
    console = capsys.readouterr()
    found = re.search(r"submitted 2 groups \(4 cases\) as slurm job (\d+) \(an array of 2 tasks", console.out)
    array = found.group(1)
    first = records.load(out)
    assert len(first) == 4 and cancelled and cancelled[0].split("_")[0] == array
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout.split()[0].split("=")[1]
    for r in first:
        assert r["launcher"] == "slurm" and r["slurm_array_job_id"] == array and r["slurm_node"] == node
        held_group = r["wrt"] == "latent"  # the task that was cancelled while it held
        assert r["status"] == ("error" if held_group else "ok"), r.get("message")
        assert (r["slurm_array_task_id"] == cancelled[0].split("_")[1]) == held_group
        if held_group:
            assert r["message"].startswith(f"slurm job {cancelled[0]} ended CANCELLED on node {node}")
    assert "sacct" not in console.out + console.err + caplog.text  # accounting is off: no warnings
    assert "--cpus-per-task=1" in (out / "submitit" / f"{array}_submission.sh").read_text()

    held.unlink()
    assert cli.main(argv + ["--retry", "error"]) == 0
    assert "submitted 1 group (2 cases) as slurm job" in capsys.readouterr().out
    rows = records.load(out)
    assert len(rows) == 6  # the params group was not run again
    rerun = rows[4:]
    assert {r["wrt"] for r in rerun} == {"latent"} and {r["status"] for r in rerun} == {"ok"}
    assert rerun[0]["slurm_job_id"] not in (first[0]["slurm_job_id"], first[2]["slurm_job_id"], None)
    assert {r["status"] for r in records.latest(rows)} == {"ok"}


def test_squeue_lines_parse_into_states_per_array_task():
    text = "7_0|COMPLETED|vm|8\n7_1|CANCELLED|vm|7\n9|RUNNING|gpu3|9\n7_[2-5%2]|PENDING||7\n"
    info = parse(text)
    assert sorted(info) == ["7_0", "7_1", "9"]
    assert info["7_1"]["State"] == "CANCELLED" and info["7_0"]["JobIDRaw"] == "8"
    assert parse("7_1|CANCELLED by 0|vm|7\n7_1.batch|CANCELLED||7\n")["7_1"]["State"] == "CANCELLED"


def test_watcher_reads_squeue_and_asks_sacct_once_for_jobs_squeue_no_longer_lists(monkeypatch):
    calls = []

    def fake(cmd):
        calls.append(cmd[0])
        if cmd[0] == "squeue":
            return subprocess.CompletedProcess(cmd, 0, "7_0|RUNNING|vm|8\n7_2|CANCELLED|vm|10\n", "")
        return subprocess.CompletedProcess(cmd, 1, "", "Slurm accounting storage is disabled")

    monkeypatch.setattr(watcher, "run", fake)
    w = QueueWatcher()
    for job in ("7_0", "7_1", "7_2"):
        w.register_job(job)
    w.update()
    assert [w.get_state(j, mode="cache") for j in ("7_0", "7_1", "7_2")] == ["RUNNING", "GONE", "CANCELLED"]
    assert not w.is_done("7_0", mode="cache") and w.is_done("7_1", mode="cache")
    w.update()  # only 7_0 is still watched; sacct is not asked again once it has failed
    assert calls == ["squeue", "sacct", "squeue"] and w.accounting is False


def test_watcher_keeps_the_last_states_and_warns_once_while_squeue_fails(monkeypatch, capsys):
    down = subprocess.CompletedProcess([], 1, "", "Unable to contact slurm controller")
    up = subprocess.CompletedProcess([], 0, "7_0|RUNNING|vm|8\n", "")
    replies = iter([up, down, down])
    monkeypatch.setattr(watcher, "run", lambda cmd: next(replies))
    w = QueueWatcher()
    w.register_job("7_0")
    for _ in range(3):
        w.update()
        assert w.get_state("7_0", mode="cache") == "RUNNING"
    assert capsys.readouterr().err.count("squeue failed (Unable to contact slurm controller)") == 1


def test_slurm_options_become_sbatch_parameters_and_bad_values_name_the_valid_form(tmp_path, capsys):
    opts = SlurmOptions(partition="gpu", gpus_per_node=1, mem="32G", option=("exclude=n7", "mail-type=END"))
    params = opts.parameters()
    assert params["partition"] == "gpu" and params["gpus_per_node"] == 1 and params["time"] == 60
    assert params["additional_parameters"] == {"exclude": "n7", "mail-type": "END"}
    bad_args = [
        (["--launcher", "slurm", "--slurm-mem", "3X"], "--slurm-mem"),
        (["--launcher", "slurm", "--slurm-option", "exclude"], "key=value"),
        (["--slurm-partition", "gpu"], "--slurm-partition: only with --launcher slurm"),
    ]
    for bad, needle in bad_args:
        argv = ["run", "--grid", "tiny", "--out", str(tmp_path), *bad]
        assert cli.main(argv) == 2
        assert needle in capsys.readouterr().err
