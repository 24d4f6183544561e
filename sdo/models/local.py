"""Real checkpoints from a *local* diffusers directory (never from a hub) or from diffusers objects in
memory (a pipeline, or a (unet, scheduler[, vae]) tuple). The model carries the scheduler's config, so
samplers sample what that scheduler samples unless an option overrides a setting."""

from __future__ import annotations

import json
from pathlib import Path

from ..schedule import NoiseSchedule
from .diffusers_unet import LatentDecoder, UNetDenoiser

UNET_CLASSES = ("UNet2DModel", "UNet2DConditionModel")


def _read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def schedule_from_config(cfg: dict) -> tuple[NoiseSchedule, str]:
    """The training schedule and prediction type a diffusers scheduler config describes."""
    sched = NoiseSchedule(
        kind="flow" if "FlowMatch" in cfg.get("_class_name", "") else "vp",
        num_train_timesteps=cfg.get("num_train_timesteps", 1000),
        beta_schedule=cfg.get("beta_schedule", "linear"),
        beta_start=cfg.get("beta_start", 1e-4),
        beta_end=cfg.get("beta_end", 0.02),
    )
    return sched, "flow" if sched.kind == "flow" else cfg.get("prediction_type", "epsilon")


def _scheduler_config(root: Path) -> dict | None:
    """scheduler/scheduler_config.json (or scheduler_config.json beside the unet), if present."""
    for p in (root / "scheduler" / "scheduler_config.json", root / "scheduler_config.json"):
        if p.exists():
            return _read_json(p)
    return None


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


def _denoiser(unet, config: dict | None, vae=None, tokens: int = 77) -> UNetDenoiser:
    """A UNetDenoiser sharing `unet` (and `vae`'s decoder), carrying the scheduler `config`."""
    cls_name = type(unet).__name__
    if cls_name not in UNET_CLASSES:
        raise ValueError(f"unet is a {cls_name}; supported: {', '.join(UNET_CLASSES)}")
    schedule, pred = schedule_from_config(config or {})
    if cls_name == "UNet2DModel":
        model = UNetDenoiser(unet, schedule, pred)
    else:
        decoder = None if vae is None else LatentDecoder(vae, vae.config.scaling_factor)
        model = UNetDenoiser(unet, schedule, pred, (tokens, unet.config.cross_attention_dim), decoder)
    model.scheduler_config = None if config is None else dict(config)
    return model


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
    config = _scheduler_config(root)
    if cls_name == "UNet2DModel":
        return _denoiser(_pretrained(UNet2DModel, udir), config)
    unet = _pretrained(UNet2DConditionModel, udir)
    vae = None
    if (root / "vae" / "config.json").exists():
        vae = _pretrained(AutoencoderKL, root / "vae")
    return _denoiser(unet, config, vae, tokens)


def from_objects(obj, tokens: int = 77) -> UNetDenoiser:
    """A UNetDenoiser from a diffusers pipeline (its .unet, .scheduler and, if any, .vae) or a
    (unet, scheduler) / (unet, scheduler, vae) tuple. The modules are shared, not copied."""
    if isinstance(obj, (tuple, list)):
        if len(obj) not in (2, 3):
            raise ValueError(f"expected (unet, scheduler) or (unet, scheduler, vae); got {len(obj)} items")
        unet, scheduler, vae = (*obj, None)[:3]
    elif hasattr(obj, "unet") and hasattr(obj, "scheduler"):
        unet, scheduler, vae = obj.unet, obj.scheduler, getattr(obj, "vae", None)
    else:
        raise ValueError(
            "model must be a registered name, a local diffusers directory, a diffusers pipeline (with .unet "
            f"and .scheduler) or a (unet, scheduler[, vae]) tuple; got {type(obj).__name__}"
        )
    if not hasattr(scheduler, "config"):
        raise ValueError(f"scheduler is a {type(scheduler).__name__}, not a diffusers scheduler")
    config = {**scheduler.config, "_class_name": type(scheduler).__name__}
    return _denoiser(unet, config, vae, tokens)
