"""The doctor: each way of losing a gradient silently is reported on a pipeline built to break that way."""

import pytest
import torch
from conftest import make_problem
from torch import nn

import sdo
from sdo.cli import main


def checks(report):
    return {f.check: f.status for f in report.findings}


def test_a_healthy_pipeline_flags_nothing():
    report = sdo.doctor(make_problem(steps=3, conditional=True, dtype=torch.float32))
    assert report.ok, report.table()
    assert {"gradient reaches latent", "gradient reaches cond", "gradient reaches parameters"} <= set(
        checks(report)
    )


def test_network_under_no_grad():
    problem = make_problem(steps=3)
    problem.model.forward = torch.no_grad()(problem.model.forward)
    report = sdo.doctor(problem)
    c = checks(report)
    assert c["network calls with a graph"] == "FAIL" and c["gradient reaches parameters"] == "FAIL"
    assert "none at steps [3, 2, 1]" in report.get("network calls with a graph").detail
    assert c["gradient reaches latent"] == "ok"  # the linear chain still carries it


def test_sampler_step_that_detaches():
    problem = make_problem(steps=4)
    step = problem.solver.step

    def detaching(i, x, m, history, noise=None):
        out, history = step(i, x, m, history, noise)
        return (out.detach() if i == 2 else out), history

    problem.solver.step = detaching
    report = sdo.doctor(problem)
    c = checks(report)
    assert c["sampler chain keeps its graph"] == "FAIL" and c["gradient reaches latent"] == "FAIL"
    assert "after steps [2]" in report.get("sampler chain keeps its graph").detail


def test_clamp_in_the_decoder_saturates():
    problem = make_problem(steps=3, dim=16)
    problem.model.decoder = nn.Hardtanh(-0.05, 0.05)  # a clamp; the samples lie well outside it
    report = sdo.doctor(problem)
    detail = report.get("zero gradient at x_0").detail
    assert report.get("zero gradient at x_0").status == "warn"
    assert detail.startswith("100.0% of elements") and "at a clamp bound -0.05 or 0.05" in detail
    assert report.get("gradient reaches latent").status == "FAIL"


def test_threshold_inside_the_objective():
    target = sdo.objectives.get("target-mse", seed=7)
    problem = make_problem(steps=3, dim=16, objective=lambda y: target(torch.relu(y)))
    report = sdo.doctor(problem)
    finding = report.get("zero gradient at objective input D(x_0)")
    assert finding.status == "warn" and not finding.detail.startswith("0.0%")


def test_model_left_in_train_mode_with_dropout():
    problem = make_problem("mlp", steps=3)
    model = problem.model
    model.drop = nn.Dropout(0.5)
    forward = model.forward
    model.forward = lambda x, t, cond=None: model.drop(forward(x, t, cond))
    model.train()
    report = sdo.doctor(problem)
    assert (
        report.get("model mode").status == "warn"
        and "active dropout / batch norm: drop" in report.get("model mode").detail
    )
    assert report.get("network is deterministic").status == "warn"


def test_frozen_parameter_subset():
    problem = make_problem("mlp", steps=3)
    problem.model.net[0].weight.requires_grad_(False)
    report = sdo.doctor(problem)
    finding = report.get("requires_grad off")
    assert (
        finding.status == "warn"
        and "1 of 6 parameters" in finding.detail
        and "net.0.weight" in finding.detail
    )
    assert report.get("gradient reaches parameters").status == "ok"
    assert problem.model.net[0].weight.requires_grad is False  # the doctor changes nothing


def test_mixed_dtypes_are_reported():
    problem = make_problem(steps=3, dtype=torch.float64)
    problem.model.decoder = nn.Identity()
    decode = problem.model.decode
    problem.model.decode = lambda x0: decode(x0).float()
    finding = sdo.doctor(problem).get("dtypes")
    assert finding.status == "warn" and "decoded D(x_0) float32" in finding.detail


def test_cli_prints_the_table(capsys):
    assert main(["doctor", "--model", "mlp", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "network calls with a graph               ok      2 of 2" in out
    assert "nothing flagged" in out


def test_cli_bad_input_is_one_line(capsys):
    assert main(["doctor", "--model", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["doctor"])
def test_exported(name):
    assert callable(getattr(sdo, name))
