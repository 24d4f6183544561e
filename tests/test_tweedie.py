"""tweedie: on a single Gaussian the data prediction is affine in x_t, x0_hat = mu + a S (x_t - a mu) / (a^2 S
+ s^2), so the gradient is that Jacobian applied to dJ/dx0 -- checked against this closed form."""

import pytest
import torch
from conftest import make_problem

import sdo
from sdo.loop import Rollout


def closed_form_grad(problem, x_t, t, scale=1.0):
    """init_scale * diag(a S / (a^2 S + s^2)) dJ/dx0 at x0_hat(x_t), all from the Gaussian's formulas."""
    model = problem.model
    a, s = model.schedule.alpha_sigma(t)
    mu, S = model.means.detach()[0].double(), model.cov[0].double()
    gain = a * S / (a**2 * S + s**2)
    x0 = (mu + gain * (x_t.reshape(x_t.shape[0], -1) - a * mu)).reshape(x_t.shape)
    x0 = x0.detach().requires_grad_(True)
    (dJ,) = torch.autograd.grad(problem.objective(x0), x0)
    return scale * (gain * dJ.reshape(dJ.shape[0], -1)).reshape(dJ.shape)


@pytest.mark.parametrize(
    "model,sampler,kw",
    [
        ("gmm", "ddim", {}),
        ("gmm", "ddim", {"prediction_type": "v_prediction"}),
        ("gmm", "euler", {}),  # sigma-space x: the network input is rescaled to the VP x_t
    ],
)
def test_latent_gradient_equals_the_closed_form(model, sampler, kw):
    problem = make_problem(model, sampler=sampler, steps=5, components=1, dim=3, batch=2, **kw)
    res = sdo.grad(problem, "tweedie")
    solver = problem.solver
    x_N = solver.init_scale * problem.latent
    x_t = solver.model_input(5, x_N) if sampler == "euler" else x_N
    scale = solver.init_scale * float((x_t / x_N).flatten()[0])  # d x_t / d z
    ref = closed_form_grad(problem, x_t, solver.timestep(5), scale)
    assert res.ok and ref.norm() > 1e-8
    # at t_N the epsilon round trip x0 = (x - s eps(x)) / a cancels ~7 digits (1 - s deps/dx ~ a * gain ~ 5e-7)
    assert (res.grads["latent"] - ref).norm() <= 1e-8 * ref.norm()
    assert res.stats["nfe_fwd_grad"] == 1 and res.stats["nfe_bwd"] == 1 and res.stats["nfe_fwd_nograd"] == 0


def test_intermediate_predicts_from_x_k():
    problem = make_problem("gmm", steps=6, components=1, wrt="intermediate", intermediate_step=3)
    res = sdo.grad(problem, "tweedie")
    rollout = Rollout(problem)
    with torch.no_grad():
        x3, _, _, _ = rollout.start()  # x_3 reached by the sampler without a graph
    ref = closed_form_grad(problem, x3, problem.solver.timestep(3))
    assert (res.grads["x_3"] - ref).norm() <= 1e-10 * ref.norm()
    assert res.stats["nfe_fwd_nograd"] == 3 and res.stats["nfe_fwd_grad"] == 1


@pytest.mark.parametrize("model", ["gmm", "gmm-flow"])
def test_intermediate_on_vp_and_flow(model):
    problem = make_problem(model, steps=6, components=1, wrt="intermediate", intermediate_step=2)
    with torch.no_grad():
        x2 = Rollout(problem).start()[0]
    ref = closed_form_grad(problem, x2, problem.solver.timestep(2))
    assert ref.norm() > 1e-6
    assert (sdo.grad(problem, "tweedie").grads["x_2"] - ref).norm() <= 1e-10 * ref.norm()


def test_flow_latent_gradient_is_zero():
    """A flow's t_N = T has alpha = 0: x0_hat(x_N) is the data mean, whatever x_N (recorded behaviour)."""
    res = sdo.grad(make_problem("gmm-flow", steps=5), "tweedie")
    assert res.ok and res.flat().abs().max() == 0


def test_it_is_not_bptt_on_a_mixture():
    """On a mixture the one-step prediction is not the sampler's x_0: the gradients differ."""
    problem = make_problem("gmm", steps=10)
    a, b = sdo.grad(problem, "tweedie").flat(), sdo.grad(problem, "bptt").flat()
    assert (a - b).norm() > 1e-3 * b.norm()


@pytest.mark.parametrize("wrt,kw", [("params", {}), ("cond", {"conditional": True})])
def test_theta_and_c_are_refused(wrt, kw):
    with pytest.raises(ValueError, match="supported: latent, intermediate"):
        sdo.grad(make_problem(wrt=wrt, **kw), "tweedie")
