"""Samplers: native DDIM vs diffusers' DDIMScheduler, S-obeying multistep history, explicit noise."""

import pytest
import torch
from conftest import make_problem

import sdo


@pytest.mark.parametrize("steps", [10, 25])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_native_ddim_matches_diffusers_ddim(steps, eta):
    native = make_problem("gmm", "ddim", steps, sampler_options={"eta": eta}, dim=4, seed=1)
    adapter = make_problem("gmm", "diffusers-ddim", steps, sampler_options={"eta": eta}, dim=4, seed=1)
    adapter.noise = native.noise
    a, b = sdo.grad(native, "bptt"), sdo.grad(adapter, "bptt")
    # diffusers keeps alphas_cumprod in float32, so the two agree to float32 precision
    torch.testing.assert_close(a.x0, b.x0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.flat(), b.flat(), rtol=1e-4, atol=1e-6)


def test_v_prediction_and_flow_models_sample_the_same_mixture():
    """An exact model gives (nearly) the same x_0 whatever it predicts: eps, v or flow velocity."""
    kw = dict(dim=2, seed=2, steps=50)
    x_eps = sdo.grad(make_problem("gmm", **kw), "sdo").x0
    x_v = sdo.grad(make_problem("gmm", prediction_type="v_prediction", **kw), "sdo").x0
    torch.testing.assert_close(x_eps, x_v, rtol=1e-10, atol=1e-10)
    x_flow = sdo.grad(make_problem("gmm-flow", sampler="flow-euler", **kw), "sdo").x0
    x_flow_native = sdo.grad(make_problem("gmm-flow", sampler="ddim", **kw), "sdo").x0
    torch.testing.assert_close(x_flow, x_flow_native, rtol=1e-5, atol=1e-5)  # diffusers computes in float32


def test_multistep_history_obeys_retention_set():
    """With S = {N}, the stored x0-prediction of step N keeps its graph and feeds step N-1 (DPM-Solver++)."""
    problem = make_problem("mlp", "dpm++2m", 4, dim=3, hidden=8)
    solver, model = problem.solver, problem.model
    z = problem.latent.clone().requires_grad_(True)
    h = solver.initial_history()
    x = z
    for i in (4, 3, 2, 1):
        with torch.set_grad_enabled(i == 4):
            m = model(solver.model_input(i, x), solver.timestep(i))
        x, h = solver.step(i, x, m, h)
        if i == 4:
            assert h[-1].requires_grad  # step N is in S: its stored output keeps a graph
        if i == 3:
            stored = h[-1]
            assert stored.grad_fn is not None  # solver arithmetic on x keeps its graph (Eq. 18)
    assert torch.equal(sdo.grad(problem, "sdo").x0, x.detach())


def test_sampler_steps_are_pure_functions_of_their_state():
    """Calling a diffusers step twice with the same (i, x, m, history) gives the same result."""
    problem = make_problem("gmm", "dpm++2m", 5, dim=2)
    solver = problem.solver
    x, m = problem.latent, torch.ones_like(problem.latent)
    _, h = solver.step(5, x, m, solver.initial_history())
    a, _ = solver.step(4, x, m, h)
    solver.step(3, x, 2 * m, h)
    b, _ = solver.step(4, x, m, h)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["ddim", "diffusers-ddim", "dpm++2m", "euler"])
def test_every_vp_sampler_denoises_the_mixture(name):
    """On the exact GMM denoiser every sampler ends near a mixture mean (a sanity check of the grids)."""
    problem = make_problem("gmm", name, 50, dim=2, spread=3.0, scale=0.05, batch=8, seed=3)
    x0 = sdo.grad(problem, "sdo").x0
    d = torch.cdist(x0, problem.model.means.detach()).min(dim=1).values
    assert d.max() < 0.5


