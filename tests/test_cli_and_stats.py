"""The command line and the diagnostics every estimator returns (NFE, S, status)."""

import json
import os
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
