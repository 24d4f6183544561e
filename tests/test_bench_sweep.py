"""Sweeps end to end on tiny grids: every file, resume, failures recorded as statuses, launchers, and the
FLOP ratio SDO/BPTT in the records against the one-step prediction."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

import sdo
from bench import cli, records
from bench.grid import every_estimator
from bench.tables import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = textwrap.dedent(
    '''
    """Test-only estimators that fail on purpose (imported through --import in every process)."""
    import dataclasses
    import os

    import torch

    import sdo
    from sdo.estimators import Estimator, register_estimator


    @dataclasses.dataclass
    class Raises(Estimator):
        def estimate(self, problem):
            raise RuntimeError("boom (test)")


    @dataclasses.dataclass
    class ReturnsNaN(Estimator):
        def estimate(self, problem):  # a real gradient, poisoned, with a status that still says ok
            res = sdo.grad(problem, "sdo")
            res.grads = {k: torch.full_like(v, float("nan")) for k, v in res.grads.items()}
            return res


    @dataclasses.dataclass
    class OutOfMemory(Estimator):
        def estimate(self, problem):
            raise torch.OutOfMemoryError("simulated out of memory (test)")


    @dataclasses.dataclass
    class KillsWorker(Estimator):
        def estimate(self, problem):  # one dead worker is enough (each costs a fresh one): wrt latent only
            if problem.wrt != "latent":
                raise RuntimeError("boom (test)")
            os._exit(3)


    for name, cls in [("t-raises", Raises), ("t-nan", ReturnsNaN), ("t-oom", OutOfMemory),
                      ("t-crash", KillsWorker)]:
        if name not in sdo.estimators.names():
            register_estimator(name, cls)
    '''
)
EXPECTED = {"t-raises": "error", "t-nan": "nonfinite", "t-oom": "oom", "t-crash": "error"}


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The failing estimators as an importable module, for this process and the worker subprocess."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "bench_failing.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    yield "bench_failing"
    sys.modules.pop("bench_failing", None)
    for name in EXPECTED:  # leave the registry as the other tests expect it
        sdo.estimators.ESTIMATORS._factories.pop(name, None)
        sdo.estimators.ESTIMATORS._defaults.pop(name, None)


def _make(target: str, out: Path, *variables: str) -> subprocess.CompletedProcess:
    cmd = ["make", "-s", target, "STAMP=", f"PY={sys.executable}", *variables]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # a test checks files and statuses, not times
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_benchmark_on_a_tiny_grid_writes_every_file_and_records_failures(tmp_path, plugin):
    """`make benchmark` (tiny grid, subprocess launcher, failing estimators added): all files, all columns,
    each failure with its status, and the sweep goes on past a worker that dies."""
    out = tmp_path / "results"
    args = f"BENCH_ARGS=--steps 2 --import {plugin} --quiet"
    proc = _make(
        "benchmark", out, "BENCH_GRID=tiny", f"BENCH_OUT={out}", args, "BENCH_PYTEST_ARGS=-k 'gmm and sdo'"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ["raw/records.jsonl", "benchmark.csv", "benchmark.md", "benchmark.tex", "README.md",
                 "pytest-benchmark.json", *(f"figures/{q}_gmm.png" for q in
                                            ("time_vs_N", "peak_memory_vs_N", "saved_bytes_vs_N",
                                             "accuracy_vs_N", "pareto"))]:  # fmt: skip
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    df = pd.read_csv(out / "benchmark.csv")
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    registered = set(every_estimator()) - set(EXPECTED)
    assert registered | {"floor-sample", "floor-step"} <= set(df.estimator)
    assert set(df.wrt) == {"latent", "params"} and set(df.steps) == {2}
    for name, status in EXPECTED.items():
        assert set(df[df.estimator == name].status) == {status}, name
    died = df[(df.estimator == "t-crash") & (df.wrt == "latent")]
    assert list(died.message) == ["worker exited with code 3"]  # its worker died; the group still finished
    ok = df[df.status == "ok"]
    assert ok.time_median_s.notna().all() and ok.flops.gt(0).any() and ok.peak_mem_bytes.notna().all()
    assert ok.norm_ratio_to_exact.notna().any() and ok.live_peak_bytes.notna().all()
    assert df.groupby(["wrt"]).group_id.nunique().eq(1).all()  # one worker run per group (no crash there)
    assert (ok.estimator == "bptt").sum() == 2 and ok[ok.estimator == "bptt"].cos_to_exact.gt(0.999).all()
    rec = json.loads((out / "raw/records.jsonl").read_text().splitlines()[0])
    for key in ["git_commit", "git_dirty", "torch_version", "diffusers_version", "python_version",
                "device_name", "date", "command"]:  # fmt: skip
        assert rec.get(key) not in (None, ""), key
    md = (out / "benchmark.md").read_text()
    assert "| t-oom | oom | oom |" in md and "| t-nan | nonfinite | nonfinite |" in md
    readme = (out / "README.md").read_text()
    assert "pytest-benchmark.json" in readme and "t-crash" in readme and "Targets" in readme
    bench_json = json.loads((out / "pytest-benchmark.json").read_text())
    assert bench_json["benchmarks"] and all("gmm" in b["name"] for b in bench_json["benchmarks"])


def _run(out: Path, *args: str) -> list[dict]:
    argv = ["run", "--grid", "tiny", "--steps", "2", "--out", str(out), "--launcher", "inprocess", "--quiet"]
    assert cli.main([*argv, *args]) == 0
    return records.load(out)


def test_an_interrupted_sweep_resumes_and_runs_only_the_rest(tmp_path):
    first = _run(tmp_path, "--estimators", "sdo,bptt", "--max-cases", "3")
    assert len(first) == 3
    lines = (tmp_path / "raw/records.jsonl").read_text().splitlines()
    allrec = _run(tmp_path, "--estimators", "sdo,bptt")
    keys = [r["key"] for r in allrec]
    assert len(keys) == 8 == len(set(keys))  # 2 wrt x (bptt, sdo, 2 floors), none run twice
    assert (tmp_path / "raw/records.jsonl").read_text().splitlines()[:3] == lines  # append-only
    assert len(_run(tmp_path, "--estimators", "sdo,bptt")) == 8  # nothing left to do


def test_retry_reruns_failed_cases_only(tmp_path, plugin):
    _run(tmp_path, "--estimators", "sdo,t-oom", "--wrt", "latent", "--no-floors", "--import", plugin)
    again = _run(tmp_path, "--estimators", "sdo,t-oom", "--wrt", "latent", "--no-floors", "--retry", "oom")
    assert [r["estimator"] for r in again] == ["sdo", "t-oom", "t-oom"]


@pytest.fixture
def one_thread():
    """FLOP counts do not depend on threads; one thread avoids stalls when the CPU is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_flop_ratio_sdo_over_bptt_matches_the_one_step_prediction(tmp_path, one_thread):
    """SDO = N forwards + 1 backward, BPTT = N forwards + N backwards, with one step's forward and backward
    FLOPs taken from the floor-step record (backward ~ 1 forward wrt latent, ~ 2 wrt weights)."""
    N = 3
    argv = ["--models", "unet-tiny", "--steps", str(N), "--wrt", "latent,params", "--estimators", "sdo,bptt"]
    recs = _run(tmp_path, *argv, "--rounds", "1", "--exact", "same")
    for wrt, backward_over_forward in (("latent", (0.8, 1.3)), ("params", (1.6, 2.4))):
        rows = {r["estimator"]: r for r in recs if r["wrt"] == wrt}
        assert {r["status"] for r in rows.values()} == {"ok"}
        f, b = rows["floor-step"]["flops_step_fwd"], rows["floor-step"]["flops_step_bwd"]
        assert backward_over_forward[0] < b / f < backward_over_forward[1], wrt
        predicted = (N * f + b) / (N * f + N * b)
        measured = rows["sdo"]["flops"] / rows["bptt"]["flops"]
        assert measured == pytest.approx(predicted, rel=0.02), wrt
        assert rows["sdo"]["flops"] == pytest.approx(N * f + b, rel=0.02), wrt
        assert (rows["bptt"]["nfe_fwd_grad"], rows["bptt"]["nfe_bwd"]) == (N, N)


