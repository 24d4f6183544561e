"""Model cards of digits-ddpm (with digits-classifier) and fmnist-classifier-eval."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .card import DATA, _grid, _train_info, _training_lines

DIGITS_DATA = "scikit-learn's 8x8 digits (`sklearn.datasets.load_digits`, 1,797 images, values 0..16 scaled to [-1, 1]); a seeded split: 1,500 training, 297 held-out"


@torch.no_grad()
def conditional_accuracy(model, classifier, n: int, steps: int, seed: int) -> dict:
    """Digits classifier on n class-conditional samples (classes cycling 0..9): accuracy vs the requested class."""
    from ..tasks.sampling import generate

    labels = torch.arange(n) % 10
    x = generate(model, n, steps, seed, batch=n, labels=labels)
    prob = classifier(x).softmax(1)
    return dict(
        x=x, accuracy=(prob.argmax(1) == labels).float().mean().item(), top=prob.amax(1).mean().item()
    )


def digits_fd(classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Frechet distance of two image sets in the digits classifier's 64-d penultimate features."""
    from ..tasks.fid import frechet_distance

    with torch.no_grad():
        return frechet_distance(
            classifier.penultimate(x).double().numpy(), classifier.penultimate(y).double().numpy()
        )


def call_cost(model) -> dict:
    """Seconds per network call (batch 1, float64) and for float64 BPTT through N = 1000 DDIM steps."""
    import sdo

    m = model.double()
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(200):
            m(x, torch.tensor(500.0, dtype=torch.float64))
    per_call = (time.perf_counter() - t0) / 200
    problem = sdo.Problem(m, sdo.samplers.get("ddim", steps=1000), lambda v: v.pow(2).sum(), dtype="float64")
    t0 = time.perf_counter()
    res = sdo.estimators.get("bptt")(problem)
    return dict(per_call=per_call, bptt_1000=time.perf_counter() - t0, status=res.status)


