"""Load a real checkpoint from a *local* diffusers directory (never from a hub)."""

from __future__ import annotations

import json
from pathlib import Path

from ..schedule import NoiseSchedule
from .diffusers_unet import LatentDecoder, UNetDenoiser

UNET_CLASSES = ("UNet2DModel", "UNet2DConditionModel")


def _read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def _schedule(root: Path) -> tuple[NoiseSchedule, str]:
    """The training schedule and prediction type from scheduler/scheduler_config.json (DDPM defaults)."""
    for p in (root / "scheduler" / "scheduler_config.json", root / "scheduler_config.json"):
        if p.exists():
            cfg = _read_json(p)
            sched = NoiseSchedule(
                kind="flow" if "FlowMatch" in cfg.get("_class_name", "") else "vp",
                num_train_timesteps=cfg.get("num_train_timesteps", 1000),
                beta_schedule=cfg.get("beta_schedule", "linear"),
                beta_start=cfg.get("beta_start", 1e-4),
                beta_end=cfg.get("beta_end", 0.02),
            )
            pred = cfg.get("prediction_type", "epsilon")
            return sched, "flow" if sched.kind == "flow" else pred
    return NoiseSchedule(), "epsilon"


def _pretrained(cls, path: Path):
    """cls.from_pretrained(path) from local files; an unreadable, truncated or corrupt file is a ValueError."""
    try:
        return cls.from_pretrained(path, local_files_only=True)
    except OSError as e:
        reason = " ".join(str(e).split())
        raise ValueError(f"cannot load the {cls.__name__} in {path}: {reason}") from e


def _unet_dir(root: Path) -> Path:
    for p in (root / "unet", root):
        if (p / "config.json").exists():
            return p
    raise ValueError(f"{root} holds no unet/config.json or config.json: not a diffusers model directory")


def load_local(path: str | Path, tokens: int = 77) -> UNetDenoiser:
    """A UNetDenoiser from a local diffusers pipeline or model directory (offline, local files only)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel

    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"model path {str(root)!r} is not a directory")
    udir = _unet_dir(root)
    cls_name = _read_json(udir / "config.json").get("_class_name")
    if cls_name not in UNET_CLASSES:
        raise ValueError(
            f"{udir}/config.json has _class_name {cls_name!r}; supported: {', '.join(UNET_CLASSES)}"
        )
    schedule, pred = _schedule(root)
    if cls_name == "UNet2DModel":
        unet = _pretrained(UNet2DModel, udir)
        return UNetDenoiser(unet, schedule, pred)
    unet = _pretrained(UNet2DConditionModel, udir)
    decoder = None
    if (root / "vae" / "config.json").exists():
        vae = _pretrained(AutoencoderKL, root / "vae")
        decoder = LatentDecoder(vae, vae.config.scaling_factor)
    return UNetDenoiser(unet, schedule, pred, (tokens, unet.config.cross_attention_dim), decoder)
