"""The model card of fmnist-ddpm-v2: sample quality at classifier-free guidance 1 and 3 against its targets, the
size sweep it was chosen from, and the training curve (loss, and FID of the EMA snapshots)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .card import DATA, _grid, _train_info, _training_lines

NAME = "fmnist-ddpm-v2"
TARGETS = {"fid": 25.0, "top": 0.85, "accuracy": 0.85}  # FID <=, mean top-class probability >=, accuracy >=


@torch.no_grad()
def conditional_quality(model, n: int, steps: int, seed: int) -> dict:
    """n class-conditional samples (classes cycling 0..9) scored by both classifiers and FID in both spaces."""
    from ..data import fmnist_tensors
    from ..models.classifiers import fmnist_eval_classifier
    from ..models.trained import fmnist_classifier
    from ..tasks.fid import features, fid, frechet_distance
    from ..tasks.sampling import generate
    from ..tasks.stats import clopper_pearson

    labels = torch.arange(n) % 10
    x = generate(model, n, steps, seed, batch=250, labels=labels)
    test, _ = fmnist_tensors("test")
    out = {"x": x}
    for key, clf in (("attacked", fmnist_classifier()), ("judge", fmnist_eval_classifier())):
        prob = torch.cat([clf(x[i : i + 500]).softmax(1) for i in range(0, n, 500)])
        k = int((prob.argmax(1) == labels).sum())
        out[key] = dict(
            accuracy=k / n,
            accuracy_ci=clopper_pearson(k, n),
            top=prob.amax(1).mean().item(),
            top_sem=(prob.amax(1).std() / n**0.5).item(),
        )
        out[key]["fid"] = (
            fid(x, test) if key == "attacked" else frechet_distance(features(clf, x), features(clf, test))
        )
    return out


def real_floor(n: int, seed: int) -> dict:
    """FID of n real training images vs the test set in both feature spaces (the floor at this n)."""
    from ..data import fmnist_tensors
    from ..models.classifiers import fmnist_eval_classifier
    from ..tasks.fid import features, fid, frechet_distance

    train, _ = fmnist_tensors("train")
    test, _ = fmnist_tensors("test")
    real = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]]
    judge = fmnist_eval_classifier()
    return {
        "attacked": fid(real, test),
        "judge": frechet_distance(features(judge, real), features(judge, test)),
    }


def training_curve(out: Path, n: int, steps: int, seed: int, guidance: float = 3.0) -> list[str]:
    """Loss and FID (n samples, guidance 3) of every EMA snapshot, as fmnist-ddpm-v2-curve.png."""
    import matplotlib.pyplot as plt

    from ..data import fmnist_tensors
    from ..models.trained import fmnist_ddpm_v2
    from ..tasks.fid import fid
    from ..tasks.sampling import generate
    from .recipes import work_dir

    root = work_dir(NAME)
    log = [json.loads(line) for line in (root / "log.jsonl").read_text().splitlines()]
    test, _ = fmnist_tensors("test")
    curve = []
    for path in sorted((root / "snapshots").glob("ema-*.safetensors")):
        model = fmnist_ddpm_v2(path, guidance)
        x = generate(model, n, steps, seed, batch=250, labels=torch.arange(n) % 10)
        curve.append((int(path.stem.split("-")[1]), fid(x, test)))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot([r["step"] for r in log], [r["loss"] for r in log], color="#0072B2")
    a.set(xlabel="training step", ylabel="loss (50-step mean)", yscale="log")
    b.plot([s for s, _ in curve], [f for _, f in curve], marker="o", color="#D55E00")
    b.axhline(TARGETS["fid"], color="k", ls="--", lw=1, label=f"target {TARGETS['fid']:g}")
    b.set(
        xlabel="training step (EMA snapshot)",
        ylabel=f"FID ({n} samples, guidance {guidance:g})",
        yscale="log",
    )
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{NAME}-curve.png", dpi=110)
    plt.close(fig)
    points = ", ".join(f"step {s}: {f:.1f}" for s, f in curve)
    return [
        f"- FID of the EMA snapshots ({n} samples, guidance {guidance:g}, {steps} DDIM steps): {points}",
        "",
        f"![training curve]({NAME}-curve.png)",
    ]


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _quality_lines(q: dict, w: float, floor: dict) -> list[str]:
    a, j = q["attacked"], q["judge"]
    return [
        f"- guidance {w:g}: FID **{a['fid']:.2f}** in fmnist-classifier features (floor {floor['attacked']:.2f}), "
        f"{j['fid']:.2f} in fmnist-classifier-eval features (floor {floor['judge']:.2f}); mean top-class probability "
        f"{a['top']:.3f} ± {1.96 * a['top_sem']:.3f}; accuracy (fmnist-classifier agrees with the requested class) "
        f"{a['accuracy']:.3f} [{a['accuracy_ci'][0]:.3f}, {a['accuracy_ci'][1]:.3f}], judge {j['accuracy']:.3f}",
    ]


def sweep_lines(out: Path) -> list[str]:
    """The measured size sweep the architecture was chosen from (fmnist-ddpm-v2.sweep.json)."""
    path = out / f"{NAME}.sweep.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())
    table = ["| configuration | parameters | s / iteration (batch 64, 1 thread) |", "|---|---|---|"]
    table += [f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['s_per_iter']:.2f} |" for r in rows]
    return ["## Size sweep", "", rows[0].get("note", ""), "", *table, ""]


def v2_card(out: Path, samples: int, ddim_steps: int, seed: int, curve_samples: int = 500) -> str:
    from ..models.trained import FMNIST_COND_UNET, fmnist_ddpm_v2

    quality = {
        w: conditional_quality(fmnist_ddpm_v2(guidance=w), samples, ddim_steps, seed) for w in (1.0, 3.0)
    }
    floor = real_floor(samples, seed)
    _grid(quality[3.0]["x"][:80], out / f"{NAME}-samples.png")
    q3 = quality[3.0]["attacked"]
    params = sum(p.numel() for p in fmnist_ddpm_v2().parameters())
    cfg = FMNIST_COND_UNET
    lines = [
        f"# {NAME}",
        "",
        f"A class-conditional diffusers `UNet2DModel` ({params / 1e6:.2f}M parameters, `FMNIST_COND_UNET` in "
        f"sdo/models/trained.py: block_out_channels {cfg['block_out_channels']}, layers_per_block "
        f"{cfg['layers_per_block']}, attention at 8x8 and in the mid block, 11 class embeddings: 10 classes and "
        "the null class), 1 channel, 32x32, epsilon prediction, linear DDPM schedule (beta 1e-4..0.02, 1000 steps). "
        "The conditioning is a class vector (one-hot, or any mixture: differentiable, so wrt='cond' works); "
        "classifier-free guidance w evaluates the conditional and null branches in one batch. Load with "
        f'`sdo.models.get("{NAME}", guidance=w)` (default w = 3).',
        "",
        f"- data: {DATA}; the 60,000 training images with their labels",
        "- training: Adam, linear warm-up then cosine decay to 10 %, gradient clipping 1.0, min-SNR-5 loss weighting, "
        "labels dropped to the null class with probability 0.1, EMA with warm-up, CPU, resumable "
        "(`python -m sdo.train ddpm --model fmnist-ddpm-v2 --resume`)",
        *_training_lines(_train_info(out, NAME)),
        "",
        "## Evaluation",
        f"`python -m sdo.train card {NAME} --samples {samples} --ddim-steps {ddim_steps} --seed {seed}` ({samples} "
        f"class-conditional samples, 100 per class, native DDIM eta=0, {ddim_steps} steps). fmnist-classifier scores "
        "the targets (as for fmnist-ddpm); fmnist-classifier-eval (the judge) is reported beside it.",
        "",
        *_quality_lines(quality[1.0], 1.0, floor),
        *_quality_lines(quality[3.0], 3.0, floor),
        "",
        f"Targets at guidance 3: FID <= {TARGETS['fid']:g}: {_verdict(q3['fid'] <= TARGETS['fid'])}; mean top-class "
        f"probability >= {TARGETS['top']}: {_verdict(q3['top'] >= TARGETS['top'])}; class-conditional accuracy >= "
        f"{TARGETS['accuracy']}: {_verdict(q3['accuracy'] >= TARGETS['accuracy'])} (point estimates; intervals above).",
        "",
        "Samples (guidance 3, classes 0..9 along each row):",
        "",
        f"![samples]({NAME}-samples.png)",
        "",
        "## Training curve",
        "",
        *training_curve(out, curve_samples, ddim_steps, seed),
        "",
        *sweep_lines(out),
    ]
    return "\n".join(lines)
