"""Shared pieces of the tasks: trained models, estimator choice, image metrics, tables and figures."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from .. import estimators
from ..measure import synchronize
from .devices import module_device

RESULTS = Path("results/tasks")
# `reversible` (the DOODL analogue) differentiates its own coupled (EDICT) sampler, so the tasks score its
# result with that sampler too (sampling.coupled_sample_from_latent), not with plain DDIM.
DEFAULT_ESTIMATORS = ("sdo", "adjoint", "reversible", "bptt", "checkpoint", "truncated")
# Estimators whose gradient is another's by construction (checkpointed BPTT recomputes BPTT's activations; the
# estimator tests assert the equality): beside that method a task runs them on part of its plan only (their
# time, and a check that their outcomes match), not on every sample again.
REPLICAS = {"checkpoint": "bptt"}
COUPLED = ("reversible",)  # estimators whose samples come from the coupled sampler


ATTACKED = "fmnist-classifier"  # the classifier the tasks optimise against (attack, style features, reward)
JUDGE = "fmnist-classifier-eval"  # the separate judge: quality filter, FID features, perceptual distance
DEFAULT_MODEL = "fmnist-ddpm-v2"


@dataclass
class TaskModels:
    """The diffusion model, the classifier optimised against and the separate judge classifier."""

    model: torch.nn.Module
    attacked: torch.nn.Module
    judge: torch.nn.Module
    name: str

    @property
    def conditional(self) -> bool:
        return self.model.cond_shape is not None

    @property
    def device(self) -> torch.device:
        """The device the diffusion model (and so the task) runs on."""
        return module_device(self.model)


def load_models(
    name: str = DEFAULT_MODEL,
    weights: str | None = None,
    guidance: float | None = None,
    device: str | torch.device = "cpu",
):
    """TaskModels for diffusion model `name` (optionally other weights, e.g. an in-progress EMA, and CFG w),
    every model on `device`."""
    from .. import models
    from ..models.classifiers import fmnist_eval_classifier
    from ..models.trained import fmnist_classifier

    options = {k: v for k, v in dict(weights=weights, guidance=guidance).items() if v is not None}
    nets = (models.get(name, **options), fmnist_classifier(), fmnist_eval_classifier())
    return TaskModels(*(net.to(device) for net in nets), name)


def trained_models():
    """(fmnist-ddpm Denoiser, frozen fmnist-classifier): the unconditional v1 pair."""
    from .. import models
    from ..models.trained import fmnist_classifier

    return models.get("fmnist-ddpm"), fmnist_classifier()


def record(config, seeds=None, device: str | torch.device = "cpu", **extra) -> dict:
    """Provenance of a task output (commit, versions, device, threads, date, command) with its settings."""
    from ..provenance import provenance

    cfg = vars(config) if hasattr(config, "__dataclass_fields__") else dict(config)
    return dict(provenance=provenance(device=device), config=cfg, seeds=seeds, **extra)


def supports(name: str, wrt: str) -> bool:
    """Whether the registered estimator `name` differentiates with respect to `wrt`."""
    supported = getattr(estimators.get(name), "supported_wrt", None)
    return supported is None or wrt in supported


def usable_estimators(wanted, wrt: str, required: bool = True) -> list[str]:
    """The registered estimators among `wanted` that support `wrt`; with `required`, none is a ValueError
    naming the estimators that do."""
    wanted = list(wanted)
    registered = set(estimators.names())
    out = [name for name in wanted if name in registered and supports(name, wrt)]
    if required and not out:
        valid = sorted(n for n in registered if supports(n, wrt))
        raise ValueError(f"none of the estimators {wanted} supports wrt={wrt!r}; valid: {valid}")
    return out


def estimate(est, problem):
    """(est(problem), None), or (None, 'unsupported: ...') when the estimator does not support the problem."""
    try:
        return est(problem), None
    except ValueError as e:
        if not unsupported(e):
            raise
        return None, f"unsupported: {e}"


def unsupported(error: ValueError) -> bool:
    """Whether an estimator's ValueError says it does not support this problem (wrt or sampler)."""
    text = str(error)
    return "does not support" in text or "needs the native" in text


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004, Gaussian 7x7 window, sigma 1.5) of single-channel images."""
    w = _gaussian_window().to(a)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = F.conv2d(a, w), F.conv2d(b, w)
    var_a = F.conv2d(a * a, w) - mu_a**2
    var_b = F.conv2d(b * b, w) - mu_b**2
    cov = F.conv2d(a * b, w) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


PERCEPTUAL_NOTE = (
    "perceptual distance: L2 between unit-normalised penultimate features of the judge classifier "
    "(fmnist-classifier-eval); it is not LPIPS, whose AlexNet/VGG backbones are not available offline"
)


@torch.no_grad()
def perceptual_distance(judge, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image || f(a)/|f(a)| - f(b)/|f(b)| || in the judge's penultimate features (not LPIPS)."""
    fa = F.normalize(judge.penultimate(a.float().clamp(-1, 1)), dim=1)
    fb = F.normalize(judge.penultimate(b.float().clamp(-1, 1)), dim=1)
    return (fa - fb).norm(dim=1)


