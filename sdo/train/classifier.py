"""Train the suite's classifiers with shift augmentation: fmnist-classifier (the one the tasks optimise against),
fmnist-classifier-eval (the separate judge) and digits-classifier (scores digits-ddpm samples)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .common import ProgressLog, infinite_batches, save_safetensors


def _fmnist(split: str):
    from ..data import fmnist_tensors

    return fmnist_tensors(split)


def _digits(split: str):
    from ..models.digits import digits_tensors

    return digits_tensors(split)


def _fmnist_net():
    from ..models.trained import FMNISTClassifier

    return FMNISTClassifier()


def _eval_net():
    from ..models.classifiers import FMNISTEvalClassifier

    return FMNISTEvalClassifier()


def _digits_net():
    from ..models.digits import DigitsClassifier

    return DigitsClassifier()


# name -> (architecture, data(split), shift augmentation in pixels)
CLASSIFIERS = {
    "fmnist-classifier": (_fmnist_net, _fmnist, 2),
    "fmnist-classifier-eval": (_eval_net, _fmnist, 0),
    "digits-classifier": (_digits_net, _digits, 1),
}


def classifier_spec(name: str):
    """(architecture, data, shift) of classifier `name`; ValueError naming the valid ones."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; valid: {', '.join(CLASSIFIERS)}")
    return CLASSIFIERS[name]


def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Translate each image by up to `pixels` in x and y, filling with background (-1)."""
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    out = torch.empty_like(x)
    offsets = torch.randint(0, 2 * pixels + 1, (x.shape[0], 2), generator=generator)
    h, w = x.shape[-2:]
    for k, (dy, dx) in enumerate(offsets.tolist()):
        out[k] = padded[k, :, dy : dy + h, dx : dx + w]
    return out


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of `model` (eval mode) on (x, y)."""
    model.eval()
    correct = sum(
        (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item() for i in range(0, len(x), batch)
    )
    return correct / len(x)


def train_classifier(
    out: Path,
    epochs: int = 4,
    batch: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    work: Path | None = None,
    name: str = "fmnist-classifier",
) -> dict:
    """Train classifier `name` with Adam + one-cycle for `epochs`; write weights to `out`; return test accuracy."""
    make, data, shift = classifier_spec(name)
    torch.manual_seed(seed)
    model = make()
    x, y = data("train")
    steps = epochs * (len(x) // batch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    batches = infinite_batches(x, y, batch, gen)
    log = ProgressLog(Path(work or out.parent) / f"log-{name}.jsonl")
    model.train()
    losses = []
    for step in tqdm(range(steps), desc=name, mininterval=30):
        xb, yb = next(batches)
        loss = F.cross_entropy(model(random_shift(xb, gen, shift)), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            log.write(step=step + 1, loss=sum(losses[-100:]) / 100)
    save_safetensors(model, out)
    xt, yt = data("test")
    acc = accuracy(model, xt, yt)
    final = sum(losses[-200:]) / len(losses[-200:])
    return dict(
        model=name,
        epochs=epochs,
        steps=steps,
        batch=batch,
        lr=lr,
        seed=seed,
        wall_s=log.wall(),
        final_loss=final,
        test_accuracy=acc,
    )
