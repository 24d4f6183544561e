"""SDO equals the paper's formulas computed a second, independent way from explicit Jacobians:
Eq. 15 (wrt x_N: g . dx_{N-1}/dx_N carried to x_0 by the linear chain) and Eq. 20 (wrt theta at step i')."""

import pytest
import torch
from conftest import make_problem
from reference_solvers import ddim_abar, ddim_coefficients, dpm_alpha_sigma, dpm_replay
from torch.autograd.functional import jacobian
from torch.func import functional_call, jacrev

import sdo

MODELS = [("gmm", {"dim": 3, "components": 3, "full": True}), ("mlp", {"dim": 3, "hidden": 8})]


def target_problem(model, model_kw, sampler, steps, wrt="latent"):
    target = torch.linspace(-1, 1, 3, dtype=torch.float64)[None]
    obj = sdo.objectives.get("target-mse", target=target)
    return make_problem(model, sampler, steps, wrt=wrt, objective=obj, **model_kw), target


def loss_grad(x0, target):
    """dJ/dx_0 for J = mean (x_0 - target)^2, in closed form."""
    return (2 * (x0 - target) / x0.numel()).reshape(-1)


def net(problem, p):
    """eps(x) at grid position p (step i = N - p)."""
    t = problem.solver.times[p]
    return lambda x: problem.model(x, t)


def ddim_forward(problem):
    """Reference DDIM trajectory [x_N, ..., x_0] with no graph."""
    coef = ddim_coefficients(ddim_abar(problem))
    xs = [problem.latent]
    with torch.no_grad():
        for p, (a, b) in enumerate(coef):
            xs.append(a * xs[-1] + b * net(problem, p)(xs[-1]))
    return xs, coef


def theta_jacobian(problem, p, x):
    """d eps(x_p; theta)/d theta as a (D, P) matrix over the selected parameters in name order."""
    params = {n: v.detach() for n, v in problem.parameters().items()}
    t = problem.solver.times[p]

    def f(ps):
        return functional_call(problem.model, ps, (x, t)).reshape(-1)

    jac = jacrev(f)(params)
    return torch.cat([jac[n].reshape(x.numel(), -1) for n in params], dim=1)


def flat_grads(res, names):
    return torch.cat([res.grads[n].reshape(-1) for n in names])


@pytest.mark.parametrize("model,model_kw", MODELS)
def test_sdo_latent_ddim_equals_eq15(model, model_kw):
    problem, target = target_problem(model, model_kw, "ddim", 6)
    xs, coef = ddim_forward(problem)
    a0, b0 = coef[0]
    J1 = jacobian(lambda x: a0 * x + b0 * net(problem, 0)(x), problem.latent).reshape(3, 3)
    chain = 1.0
    for a, _ in coef[1:]:
        chain *= a  # d x_0 / d x_{N-1} with every later network output frozen (Eq. 18)
    expected = chain * loss_grad(xs[-1], target) @ J1
    res = sdo.grad(problem, "sdo")
    torch.testing.assert_close(res.x0, xs[-1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.grads["latent"].reshape(-1), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model,model_kw", MODELS)
@pytest.mark.parametrize("step", [6, 3, 1])
def test_sdo_params_ddim_equals_eq20(model, model_kw, step):
    problem, target = target_problem(model, model_kw, "ddim", 6, wrt="params")
    xs, coef = ddim_forward(problem)
    p = problem.steps - step
    chain = 1.0
    for a, _ in coef[p + 1 :]:
        chain *= a
    expected = chain * coef[p][1] * loss_grad(xs[-1], target) @ theta_jacobian(problem, p, xs[p])
    res = sdo.grad(problem, "sdo", step=step)
    torch.testing.assert_close(flat_grads(res, problem.parameter_names()), expected, rtol=1e-10, atol=1e-12)


def dpm_forward(problem):
    """Reference DPM-Solver++ x_0 and the network outputs recorded along its trajectory."""
    coef, frozen = dpm_alpha_sigma(problem), []

    def recorder(p):
        def f(x):
            frozen.append(net(problem, p)(x))
            return frozen[-1]

        return f

    with torch.no_grad():
        x0 = dpm_replay(problem.latent, [recorder(p) for p in range(problem.steps)], coef)
    return x0, frozen, coef


def trajectory(problem, coef, frozen):
    """x_p along the frozen replay (the inputs of each network call)."""
    xs = []

    def tap(p):
        def f(x):
            xs.append(x.detach())
            return frozen[p]

        return f

    dpm_replay(problem.latent, [tap(p) for p in range(problem.steps)], coef)
    return xs


@pytest.mark.parametrize("model,model_kw", MODELS)
def test_sdo_latent_dpm_solver_equals_eq15(model, model_kw):
    problem, target = target_problem(model, model_kw, "dpm++2m", 6)
    x0, frozen, coef = dpm_forward(problem)

    def G(xN, e):
        return dpm_replay(xN, [e] + frozen[1:], coef).reshape(-1)

    Jx, Je = jacobian(G, (problem.latent, frozen[0]))
    Jf = jacobian(net(problem, 0), problem.latent).reshape(3, 3)
    expected = loss_grad(x0, target) @ (Jx.reshape(3, 3) + Je.reshape(3, 3) @ Jf)
    res = sdo.grad(problem, "sdo")
    # diffusers' DPM-Solver computes its step in float32: compare at float32 precision
    torch.testing.assert_close(res.x0, x0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res.grads["latent"].reshape(-1), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model,model_kw", MODELS)
@pytest.mark.parametrize("step", [6, 4, 1])
def test_sdo_params_dpm_solver_equals_eq20(model, model_kw, step):
    problem, target = target_problem(model, model_kw, "dpm++2m", 6, wrt="params")
    x0, frozen, coef = dpm_forward(problem)
    p = problem.steps - step
    xs = trajectory(problem, coef, frozen)

    def G(e):
        return dpm_replay(problem.latent, frozen[:p] + [e] + frozen[p + 1 :], coef).reshape(-1)

    Je = jacobian(G, frozen[p]).reshape(3, 3)
    expected = loss_grad(x0, target) @ Je @ theta_jacobian(problem, p, xs[p])
    res = sdo.grad(problem, "sdo", step=step)
    torch.testing.assert_close(flat_grads(res, problem.parameter_names()), expected, rtol=1e-4, atol=1e-6)


def test_sdo_scale_n_and_seeded_step():
    problem = make_problem("mlp", steps=5, wrt="params", dim=3, hidden=8)
    one = sdo.grad(problem, "sdo", step=2)
    scaled = sdo.grad(problem, "sdo", step=2, scale_by="N")
    torch.testing.assert_close(scaled.flat(), 5 * one.flat())
    a = sdo.estimators.get("sdo", seed=3)
    b = sdo.estimators.get("sdo", seed=3)
    steps_a = [a(problem).stats["retained"] for _ in range(6)]
    assert steps_a == [b(problem).stats["retained"] for _ in range(6)]
    assert len({s[0] for s in steps_a}) > 1  # the stream advances across calls
