"""Local checkpoints: a tiny pipeline saved with save_pretrained loads through sdo.models.get(path) and gives
the same outputs as the original diffusers modules (the path users take with SD 1.5 / ddpm-celebahq-256)."""

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel, UNet2DModel

import sdo
from sdo.models import configs


def test_pixel_unet_with_scheduler_round_trips(tmp_path):
    torch.manual_seed(0)
    unet = UNet2DModel(**configs.UNET_TINY).eval()
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="v_prediction")
    unet.save_pretrained(tmp_path / "unet")
    sched.save_pretrained(tmp_path / "scheduler")
    model = sdo.models.get(str(tmp_path))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10.0, 500.0])
    with torch.no_grad():
        assert torch.allclose(model(x, t), unet(x, t).sample, atol=1e-6)
    assert model.prediction_type == "v_prediction"
    ab = sched.alphas_cumprod.to(torch.float64)
    assert torch.allclose(model.schedule.alphas_cumprod(), ab, rtol=1e-6)


def test_latent_unet_with_vae_decoder_round_trips(tmp_path):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**configs.LDM_TINY_UNET).eval()
    vae = AutoencoderKL(**configs.LDM_TINY_VAE, scaling_factor=0.5).eval()
    sched = DDIMScheduler(**sdo.schedule.SD_SCHEDULE.scheduler_config())
    for sub, module in (("unet", unet), ("vae", vae), ("scheduler", sched)):
        module.save_pretrained(tmp_path / sub)
    model = sdo.models.get(str(tmp_path), tokens=configs.LDM_TINY_TOKENS)
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([300.0])
    cond = torch.randn(1, configs.LDM_TINY_TOKENS, configs.LDM_TINY_UNET["cross_attention_dim"])
    with torch.no_grad():
        assert torch.allclose(model(x, t, cond), unet(x, t, encoder_hidden_states=cond).sample, atol=1e-6)
        assert torch.allclose(model.decode(x), vae.decode(x / 0.5).sample, atol=1e-5)
    assert model.cond_shape == (configs.LDM_TINY_TOKENS, configs.LDM_TINY_UNET["cross_attention_dim"])
    assert model.schedule == sdo.schedule.SD_SCHEDULE


def test_pipelines_and_tuples_in_memory_share_modules_and_carry_the_scheduler_config():
    from diffusers import DDIMPipeline

    unet = UNet2DModel(**configs.UNET_TINY).eval()
    sched = DDIMScheduler(timestep_spacing="trailing", clip_sample=False, prediction_type="v_prediction")
    for obj in (DDIMPipeline(unet, sched), (unet, sched)):
        model = sdo.models.get(obj)
        assert model.unet is unet and model.prediction_type == "v_prediction"
        assert model.scheduler_config["timestep_spacing"] == "trailing"
        assert model.scheduler_config["_class_name"] == "DDIMScheduler"
    latent = UNet2DConditionModel(**configs.LDM_TINY_UNET).eval()
    vae = AutoencoderKL(**configs.LDM_TINY_VAE, scaling_factor=0.5).eval()
    model = sdo.models.get((latent, DDIMScheduler(), vae), tokens=configs.LDM_TINY_TOKENS)
    assert model.decoder.decoder is vae.decoder and model.decoder.scaling_factor == 0.5
    with pytest.raises(ValueError, match=r"\(unet, scheduler\[, vae\]\) tuple; got int"):
        sdo.models.get(3)
    with pytest.raises(ValueError, match="expected \\(unet, scheduler\\) or \\(unet, scheduler, vae\\)"):
        sdo.models.get((unet,))


def test_bench_runs_a_case_on_a_local_directory(tmp_path):
    from bench.case import run_case
    from bench.cli import _validate, cases_of, parser

    UNet2DModel(**configs.UNET_TINY).save_pretrained(tmp_path / "unet")
    DDIMScheduler(clip_sample=False).save_pretrained(tmp_path / "scheduler")
    args = parser().parse_args(["run", "--grid", "tiny", "--models", str(tmp_path), "--steps", "2"])
    args.estimators = ["sdo"]
    _validate(args)
    cases = [c for c in cases_of(args) if c.estimator == "sdo" and c.wrt == "latent"]
    assert cases and all(c.model == str(tmp_path) for c in cases)
    assert run_case(cases[0])["status"] == "ok"


def test_problem_takes_a_pipeline_and_samples_with_its_scheduler():
    from diffusers import DDIMPipeline

    unet = UNet2DModel(**configs.UNET_TINY).eval()
    pipe = DDIMPipeline(unet, DDIMScheduler(timestep_spacing="leading", steps_offset=1))
    problem = sdo.Problem(pipe, sdo.samplers.get("ddim", 4), sdo.objectives.get("target-mse"))
    assert problem.model.unet is unet
    assert problem.solver.times == [751.0, 501.0, 251.0, 1.0]


def test_figure_names_of_a_local_directory_model_stay_inside_the_figures_folder():
    from bench.figures import file_stem

    assert file_stem("/data/stable-diffusion-v1-5") == "data_stable-diffusion-v1-5"
    assert file_stem("unet-tiny") == "unet-tiny" and "/" not in file_stem("a/../b")
