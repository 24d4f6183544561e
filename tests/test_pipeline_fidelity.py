"""sdo samples what the user's diffusers pipeline samples: x_0 and the BPTT gradient wrt x_N equal a plain
hand-written loop over the same scheduler object (set_timesteps, scale_model_input, unet, step; autograd
through it), and diffusers' DDIMPipeline, for pixel and latent models, DDIM (eta = 0 and eta > 0 with
explicit noise), DPM-Solver++ 2M and Euler, several spacings and N."""

import copy

import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler

import sdo
from analysis.pipeline_fidelity import (
    TOKENS,
    inputs,
    load,
    make_scheduler,
    reference,
    save,
    tiny_modules,
)

TRAILING = {"timestep_spacing": "trailing"}
NO_CLIP = {"clip_sample": False}
SD_LIKE_DDIM = {"steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False}  # as SD 1.5 ships


@pytest.fixture(scope="module")
def pixel():
    return tiny_modules(latent=False)[0]


@pytest.fixture(scope="module")
def latent():
    return tiny_modules(latent=True)


def sdo_bptt(model, sampler, steps, eta=0.0, dtype=torch.float32, **options):
    """(x_0, dJ/dz, the problem's objective and inputs) from sdo's BPTT on explicit inputs."""
    inp = inputs(model, steps, eta)
    inp = {
        k: v if v is None else [n.to(dtype) for n in v] if isinstance(v, list) else v.to(dtype)
        for k, v in inp.items()
    }
    if eta > 0:
        options["eta"] = eta
    objective = sdo.objectives.get("target-mse", seed=1)
    problem = sdo.Problem(model, sdo.samplers.get(sampler, steps, **options), objective, dtype=dtype, **inp)
    res = sdo.grad(problem, "bptt")
    return res.x0, res.grads["latent"], objective, inp


def assert_matches_loop(model, unet, vae, scheduler, sampler, steps, eta=0.0, rtol=1e-6, **options):
    x0, g, objective, inp = sdo_bptt(model, sampler, steps, eta, **options)
    rx0, rg = reference(
        unet, vae, scheduler, objective, inp["latent"], steps, inp.get("cond"), eta, inp["noise"]
    )
    torch.testing.assert_close(x0, rx0, rtol=rtol, atol=rtol * rx0.abs().max())
    torch.testing.assert_close(g, rg, rtol=rtol, atol=rtol * rg.abs().max())


ADAPTER_CASES = [  # (sampler, the user's scheduler config, eta, N)
    ("diffusers-ddim", {}, 0.0, 3),  # DDIMScheduler defaults: leading, clip_sample on
    ("diffusers-ddim", {}, 0.0, 7),
    ("diffusers-ddim", TRAILING, 0.0, 10),
    ("diffusers-ddim", {**TRAILING, **NO_CLIP}, 0.0, 50),
    ("diffusers-ddim", {**TRAILING, **NO_CLIP}, 0.5, 3),  # explicit noise
    ("diffusers-ddim", SD_LIKE_DDIM, 0.8, 7),
    ("dpm++2m", {}, 0.0, 3),  # DPMSolverMultistepScheduler defaults: linspace, lower_order_final
    ("dpm++2m", {}, 0.0, 10),
    ("dpm++2m", TRAILING, 0.0, 7),
    ("dpm++2m", {"timestep_spacing": "leading", "steps_offset": 1}, 0.0, 7),
    ("euler", {}, 0.0, 7),  # EulerDiscreteScheduler defaults: linspace
    ("euler", TRAILING, 0.0, 3),
    ("euler", {"timestep_spacing": "leading"}, 0.0, 10),
]


@pytest.mark.parametrize("sampler,config,eta,steps", ADAPTER_CASES)
def test_adapters_on_the_users_scheduler_equal_the_plain_loop(pixel, sampler, config, eta, steps):
    """(unet, scheduler) in memory: the scheduler's own config is the sampler's, no option given."""
    scheduler = make_scheduler(sampler, **config)
    model = sdo.models.get((pixel, scheduler))
    assert_matches_loop(model, pixel, None, scheduler, sampler, steps, eta)


@pytest.mark.parametrize(
    "config,eta,steps",
    [({}, 0.0, 3), ({}, 0.0, 7), (TRAILING, 0.0, 10), (TRAILING, 0.7, 7), (SD_LIKE_DDIM, 0.5, 10)],
)
def test_native_ddim_is_ddimscheduler_in_float64(pixel, config, eta, steps):
    """Native ddim (float64 coefficients) equals DDIMScheduler's own step in float64 once the scheduler's
    float32 alphas_cumprod are replaced by the float64 ones: same grid, landing point, clipping, endpoint."""
    scheduler = make_scheduler("ddim", **config)
    unet = copy.deepcopy(pixel).double()
    model = sdo.models.get((unet, scheduler))
    x0, g, objective, inp = sdo_bptt(model, "ddim", steps, eta, dtype=torch.float64)
    scheduler.alphas_cumprod = model.schedule.alphas_cumprod()
    scheduler.final_alpha_cumprod = torch.tensor(
        1.0 if scheduler.config.set_alpha_to_one else float(scheduler.alphas_cumprod[0]), dtype=torch.float64
    )
    rx0, rg = reference(unet, None, scheduler, objective, inp["latent"], steps, None, eta, inp["noise"])
    torch.testing.assert_close(x0, rx0, rtol=1e-10, atol=1e-10 * rx0.abs().max())
    torch.testing.assert_close(g, rg, rtol=1e-10, atol=1e-10 * rg.abs().max())


@pytest.mark.parametrize("config,steps", [({**TRAILING, **NO_CLIP}, 7), (SD_LIKE_DDIM, 3)])
def test_native_ddim_in_float32_equals_the_plain_loop(pixel, config, steps):
    """In float32 native ddim differs from DDIMScheduler only by its float64 alphas (rounding, 6e-8)."""
    scheduler = make_scheduler("ddim", **config)
    assert_matches_loop(sdo.models.get((pixel, scheduler)), pixel, None, scheduler, "ddim", steps, rtol=1e-5)


@pytest.mark.parametrize("sampler", ["ddim", "diffusers-ddim"])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_equals_diffusers_ddimpipeline_on_a_ddpm_pipeline(pixel, sampler, eta):
    """The user's DDPMPipeline(unet, DDPMScheduler()) (clip_sample on, leading spacing), passed in memory;
    DDIMPipeline converts its scheduler with from_config and draws x_N and each step's noise from one
    generator, which sdo gets as explicit latent and noise."""
    steps = 7
    pipe = DDPMPipeline(pixel, DDPMScheduler())
    ddim = DDIMPipeline(pixel, pipe.scheduler)
    ddim.set_progress_bar_config(disable=True)
    out = ddim(
        batch_size=1,
        generator=torch.Generator().manual_seed(3),
        eta=eta,
        num_inference_steps=steps,
        output_type="np",
    ).images
    g = torch.Generator().manual_seed(3)
    shape = (1, *pixel_shape(pixel))
    latent = torch.randn(shape, generator=g)
    noise = [torch.randn(shape, generator=g) for _ in range(steps)] if eta > 0 else None
    options = {"eta": eta} if eta > 0 else {}
    problem = sdo.Problem(
        sdo.models.get(pipe),
        sdo.samplers.get(sampler, steps, **options),
        sdo.objectives.get("target-mse"),
        latent=latent,
        noise=noise,
    )
    image = (sdo.grad(problem, "bptt").x0 / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    tol = 1e-6 if sampler == "diffusers-ddim" else 1e-5
    torch.testing.assert_close(torch.from_numpy(image), torch.from_numpy(out), rtol=tol, atol=tol)


def pixel_shape(unet):
    c = unet.config
    return (c.in_channels, c.sample_size, c.sample_size)


LATENT_CASES = [
    ("diffusers-ddim", SD_LIKE_DDIM, 0.0, 7),
    ("ddim", SD_LIKE_DDIM, 0.0, 3),
    ("dpm++2m", {}, 0.0, 7),
    ("euler", {}, 0.0, 3),
]


@pytest.mark.parametrize("sampler,config,eta,steps", LATENT_CASES)
def test_latent_directory_equals_the_plain_loop_with_decoder(latent, tmp_path, sampler, config, eta, steps):
    """A Stable-Diffusion-like directory (unet/, vae/, scheduler/ via save_pretrained) through
    sdo.models.get(directory): x_0 and the gradient of J(vae.decode(x_0 / scaling)) match the loop over
    the modules a user loads from that directory."""
    save(tmp_path, *latent, make_scheduler(sampler, latent=True, **config))
    unet, vae, scheduler = load(tmp_path, True, type(make_scheduler(sampler)).__name__)
    model = sdo.models.get(str(tmp_path), tokens=TOKENS)
    rtol = 1e-5 if sampler == "ddim" else 1e-6
    assert_matches_loop(model, unet, vae, scheduler, sampler, steps, eta, rtol=rtol)


def test_pixel_directory_scheduler_config_is_the_default(pixel, tmp_path):
    """A directory saved with a trailing, unclipped DDIMScheduler: sdo's diffusers-ddim matches the loop
    over the scheduler loaded from it; overriding a key via samplers.get matches the overridden loop."""
    save(tmp_path, pixel, None, make_scheduler("ddim", **TRAILING, **NO_CLIP))
    unet, _, scheduler = load(tmp_path, False, "DDIMScheduler")
    model = sdo.models.get(str(tmp_path))
    assert_matches_loop(model, unet, None, scheduler, "diffusers-ddim", 7)
    leading = DDIMScheduler.from_config(scheduler.config, timestep_spacing="leading", clip_sample=True)
    assert_matches_loop(
        model, unet, None, leading, "diffusers-ddim", 7, timestep_spacing="leading", clip_sample=True
    )
    assert_matches_loop(
        model, unet, None, leading, "ddim", 7, rtol=1e-5, timestep_spacing="leading", clip_sample=True
    )


def test_trailing_grid_and_landing_points_are_diffusers():
    """DDIMScheduler's trailing grid at N = 3 is 999, 666, 332 and its steps land on t - 333: the native
    grid and landing (alpha at 666, 333, then the clean endpoint) are the same."""
    scheduler = DDIMScheduler(timestep_spacing="trailing")
    scheduler.set_timesteps(3)
    assert scheduler.timesteps.tolist() == [999, 666, 332]
    model = sdo.models.get((tiny_modules(False)[0], scheduler))
    solver = sdo.samplers.get("ddim", 3).build(model)
    assert solver.times == [999.0, 666.0, 332.0]
    ab = model.schedule.alphas_cumprod()
    landed = [a * a for a, _ in solver.landing]
    torch.testing.assert_close(
        torch.tensor(landed, dtype=torch.float64),
        torch.stack([ab[666], ab[333], torch.tensor(1.0, dtype=torch.float64)]),
    )
    # sdo's own models (no scheduler config) keep the grid landing: the next grid point
    grid = sdo.samplers.get("ddim", 3).build(sdo.models.get("gmm", dim=2))
    assert grid.landing[1] == grid.coef[2]