def test_a_time_budget_records_cases_not_started_as_skipped_and_resume_runs_them(tmp_path):
    skipped = _run(tmp_path, "--estimators", "sdo", "--wrt", "latent", "--budget", "1e-9")
    assert {r["status"] for r in skipped} == {"skipped"} and len(skipped) == 3
    assert "| sdo | skipped | skipped |" in (tmp_path / "benchmark.md").read_text()
    done = records.latest(_run(tmp_path, "--estimators", "sdo", "--wrt", "latent"))
    assert {r["status"] for r in done} == {"ok"} and len(done) == 3


def test_submitit_local_launcher_runs_a_case_in_its_own_job(tmp_path):
    argv = ["--estimators", "sdo", "--wrt", "latent", "--no-floors", "--launcher", "local"]
    assert cli.main(["run", "--grid", "tiny", "--steps", "2", "--out", str(tmp_path), "--quiet", *argv]) == 0
    (rec,) = records.load(tmp_path)
    assert rec["status"] == "ok" and rec["launcher"] == "submitit" and rec["pid"] != os.getpid()
    assert (tmp_path / "benchmark.csv").is_file()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_benchmark_full_starts_and_runs_one_case_on_cpu_with_tiny_sizes(tmp_path):
    out = tmp_path / "full"
    args = (
        "BENCH_FULL_ARGS=--models unet-tiny --steps 2 --device cpu --max-cases 1 --launcher inprocess --quiet"
    )
    proc = _make("benchmark-full", out, f"BENCH_FULL_OUT={out}", args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (rec,) = records.load(out)
    assert rec["status"] == "ok", rec.get("message")
    assert (rec["model"], rec["steps"], rec["wrt"], rec["device"]) == ("unet-tiny", 2, "latent", "cpu")
    assert "--grid full" in rec["command"]
