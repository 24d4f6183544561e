"""x_0 and gradient of sdo against a plain loop over the same diffusers scheduler, per sampler and spacing.

    python -m analysis.pipeline_fidelity            # prints a markdown table

A tiny pixel UNet2DModel (and a tiny latent UNet2DConditionModel + AutoencoderKL) with random weights is
saved with a scheduler config to a temporary directory and loaded with `sdo.models.get(directory)`; sdo's
BPTT gradient of J(D(x_0)) wrt the latent is compared with autograd through a hand-written loop
(scheduler.set_timesteps, scale_model_input, step) over a scheduler loaded from the same directory.
"""

from __future__ import annotations

import copy
import functools
import os
import tempfile
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PIXEL_UNET = dict(
    sample_size=8,
    in_channels=3,
    out_channels=3,
    layers_per_block=1,
    block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=4,
    attention_head_dim=4,
)
LATENT_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(8, 16),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=8,
    attention_head_dim=2,
    norm_num_groups=4,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=1,
    block_out_channels=(8,),
    down_block_types=("DownEncoderBlock2D",),
    up_block_types=("UpDecoderBlock2D",),
    norm_num_groups=4,
    sample_size=8,
    scaling_factor=0.5,
)
TOKENS = 4
SCHEDULERS = {  # sdo sampler name -> the diffusers scheduler class it wraps
    "ddim": "DDIMScheduler",
    "diffusers-ddim": "DDIMScheduler",
    "dpm++2m": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
}
SD_LIKE = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def tiny_modules(latent: bool, seed: int = 0) -> tuple:
    """(unet, vae or None) with random weights, in eval mode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel

    torch.manual_seed(seed)
    if not latent:
        return UNet2DModel(**PIXEL_UNET).eval(), None
    return UNet2DConditionModel(**LATENT_UNET).eval(), AutoencoderKL(**TINY_VAE).eval()


def make_scheduler(sampler: str, latent: bool = False, **config):
    """The diffusers scheduler `sampler` wraps, with `config` (an SD-like schedule for latent models)."""
    import diffusers

    cls = getattr(diffusers, SCHEDULERS[sampler])
    return cls(**({**SD_LIKE, **config} if latent else config))


def save(directory: Path, unet, vae, scheduler) -> Path:
    """A diffusers pipeline directory (unet/, scheduler/ and vae/)."""
    for sub, module in (("unet", unet), ("scheduler", scheduler), ("vae", vae)):
        if module is not None:
            module.save_pretrained(directory / sub)
    return directory


def load(directory: Path, latent: bool, scheduler_class: str) -> tuple:
    """(unet, vae or None, scheduler) as a user loads them from the directory with from_pretrained."""
    import diffusers

    unet_cls = diffusers.UNet2DConditionModel if latent else diffusers.UNet2DModel
    unet = unet_cls.from_pretrained(directory / "unet", local_files_only=True).eval()
    vae = None
    if latent:
        vae = diffusers.AutoencoderKL.from_pretrained(directory / "vae", local_files_only=True).eval()
    scheduler = getattr(diffusers, scheduler_class).from_pretrained(
        directory / "scheduler", local_files_only=True
    )
    return unet, vae, scheduler


def plain_loop(unet, scheduler, z, steps, cond=None, eta=0.0, noise=None):
    """x_0 by the loop diffusers' pipelines run: x_N = init_noise_sigma z, then scale_model_input, unet, step."""
    scheduler.set_timesteps(steps)
    x = z * scheduler.init_noise_sigma
    for k, t in enumerate(scheduler.timesteps):
        inp = scheduler.scale_model_input(x, t)
        m = unet(inp, t).sample if cond is None else unet(inp, t, encoder_hidden_states=cond).sample
        kw = {"eta": eta, "variance_noise": noise[k]} if eta > 0 else {}
        x = scheduler.step(m, t, x, **kw).prev_sample
    return x


def decode(vae, x0):
    """D(x_0) as StableDiffusionPipeline decodes: vae.decode(x_0 / scaling_factor)."""
    return x0 if vae is None else vae.decode(x0 / vae.config.scaling_factor).sample


def reference(unet, vae, scheduler, objective, z, steps, cond=None, eta=0.0, noise=None):
    """(x_0, dJ/dz) by autograd through the plain loop."""
    z = z.clone().requires_grad_(True)
    x0 = plain_loop(unet, scheduler, z, steps, cond, eta, noise)
    (g,) = torch.autograd.grad(objective(decode(vae, x0)), z)
    return x0.detach(), g


def inputs(model, steps: int, eta: float, seed: int = 0) -> dict:
    """Explicit latent, per-step noise and conditioning shared by sdo and the loop."""
    g = torch.Generator().manual_seed(seed)
    shape = (1, *model.sample_shape)
    out = {"latent": torch.randn(shape, generator=g)}
    out["noise"] = [torch.randn(shape, generator=g) for _ in range(steps)] if eta > 0 else None
    if model.cond_shape is not None:
        out["cond"] = torch.randn((1, *model.cond_shape), generator=g)
    return out


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max())