def test_unknown_and_mistyped_sampler_options_fail_at_get():
    with pytest.raises(ValueError, match=r"unknown option 'etta' for sampler 'ddim'; valid: .*eta"):
        sdo.samplers.get("ddim", 5, etta=0.5)
    with pytest.raises(ValueError, match="eta='x' has type str; expected float"):
        sdo.samplers.get("ddim", 5, eta="x")
    with pytest.raises(ValueError, match="clip_sample=1 has type int; expected bool"):
        sdo.samplers.get("diffusers-ddim", 5, clip_sample=1)
    with pytest.raises(ValueError, match="timestep_spacing='middle'; valid: linspace, leading, trailing"):
        sdo.samplers.get("dpm++2m", 5, timestep_spacing="middle")
    with pytest.raises(ValueError, match="prediction_type is fixed by the model's training"):
        sdo.samplers.get("euler", 5, prediction_type="v_prediction")
    assert {"lower_order_final", "final_sigmas_type"} <= set(sdo.samplers.options("dpm++2m"))
    assert sdo.samplers.get("ddim", 5, eta=1).options == {"eta": 1}  # an int is a valid float


@pytest.mark.parametrize(
    "sampler,steps,options,message",
    [
        (
            "ddim",
            5,
            {"thresholding": True},
            "ddim does not implement thresholding=True; use the 'diffusers-ddim'",
        ),
        ("ddim", 1001, {}, "steps N = 1001 exceeds the model's 1000 training timesteps"),
        ("ddim", 1000, {"timestep_spacing": "leading", "steps_offset": 1}, "leave 0..999"),
        ("diffusers-ddim", 61, {}, "builds 62 timesteps for N = 61 with timestep_spacing='trailing'"),
    ],
)
def test_unsupported_settings_are_clear_errors(sampler, steps, options, message):
    with pytest.raises(ValueError, match=message):
        make_problem("gmm", sampler, steps, dim=2, sampler_options=options)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_native_grid_is_ddimschedulers_for_every_n(spacing):
    """vp_timesteps reproduces DDIMScheduler.set_timesteps (numpy's rounding included) for N = 1..200;
    where diffusers' trailing arange yields N + 1 points (ending at t = -1) the native grid keeps N."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    for n in range(1, 201):
        scheduler.set_timesteps(n)
        expected = scheduler.timesteps.tolist()[:n]
        assert sdo.samplers.vp_timesteps(1000, n, spacing, scheduler.config.steps_offset) == expected, n


def test_sdo_models_keep_their_defaults_and_options_override():
    """Without a scheduler config: trailing grid, clean endpoint, no clipping; options change each."""
    model = sdo.models.get("gmm", dim=2)
    plain = sdo.samplers.get("ddim", 4).build(model)
    assert plain.times == [999.0, 749.0, 499.0, 249.0] and plain.landing[-1] == (1.0, 0.0)
    lead = sdo.samplers.get("ddim", 4, timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False)
    built = lead.build(model)
    assert built.times == [751.0, 501.0, 251.0, 1.0]
    assert built.landing[-1] == model.schedule.alpha_sigma(0)
    assert sdo.samplers.get("euler", 4).build(model).scheduler.config.timestep_spacing == "trailing"


def test_cli_sampler_option_reaches_the_sampler(capsys):
    from sdo.cli import main

    base = ["grad", "--model", "gmm", "--steps", "4", "--json"]
    assert main([*base, "--sampler-option", "timestep_spacing=leading", "--sampler-option", "eta=0.5"]) == 0
    leading = capsys.readouterr().out
    assert main(base) == 0
    assert leading != capsys.readouterr().out
    assert main([*base, "--sampler-option", "spacing=leading"]) == 2
    assert "unknown option 'spacing' for sampler 'ddim'" in capsys.readouterr().err


def test_on_grid_tells_the_ode_adjoints_when_ddim_is_not_plain_ddim():
    """adjoint and adjoint-deis integrate the ODE on the grid; clipping or off-grid landing is refused."""
    model = sdo.models.get("gmm", dim=2)
    assert sdo.samplers.get("ddim", 7).build(model).on_grid
    assert sdo.samplers.get("diffusers-ddim", 10).build(model).on_grid
    assert not sdo.samplers.get("diffusers-ddim", 7).build(model).on_grid  # lands on t - 142, off the grid
    assert not sdo.samplers.get("ddim", 7, landing="diffusers").build(model).on_grid
    assert not sdo.samplers.get("ddim", 10, clip_sample=True).build(model).on_grid
    assert not sdo.samplers.get("ddim", 10, set_alpha_to_one=False).build(model).on_grid
    for estimator in ("adjoint", "adjoint-deis"):
        with pytest.raises(ValueError, match="clips x0_hat, steps off its grid"):
            sdo.grad(make_problem("gmm", "ddim", 4, dim=2, sampler_options={"clip_sample": True}), estimator)