def write_table(df: pd.DataFrame, name: str, out: Path, command: str | None = None, note: str = "") -> None:
    """Write `name`.csv and `name`.md (with the command and commit that made it, and `note`) under `out`."""
    from ..provenance import source

    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{name}.csv", index=False)
    cmd = command or "python -m sdo.tasks " + " ".join(sys.argv[1:])
    commit = source().get("git_commit")
    (out / f"{name}.md").write_text(
        f"<!-- generated by: {cmd} (commit {commit}); full provenance in the task's JSON file -->\n\n"
        + (f"{note}\n\n" if note else "")
        + f"{markdown(df)}\n"
    )


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return str(v)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of `df` (floats to 4 significant digits, NaN as empty)."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def save_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float))


def image_grid(rows: list[torch.Tensor], labels: list[str], path: Path, title: str = "") -> None:
    """A PNG grid: one row of images (N, 1, H, W) in [-1, 1] per entry of `rows`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(r.shape[0] for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 0.95 + 0.3), squeeze=False)
    for r, (imgs, label) in enumerate(zip(rows, labels)):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < imgs.shape[0]:
                ax.imshow(imgs[c, 0].detach().float().cpu(), cmap="gray", vmin=-1, vmax=1)
        axes[r][0].text(-2, 16, label, ha="right", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


class Stopwatch:
    """Wall time of a block (perf_counter), waiting for the device's queued work at both ends."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = device

    def __enter__(self):
        synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        self.seconds = time.perf_counter() - self.start
        return False


def replica_agreement(df: pd.DataFrame, methods, on: list[str], outcome: str) -> list[dict]:
    """For each replica (REPLICAS) that ran beside its original: the samples (rows matched `on`) both ran on,
    how many had the same `outcome` and the largest difference in pixel L2."""
    out = []
    for replica, original in REPLICAS.items():
        if replica not in methods or original not in methods or not len(df):
            continue
        both = df[df.method == replica].merge(df[df.method == original], on=on)
        gap = float((both.pixel_l2_x - both.pixel_l2_y).abs().max()) if len(both) else float("nan")
        same = int((both[f"{outcome}_x"] == both[f"{outcome}_y"]).sum())
        out.append(
            dict(method=replica, replicates=original, shared=len(both), same_outcome=same, max_l2_gap=gap)
        )
    return out


def replica_sentence(r: dict, where: str) -> str:
    """What a replica's row rests on (`where` it runs) and whether its outcomes matched its original's."""
    head = f"{r['method']} computes {r['replicates']}'s gradient by construction, so it runs on {where} only"
    if not r["shared"]:
        return f"{head} (its time, and a check); no sample is stored for both yet."
    return (
        f"{head} (its time, and a check): on the {r['shared']} samples both ran, {r['same_outcome']} have the "
        f"same outcome; the largest pixel-L2 difference is {r['max_l2_gap']:.2g}."
    )
