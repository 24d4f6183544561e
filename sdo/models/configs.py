"""Named architectures at real sizes, built from their published configs with random weights."""

from __future__ import annotations

from ..schedule import DDPM_SCHEDULE, SD_SCHEDULE, NoiseSchedule
from .diffusers_unet import LatentDecoder, UNetDenoiser

# google/ddpm-cifar10-32 (35.7M parameters)
DDPM_CIFAR10 = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    layers_per_block=2,
    block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=None,
    downsample_padding=0,
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_eps=1e-6,
    norm_num_groups=32,
)

# google/ddpm-celebahq-256 (113.7M parameters)
DDPM_256 = dict(
    DDPM_CIFAR10,
    sample_size=256,
    block_out_channels=(128, 128, 256, 256, 512, 512),
    down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
)

# A small pixel-space UNet for tests and quick grids.
UNET_TINY = dict(
    sample_size=16,
    in_channels=3,
    out_channels=3,
    layers_per_block=1,
    block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
)

# runwayml/stable-diffusion-v1-5 unet/config.json (859.5M parameters)
SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)

# runwayml/stable-diffusion-v1-5 vae/config.json
SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=512,
)
SD15_SCALING = 0.18215
SD15_TOKENS = 77

# A tiny latent model with cross-attention conditioning and a VAE decoder in the loop.
LDM_TINY_UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=4,
    norm_num_groups=8,
)
LDM_TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=1,
    block_out_channels=(16, 32),
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    norm_num_groups=8,
    sample_size=16,
)
LDM_TINY_TOKENS = 8


def pixel_unet(config: dict, schedule: NoiseSchedule = DDPM_SCHEDULE, **overrides) -> UNetDenoiser:
    """A UNet2DModel denoiser from a config dict (random weights)."""
    from diffusers import UNet2DModel

    return UNetDenoiser(UNet2DModel(**{**config, **overrides}), schedule)


def latent_unet(
    unet_config: dict, vae_config: dict, tokens: int, scaling: float, schedule: NoiseSchedule = SD_SCHEDULE
) -> UNetDenoiser:
    """A UNet2DConditionModel denoiser with the AutoencoderKL decoder in the loop (random weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel(**unet_config)
    decoder = LatentDecoder(AutoencoderKL(**vae_config), scaling)
    return UNetDenoiser(unet, schedule, "epsilon", (tokens, unet_config["cross_attention_dim"]), decoder)
