"""Model cards for the trained models: data, command, steps, wall time, loss, sample grid, accuracy, FID."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..data import CLASSES, fmnist_tensors

DATA = "Fashion-MNIST (Debian package `dataset-fashion-mnist`, /usr/share/datasets/fashion-mnist), 28x28 padded to 32x32 with background, scaled to [-1, 1]"


def _grid(images: torch.Tensor, path: Path, cols: int = 10, titles: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * 0.9, rows * (1.05 if titles else 0.9)), squeeze=False
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k, 0].float(), cmap="gray", vmin=-1, vmax=1)
            if titles:
                ax.set_title(titles[k], fontsize=5)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def generated_stats(images: torch.Tensor, classifier) -> dict:
    """What the classifier says about generated samples: class histogram, mean top-class probability."""
    with torch.no_grad():
        prob = torch.cat([classifier(images[i : i + 500]).softmax(1) for i in range(0, len(images), 500)])
    pred = prob.argmax(1)
    return dict(
        n=len(images),
        classes_predicted=int(pred.unique().numel()),
        class_histogram={CLASSES[c]: int((pred == c).sum()) for c in range(10)},
        mean_top_class_probability=prob.amax(1).mean().item(),
        fraction_top_probability_ge_0_9=(prob.amax(1) >= 0.9).float().mean().item(),
    )


def _train_info(out: Path, name: str) -> dict:
    path = out / f"{name}.train.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _training_lines(info: dict) -> list[str]:
    keys = (
        "command",
        "steps",
        "schedule_steps",
        "epochs",
        "batch",
        "lr",
        "ema_decay",
        "weights",
        "seed",
        "threads",
        "wall_s",
        "final_loss",
        "note",
    )
    lines = [f"- {k}: `{info[k]}`" if k == "command" else f"- {k}: {info[k]}" for k in keys if k in info]
    return lines + ["- wall time: one thread on a 2-core CPU shared with other jobs, so an upper bound"]


def ddpm_card(out: Path, samples: int, ddim_steps: int, seed: int) -> str:
    from ..models import get
    from ..models.trained import FMNIST_UNET, fmnist_classifier
    from ..tasks.fid import fid
    from ..tasks.sampling import generate

    model, classifier = get("fmnist-ddpm"), fmnist_classifier()
    t0 = time.perf_counter()
    x = generate(model, samples, ddim_steps, seed, batch=250)
    sample_s = time.perf_counter() - t0
    _grid(x[:80], out / "fmnist-ddpm-samples.png")
    stats = generated_stats(x, classifier)
    test, _ = fmnist_tensors("test")
    train, _ = fmnist_tensors("train")
    fid_gen = fid(x, test)
    fid_floor = fid(
        train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:samples]], test
    )
    info = _train_info(out, "fmnist-ddpm")
    params = sum(p.numel() for p in model.parameters())
    lines = [
        "# fmnist-ddpm",
        "",
        f"A diffusers `UNet2DModel` ({params / 1e6:.2f}M parameters, config `FMNIST_UNET` in sdo/models/trained.py: "
        f"block_out_channels {FMNIST_UNET['block_out_channels']}, layers_per_block {FMNIST_UNET['layers_per_block']}, "
        "attention at 16x16 and in the mid block), 1 channel, 32x32, epsilon prediction, linear DDPM schedule "
        "(beta 1e-4..0.02, 1000 steps). Weights: float32 safetensors (EMA or raw: see `weights` below). "
        'Unconditional. Load with `sdo.models.get("fmnist-ddpm")`.',
        "",
        f"- data: {DATA}; the 60,000 training images",
        "- training: Adam, linear warm-up 200 steps then cosine decay to 10%, gradient clipping 1.0, CPU",
        *_training_lines(info),
        "",
        "## Evaluation",
        f"`python -m sdo.train card ddpm --samples {samples} --ddim-steps {ddim_steps} --seed {seed}` "
        f"({samples} samples, native DDIM eta=0, {ddim_steps} steps, seed {seed}; sampling took {sample_s:.0f} s)",
        "",
        f"- classes the classifier predicts on the samples: {stats['classes_predicted']} of 10",
        f"- mean top-class probability: {stats['mean_top_class_probability']:.3f}; "
        f"fraction with top probability >= 0.9: {stats['fraction_top_probability_ge_0_9']:.3f}",
        f"- class histogram: {json.dumps(stats['class_histogram'])}",
        "- accuracy on generated samples: the model is unconditional, so there is no label to be accurate about; "
        "the two lines above are what the classifier says about them",
        f"- FID ({samples} samples vs the 10,000 test images, torch-fidelity with the fmnist-classifier's "
        f"128-d penultimate features as a registered feature extractor): **{fid_gen:.3f}**",
        f"- the same FID for {samples} real training images vs the test set (the floor at this n): {fid_floor:.3f}",
        "",
        "![samples](fmnist-ddpm-samples.png)",
        "",
    ]
    return "\n".join(lines)


def classifier_card(out: Path, seed: int) -> str:
    from ..models.trained import fmnist_classifier
    from .classifier import accuracy

    model = fmnist_classifier()
    x, y = fmnist_tensors("test")
    acc = accuracy(model, x, y)
    with torch.no_grad():
        pred = model(x[:40]).argmax(1)
    _grid(x[:40], out / "fmnist-classifier-samples.png", titles=[f"{CLASSES[p]}" for p in pred.tolist()])
    info = _train_info(out, "fmnist-classifier")
    params = sum(p.numel() for p in model.parameters())
    lines = [
        "# fmnist-classifier",
        "",
        f"A small CNN (`FMNISTClassifier` in sdo/models/trained.py, {params / 1e3:.1f}k parameters): three stages of "
        "3x3 conv + SiLU + 2x2 max pooling (32, 64, 64 channels), a 128-d fully connected SiLU layer (the penultimate "
        "features: the FID feature space), dropout 0.3, linear head to 10 classes. Input (B, 1, 32, 32) "
        "in [-1, 1]. Load with `sdo.models.trained.fmnist_classifier()`.",
        "",
        f"- data: {DATA}; trained on the 60,000 training images with random shifts of up to 2 pixels",
        "- training: Adam with a one-cycle learning-rate schedule, CPU",
        *_training_lines(info),
        "",
        "## Evaluation",
        f"- test-set accuracy (10,000 images): **{acc:.4f}**",
        "- on generated samples: see fmnist-ddpm.md",
        "- role in the tasks: the classifier the tasks optimise against (attacked in the adversarial task, its "
        "conv features in the style loss, its log-probability in the reward); the separate judge (quality filter, "
        "FID features, perceptual distance, class preserved) is fmnist-classifier-eval (fmnist-classifier-eval.md)",
        "",
        "![test images with predictions](fmnist-classifier-samples.png)",
        "",
    ]
    return "\n".join(lines)


def write_card(
    model: str, out: Path, samples: int = 1000, ddim_steps: int = 25, seed: int = 0, work: Path | None = None
) -> Path:
    """Evaluate `model` and write out/<name>.md with its figures."""
    from .card_v2 import v2_card
    from .cards_extra import digits_card, eval_classifier_card

    cards = {
        "classifier": ("fmnist-classifier.md", lambda: classifier_card(out, seed)),
        "ddpm": ("fmnist-ddpm.md", lambda: ddpm_card(out, samples, ddim_steps, seed)),
        "fmnist-classifier-eval": ("fmnist-classifier-eval.md", lambda: eval_classifier_card(out)),
        "digits-ddpm": ("digits-ddpm.md", lambda: digits_card(out, samples, ddim_steps, seed, work)),
        "fmnist-ddpm-v2": ("fmnist-ddpm-v2.md", lambda: v2_card(out, samples, ddim_steps, seed)),
    }
    if model not in cards:
        raise ValueError(f"no card for {model!r}; valid: {', '.join(cards)}")
    name, make = cards[model]
    path = out / name
    path.write_text(make())
    return path