def _sdo(model, sampler, steps, eta, objective, inp, dtype, **options):
    import sdo

    options = {**options, "eta": eta} if eta > 0 else options
    spec = sdo.samplers.get(sampler, steps, **options)
    res = sdo.grad(sdo.Problem(model, spec, objective, dtype=dtype, **inp), "bptt")
    return res.x0, res.grads["latent"]


def _cast(inp: dict, dtype) -> dict:
    return {
        k: v if v is None else [n.to(dtype) for n in v] if isinstance(v, list) else v.to(dtype)
        for k, v in inp.items()
    }


def compare(load, unet, vae, scheduler, sampler: str, steps: int, eta: float = 0.0, **options) -> dict:
    """Relative x_0 and gradient differences: sdo vs the plain loop in float32 (x32, g32) and float64
    (x64, g64; same scheduler, so its float32 alphas), and the float32 loop vs the float64 loop (the
    loop's own rounding, as amplified by the network: x_round, g_round). `load()` gives a fresh model."""
    import sdo

    model = load()
    inp = inputs(model, steps, eta)
    objective = sdo.objectives.get("target-mse", seed=1)
    out = {}
    refs = {}
    for bits, dtype in ((32, torch.float32), (64, torch.float64)):
        model = load()
        u = unet if bits == 32 else copy.deepcopy(unet).double()
        v = vae if vae is None or bits == 32 else copy.deepcopy(vae).double()
        obj = copy.deepcopy(objective).to(dtype)
        cast = _cast(inp, dtype)
        x0, g = _sdo(model, sampler, steps, eta, obj, cast, dtype, **options)
        rx, rg = reference(u, v, scheduler, obj, cast["latent"], steps, cast.get("cond"), eta, cast["noise"])
        out[f"x{bits}"], out[f"g{bits}"] = relative(x0, rx), relative(g, rg)
        refs[bits] = rx, rg
    out["x_round"] = relative(refs[32][0].double(), refs[64][0])
    out["g_round"] = relative(refs[32][1].double(), refs[64][1])
    return out


CASES = [  # (latent, sampler, scheduler config, eta)
    (False, "ddim", {}, 0.0),
    (False, "ddim", {"timestep_spacing": "trailing"}, 0.0),
    (False, "ddim", {"timestep_spacing": "trailing", "clip_sample": False}, 0.5),
    (False, "diffusers-ddim", {}, 0.0),
    (False, "diffusers-ddim", {"timestep_spacing": "trailing", "clip_sample": False}, 0.0),
    (False, "diffusers-ddim", {"timestep_spacing": "trailing", "clip_sample": False}, 0.5),
    (False, "dpm++2m", {}, 0.0),
    (False, "dpm++2m", {"timestep_spacing": "trailing"}, 0.0),
    (False, "euler", {}, 0.0),
    (False, "euler", {"timestep_spacing": "trailing"}, 0.0),
    (True, "ddim", {"steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False}, 0.0),
    (True, "diffusers-ddim", {"steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False}, 0.0),
    (True, "dpm++2m", {}, 0.0),
    (True, "euler", {}, 0.0),
]


def table(steps=(3, 7, 10, 50)) -> str:
    """Markdown rows: model, sampler, scheduler config, eta, N, then the relative differences of `compare`:
    sdo vs the loop in float32 and float64, and the loop's own float32 rounding (float32 vs float64 loop)."""
    import sdo

    rows = [
        "| model | sampler | scheduler config | eta | N | x_0 f32 | grad f32 | x_0 f64 | grad f64 "
        "| loop f32 vs f64: x_0, grad |",
        "|---" * 10 + "|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for k, (latent, sampler, config, eta) in enumerate(CASES):
            scheduler = make_scheduler(sampler, latent, **config)
            directory = save(Path(tmp) / str(k), *tiny_modules(latent), scheduler)
            unet, vae, scheduler = load(directory, latent, SCHEDULERS[sampler])
            kw = {"tokens": TOKENS} if latent else {}
            for n in steps:
                try:
                    d = compare(
                        functools.partial(sdo.models.get, str(directory), **kw),
                        unet,
                        vae,
                        scheduler,
                        sampler,
                        n,
                        eta,
                    )
                    cells = " | ".join(f"{d[k]:.1e}" for k in ("x32", "g32", "x64", "g64"))
                    cells += f" | {d['x_round']:.1e}, {d['g_round']:.1e}"
                except ValueError as exc:
                    cells = f"ValueError: {exc} | | | |"
                shown = ", ".join(f"{a}={b}" for a, b in config.items()) or "class defaults"
                name = "latent" if latent else "pixel"
                rows.append(
                    f"| {name} | {sampler} | {type(scheduler).__name__}: {shown} | {eta} | {n} | {cells} |"
                )
    return "\n".join(rows)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(table())
