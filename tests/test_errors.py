"""Bad input gets a ValueError naming what is wrong and the valid choices; non-finite results get a status."""

import pytest
import torch
from conftest import make_problem

import sdo


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: sdo.samplers.get("ddim", steps=0), "steps must be an integer >= 1"),
        (
            lambda: sdo.estimators.get("sdo", K=3),
            "unknown option(s) ['K'] for estimator 'sdo'; valid: seed, step",
        ),
        (lambda: sdo.estimators.get("truncated", mode="random"), "valid: fixed, uniform"),
        (lambda: sdo.estimators.get("truncated", K=0), "K must be an integer >= 1"),
        (lambda: sdo.estimators.get("checkpoint", segment=0), "segment must be an integer >= 1"),
        (lambda: sdo.estimators.get("sdo", scale_by=2), "valid: 1, 'N'"),
        (lambda: make_problem(wrt="weights"), "valid: latent, intermediate, params, cond"),
        (lambda: make_problem(wrt="cond"), "this model takes no conditioning"),
        (lambda: make_problem(wrt="intermediate"), "needs intermediate_step k in 1..4"),
        (lambda: make_problem(wrt="intermediate", intermediate_step=9), "needs intermediate_step k in 1..4"),
        (lambda: make_problem(wrt="params", params=["^nothing$"]), "match no parameter"),
        (
            lambda: make_problem(latent=torch.zeros(1, 5)),
            "latent has shape (1, 5); this model and batch need (1, 2)",
        ),
        (lambda: make_problem(conditional=True, cond=torch.zeros(1, 3)), "cond has shape (1, 3)"),
        (lambda: make_problem(sampler="flow-euler"), "flow-euler needs a flow (velocity) model"),
        (lambda: sdo.objectives.get("classifier", classifier=None, kind="hinge"), "valid: ce, margin"),
        (lambda: sdo.samplers.get("ddim", steps=2.5), "steps must be an integer >= 1"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, needle):
    with pytest.raises(ValueError) as err:
        call()
    assert needle in str(err.value)


@pytest.mark.parametrize("axis", [sdo.estimators, sdo.samplers, sdo.models, sdo.objectives])
def test_unknown_name_lists_every_valid_name(axis):
    with pytest.raises(ValueError) as err:
        axis.get("nope")
    msg = str(err.value)
    assert msg.startswith("unknown ") and "'nope'; valid " in msg
    assert all(name in msg for name in axis.names())


def test_eta_without_noise_is_an_error():
    problem = make_problem(sampler_options={"eta": 0.5})
    problem.noise = None
    with pytest.raises(ValueError, match="needs the step's noise passed explicitly"):
        sdo.grad(problem, "bptt")


def test_shape_mismatched_target_is_an_error():
    obj = sdo.objectives.get("target-mse", target=torch.zeros(3, 7))
    with pytest.raises(ValueError, match="does not match sample shape"):
        sdo.grad(make_problem(objective=obj), "bptt")


@pytest.mark.parametrize("estimator", ["bptt", "sdo", "checkpoint", "truncated"])
def test_nonfinite_loss_sets_status(estimator):
    obj = sdo.objectives.get("callable", fn=lambda x: (x * float("inf")).sum())
    res = sdo.grad(make_problem(objective=obj), estimator)
    assert res.status == "nonfinite" and not res.ok
    assert torch.isnan(torch.tensor(res.norm()))


def test_nonfinite_gradient_with_finite_loss_sets_status():
    obj = sdo.objectives.get("callable", fn=lambda x: torch.sqrt(x.abs()).sum() * 0 + torch.sqrt(x * 0).sum())
    res = sdo.grad(make_problem(objective=obj), "bptt")
    assert res.loss == 0.0 and res.status == "nonfinite"