def training_curve(work: Path | None, classifier, out: Path, steps: int, seed: int) -> list[str]:
    """Loss (log.jsonl) and conditional accuracy of the EMA snapshots vs step, as digits-ddpm-curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..models.digits import digits_ddpm
    from .recipes import work_dir

    root = work_dir("digits-ddpm", work)
    if not (root / "log.jsonl").exists():
        return ["- training curve: the training log was not found (pass --work to the card command)"]
    log = [json.loads(line) for line in (root / "log.jsonl").read_text().splitlines()]
    snaps = sorted((root / "snapshots").glob("ema-*.safetensors"))
    acc = [
        (
            int(p.stem.split("-")[1]),
            conditional_accuracy(digits_ddpm(p, True), classifier, 500, steps, seed)["accuracy"],
        )
        for p in snaps
    ]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    a.plot([r["step"] for r in log], [r["loss"] for r in log])
    a.set(xlabel="step", ylabel="training loss (50-step mean)", yscale="log")
    b.plot([s for s, _ in acc], [v for _, v in acc], marker="o")
    b.set(xlabel="step (EMA snapshot)", ylabel="classifier accuracy on 500 cond. samples")
    fig.tight_layout()
    fig.savefig(out / "digits-ddpm-curve.png", dpi=110)
    plt.close(fig)
    return [
        "- conditional accuracy of the EMA snapshots (500 samples each): "
        + ", ".join(f"step {s}: {v:.3f}" for s, v in acc),
        "",
        "![training curve](digits-ddpm-curve.png)",
    ]


def digits_card(out: Path, samples: int, ddim_steps: int, seed: int, work: Path | None) -> str:
    from ..models.digits import digits_classifier, digits_ddpm, digits_tensors
    from ..tasks.sampling import generate

    clf = digits_classifier()
    model = digits_ddpm(conditional=True)
    params = sum(p.numel() for p in model.parameters())
    xt, yt = digits_tensors("test")
    xtr, _ = digits_tensors("train")
    with torch.no_grad():
        clf_acc = (clf(xt).argmax(1) == yt).float().mean().item()
    rows = {
        w: conditional_accuracy(digits_ddpm(conditional=True, guidance=w), clf, samples, ddim_steps, seed)
        for w in (1.0, 3.0)
    }
    uncond = generate(digits_ddpm(), samples, ddim_steps, seed, batch=samples)
    with torch.no_grad():
        top = clf(uncond).softmax(1).amax(1).mean().item()
    grid = torch.cat([rows[1.0]["x"][:50], uncond[:30]])
    _grid(grid, out / "digits-ddpm-samples.png")
    floor = digits_fd(
        clf, xtr[torch.randperm(len(xtr), generator=torch.Generator().manual_seed(seed))[: len(xt)]], xt
    )
    cost = call_cost(digits_ddpm())
    info, cinfo = _train_info(out, "digits-ddpm"), _train_info(out, "digits-classifier")
    lines = [
        "# digits-ddpm",
        "",
        f"A residual MLP denoiser (`DigitsNet` in sdo/models/digits.py, {params / 1e3:.0f}k parameters: 64 -> 256, "
        "4 residual blocks with LayerNorm/SiLU and the sinusoidal-time + class embedding added in each, 256 -> 64), "
        "epsilon prediction, linear DDPM schedule (beta 1e-4..0.02, 1000 steps), class-conditional with 20 % label "
        "dropout to a null class, so it samples unconditionally (the null class, one call) or conditionally with "
        'classifier-free guidance. Load with `sdo.models.get("digits-ddpm")` (unconditional) or '
        '`sdo.models.get("digits-ddpm", conditional=True, guidance=w)`. Built for gradient-accuracy studies that '
        "need float64 BPTT at N up to 1,000 on a trained model.",
        "",
        f"- data: {DIGITS_DATA}",
        "- training: Adam, linear warm-up 200 steps then cosine decay to 10 %, gradient clipping 1.0, EMA 0.999, CPU",
        *_training_lines(info),
        "",
        "## Evaluation",
        f"`python -m sdo.train card digits-ddpm --samples {samples} --ddim-steps {ddim_steps} --seed {seed}"
        f"{' --work ' + str(work) if work else ''}` (native DDIM eta=0, {ddim_steps} steps)",
        "",
        f"- digits-classifier accuracy on {samples} class-conditional samples (agrees with the requested class): "
        f"**{rows[1.0]['accuracy']:.3f}** at guidance 1 (no CFG), {rows[3.0]['accuracy']:.3f} at guidance 3; mean "
        f"top-class probability {rows[1.0]['top']:.3f} / {rows[3.0]['top']:.3f}",
        f"- unconditional samples: mean top-class probability {top:.3f}",
        f"- Frechet distance in digits-classifier features, {len(xt)} conditional samples (guidance 1) vs the "
        f"held-out images: {digits_fd(clf, rows[1.0]['x'][: len(xt)], xt):.2f}; {len(xt)} training images vs the "
        f"held-out images (the floor at this n): {floor:.2f}",
        f"- cost (float64, batch 1, one thread, shared machine): {1e3 * cost['per_call']:.2f} ms per network call; "
        f"BPTT through N = 1000 DDIM steps: {cost['bptt_1000']:.1f} s ({cost['status']})",
        "",
        "Samples: five rows conditional (classes 0..9 per row, guidance 1), three rows unconditional.",
        "",
        "![samples](digits-ddpm-samples.png)",
        "",
        *training_curve(work, clf, out, ddim_steps, seed),
        "",
        "## digits-classifier",
        "",
        "`DigitsClassifier` in sdo/models/digits.py: two 3x3 conv layers (32, 64, SiLU), 2x2 max pooling, a 64-d "
        "penultimate layer, dropout 0.2, 10 logits; shift augmentation of up to 1 pixel. It scores digits-ddpm's "
        "samples (above). Load with `sdo.models.digits.digits_classifier()`.",
        "",
        *_training_lines(cinfo),
        f"- held-out accuracy ({len(xt)} images): **{clf_acc:.4f}**",
        "",
    ]
    return "\n".join(lines)


def eval_classifier_card(out: Path) -> str:
    from ..data import fmnist_tensors
    from ..models.classifiers import fmnist_eval_classifier
    from ..models.trained import fmnist_classifier
    from .classifier import accuracy

    judge, attacked = fmnist_eval_classifier(), fmnist_classifier()
    x, y = fmnist_tensors("test")
    acc = accuracy(judge, x, y)
    with torch.no_grad():
        pj = torch.cat([judge(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
        pa = torch.cat([attacked(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    agree = (pj == pa).float().mean().item()
    info = _train_info(out, "fmnist-classifier-eval")
    params = sum(p.numel() for p in judge.parameters())
    lines = [
        "# fmnist-classifier-eval",
        "",
        f"An MLP (`FMNISTEvalClassifier` in sdo/models/classifiers.py, {params / 1e3:.0f}k parameters): 1024 -> 512 -> "
        "128 (GELU, dropout 0.2; the 128-d penultimate features) -> 10 logits. A different model family and seed "
        "from fmnist-classifier (a CNN). Load with `sdo.models.classifiers.fmnist_eval_classifier()`.",
        "",
        "**Role: the judge.** The tasks never optimise against it. It is the quality filter of the adversarial task "
        "(samples it does not recognise as their class are excluded), the feature space of the tasks' FID and "
        "perceptual distance, and the judge of 'class preserved' in style guidance and of FID drift in reward "
        "fine-tuning. The classifier the tasks optimise against (attack, style features, reward) is "
        "fmnist-classifier (fmnist-classifier.md).",
        "",
        f"- data: {DATA}; trained on the 60,000 training images, no augmentation",
        "- training: Adam with a one-cycle learning-rate schedule, CPU",
        *_training_lines(info),
        "",
        "## Evaluation",
        f"- test-set accuracy (10,000 images): **{acc:.4f}**",
        f"- agreement with fmnist-classifier on the test set: {agree:.4f}",
        "",
    ]
    return "\n".join(lines)


__all__ = ["digits_card", "eval_classifier_card"]
