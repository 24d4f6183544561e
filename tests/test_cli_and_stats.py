"""The command line and the diagnostics every estimator returns (NFE, S, status)."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import make_problem

import sdo
from sdo.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_prints_one_readable_line(capsys):
    assert main(["grad", "--model", "gmm", "--steps", "5", "--estimator", "sdo"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("sdo gmm ddim N=5 wrt=latent: status=ok")
    assert "nfe fwd 1 with graph + 4 without" in out[0]


def test_cli_json_with_options(capsys):
    argv = [
        "grad",
        "--model",
        "mlp",
        "--steps",
        "6",
        "--estimator",
        "truncated",
        "--option",
        "K=2",
        "--wrt",
        "params",
    ]
    assert main([*argv, "--json", "--dtype", "float64"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["retained"] == [2, 1] and rec["nfe_fwd_grad"] == 2 and rec["nfe_fwd_nograd"] == 4


def test_cli_bad_name_exits_2_with_the_valid_names(capsys):
    assert main(["grad", "--estimator", "nope"]) == 2
    assert "valid estimators:" in capsys.readouterr().err


def test_python_dash_m_sdo_runs():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "sdo", "grad", "--steps", "3", "--estimator", "bptt"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    assert "bptt gmm ddim N=3" in out.stdout


@pytest.mark.parametrize(
    "estimator,options,wrt,expected",
    [
        ("bptt", {}, "latent", (6, 0, 6, [6, 5, 4, 3, 2, 1])),
        ("sdo", {}, "latent", (1, 5, 1, [6])),
        ("sdo", {"step": 3}, "params", (1, 5, 1, [3])),
        ("sdo", {}, "intermediate", (1, 5, 1, [4])),  # 2 no-grad steps reach x_4, then S = {4}
        ("truncated", {"K": 2}, "cond", (2, 4, 2, [2, 1])),
        ("checkpoint", {"segment": 4}, "latent", (6, 0, 6, [6, 5, 4, 3, 2, 1])),
    ],
)
def test_network_call_counts(estimator, options, wrt, expected):
    problem = make_problem("gmm", steps=6, wrt=wrt, conditional=True, intermediate_step=4)
    s = sdo.grad(problem, estimator, **options).stats
    assert (s["nfe_fwd_grad"], s["nfe_fwd_nograd"], s["nfe_bwd"], s["retained"]) == expected
    assert s["status"] == "ok" and s["estimator"] == estimator


def test_estimators_leave_requires_grad_as_they_found_it():
    problem = make_problem("mlp", steps=3, wrt="params", params=["net.0"], dim=3)
    before = {n: p.requires_grad for n, p in problem.model.named_parameters()}
    res = sdo.grad(problem, "bptt")
    assert set(res.grads) == {"net.0.weight", "net.0.bias"}
    assert before == {n: p.requires_grad for n, p in problem.model.named_parameters()}


def test_problem_to_copies_the_model():
    problem = make_problem("mlp", steps=3, dtype=torch.float32)
    p64 = problem.to(torch.float64)
    assert p64.model is not problem.model and next(problem.model.parameters()).dtype == torch.float32
    torch.testing.assert_close(
        sdo.grad(p64, "bptt").x0.float(), sdo.grad(problem, "bptt").x0, rtol=1e-5, atol=1e-6
    )


BAD_INPUT = [
    ["--model", "/no/such/dir"],
    ["--device", "gpu"],
    ["--wrt", "params", "--params", "(["],
    ["--option", "step=x"],
    ["--dtype", "float33"],
    ["--steps", "1001"],
    ["--estimator", "draft"],
    ["--steps", "many"],  # an argparse error is one line too
]


def _exit_code(argv: list[str]) -> int:
    """main's return value, or the status of the SystemExit argparse raises."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("extra", BAD_INPUT)
def test_cli_bad_input_is_one_line_and_exit_2(capsys, extra):
    assert _exit_code(["grad", "--steps", "3", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m sdo") and "error: " in err


def test_cli_nonfinite_result_exits_1_with_its_line(capsys, monkeypatch):
    inf = sdo.objectives.get("callable", fn=lambda x: (x * float("inf")).sum())
    monkeypatch.setattr("sdo.cli.make_problem", lambda args: make_problem("gmm", steps=3, objective=inf))
    assert main(["grad", "--steps", "3"]) == 1
    out, err = capsys.readouterr()
    assert "status=nonfinite" in out and err.count("\n") == 1 and "not finite" in err


@pytest.mark.parametrize("exc,needle", [(torch.OutOfMemoryError("CUDA out of memory"), "out of memory"),
                                        (RuntimeError("boom\nsecond line"), "runtime failure: RuntimeError: boom second line"),
                                        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), "error: out of memory: ")])  # fmt: skip
def test_cli_runtime_failure_exits_3_in_one_line(capsys, monkeypatch, exc, needle):
    def fail(args):
        raise exc

    monkeypatch.setattr("sdo.cli.make_problem", fail)
    assert main(["grad"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_readme_example_line_is_what_the_cli_prints(capsys):
    readme = open(os.path.join(ROOT, "README.md")).read()
    example = re.search(r"`(sdo (\S+) ddim N=(\d+) wrt=latent: [^`]*)`", readme)
    assert main(["grad", "--model", example.group(2), "--steps", example.group(3), "--estimator", "sdo"]) == 0
    printed = capsys.readouterr().out.strip()
    number = re.compile(r"-?\d[\d.e+-]*|nan")
    assert number.sub("#", printed) == number.sub("#", example.group(1))
