"""sdo's `freeze` option: which network output sg() holds outside S, checked against closed-form DDIM gains
and an explicit Jacobian of the first step computed from the independent reference DDIM."""

import math

import pytest
import torch
from conftest import make_problem
from reference_solvers import ddim_abar, ddim_coefficients
from torch.autograd.functional import vjp

import sdo
from sdo.loop import Rollout

GMM = {"dim": 3, "components": 3, "full": True}


def closed_form_gain(alpha_sigma: list[tuple[float, float]], freeze: str) -> float:
    """Product over frozen steps of d x_{p+1} / d x_p for DDIM (eta = 0) with `freeze` held constant."""
    gain = 1.0
    for (a, s), (an, sn) in zip(alpha_sigma[:-1], alpha_sigma[1:]):
        gain *= {"eps": an / a, "x0": sn / s, "v": an * a + sn * s}[freeze]
    return gain


def expected_latent_gradient(problem, freeze: str) -> torch.Tensor:
    """g^T dx_{N-1}/dx_N (reference DDIM, network differentiated) times the frozen chain's gain."""
    abar = ddim_abar(problem)
    (a0, b0) = ddim_coefficients(abar)[0]
    t = problem.solver.times[0]
    x0 = sdo.grad(problem, "bptt").x0
    x = x0.clone().requires_grad_(True)
    g = torch.autograd.grad(problem.objective(x), x)[0]
    a, s = math.sqrt(abar[0]), math.sqrt(1 - abar[0])

    def eps(z):  # the reference DDIM is written in eps; a v-model's eps is s z + a v
        m = problem.model(z, t)
        return m if problem.model.prediction_type == "epsilon" else s * z + a * m

    _, first = vjp(lambda z: a0 * z + b0 * eps(z), problem.latent, g)
    alpha_sigma = [(math.sqrt(ab), math.sqrt(1 - ab)) for ab in abar]
    return closed_form_gain(alpha_sigma[1:], freeze) * first


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("freeze", ["eps", "v"])
def test_sdo_latent_with_frozen_quantity_equals_closed_form(prediction_type, freeze):
    problem = make_problem("gmm", "ddim", 6, prediction_type=prediction_type, **GMM)
    res = sdo.grad(problem, "sdo", freeze=freeze)
    expected = expected_latent_gradient(problem, freeze)
    assert torch.allclose(res.grads["latent"], expected, rtol=1e-10, atol=1e-14)


def test_freezing_the_models_own_output_is_the_papers_sdo():
    problem = make_problem("gmm", "ddim", 6, **GMM)
    assert torch.equal(
        sdo.grad(problem, "sdo", freeze="eps").grads["latent"], sdo.grad(problem, "sdo").grads["latent"]
    )


def test_x0_frozen_through_a_clean_final_step_gives_zero():
    """The last DDIM step returns x0_hat itself (sigma_0 = 0): with x0_hat frozen nothing flows back."""
    problem = make_problem("gmm", "ddim", 6, **GMM)
    assert sdo.grad(problem, "sdo", freeze="x0").grads["latent"].abs().max() == 0


@pytest.mark.parametrize("freeze", ["eps", "x0", "v"])
def test_one_frozen_step_has_the_closed_form_gain(freeze):
    problem = make_problem("gmm", "ddim", 6, **GMM)
    rollout, i = Rollout(problem, freeze=freeze), 4
    x = problem.latent.clone().requires_grad_(True)
    out, _ = rollout.step(i, x, (), keep=False)
    (a, s), (an, sn) = problem.solver.coef[6 - i], problem.solver.coef[7 - i]
    gain = {"eps": an / a, "x0": sn / s, "v": an * a + sn * s}[freeze]
    w = torch.randn_like(out)
    (g,) = torch.autograd.grad(out, x, w)
    assert torch.allclose(g, gain * w, rtol=1e-12)


def test_bad_freeze_and_unsupported_sampler_are_clear_errors():
    with pytest.raises(ValueError, match="valid: None"):
        sdo.estimators.get("sdo", freeze="x_0")
    problem = make_problem("gmm", "dpm++2m", 4, dtype=torch.float32, **GMM)
    with pytest.raises(ValueError, match="native 'ddim'"):
        sdo.grad(problem, "sdo", freeze="x0")
    flow = make_problem("gmm-flow", "ddim", 4, **GMM)
    with pytest.raises(ValueError, match="VP models"):
        sdo.grad(flow, "sdo", freeze="v")
