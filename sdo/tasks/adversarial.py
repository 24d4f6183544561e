"""Adversarial initial latent (paper Sec. 5.1.4, Eq. 26, Table 5): max_{||delta||_inf <= tau} of a classifier
margin loss through the sampler, clipping delta after every step; estimators compared at equal steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from .. import estimators, objectives, samplers
from ..problem import Problem
from .common import (
    DEFAULT_ESTIMATORS,
    RESULTS,
    Stopwatch,
    estimate,
    image_grid,
    lpips_distance,
    lpips_unavailable_reason,
    save_json,
    ssim,
    trained_models,
    usable_estimators,
    write_table,
)
from .sampling import generate, latents, sample_from_latent

UPDATES = ("gd", "sign")


@dataclass
class AdversarialConfig:
    """Task settings (defaults: the CPU-sized `make tasks` run)."""

    n: int = 16  # samples the classifier gets right (top-class probability >= confidence)
    steps: int = 10  # DDIM steps N
    opt_steps: int = 20  # optimisation steps per estimator (equal for all)
    tau: float = 0.1  # L-inf budget on delta (the paper's clip range)
    lr: float | None = None  # gd: 0.1 (the paper's gradient descent); sign: tau / 5 per step
    update: str = "gd"  # gd: delta -= lr * g (paper); sign: delta -= lr * sign(g) (PGD)
    kappa: float = 1.0  # margin: stop pushing a sample once it is misclassified by kappa logits
    confidence: float = 0.8
    seed: int = 0
    fid_reference: int = 2000  # test-set images for FID (0: skip FID)

    def __post_init__(self):
        if self.update not in UPDATES:
            raise ValueError(f"unknown update {self.update!r}; valid: {', '.join(UPDATES)}")
        if self.lr is None:
            self.lr = 0.1 if self.update == "gd" else self.tau / 5
        if self.tau <= 0 or self.n < 1 or self.steps < 1 or self.opt_steps < 0:
            raise ValueError("need tau > 0, n >= 1, steps >= 1, opt_steps >= 0")


def margin_objective(classifier, labels: torch.Tensor, kappa: float):
    """J = sum_b max(z_y - max_{j != y} z_j, -kappa) on clamped images: lower means the classifier errs."""

    def fn(x):
        logits = classifier(x.clamp(-1, 1))
        true = logits.gather(1, labels[:, None])[:, 0]
        other = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
        return torch.clamp(true - other.amax(1), min=-kappa).sum()

    return objectives.get("callable", fn=fn)


def linf_bound(tau: float, dtype: torch.dtype) -> float:
    """The largest value of `dtype` that is <= tau (a float32 clamp to 0.05 would give 0.0500000007 > tau)."""
    b = torch.tensor(tau, dtype=dtype)
    if b.item() > tau:
        b = torch.nextafter(b, torch.zeros_like(b))
    return b.item()


def pick_correct(
    model, classifier, cfg: AdversarialConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, clean x_0, labels) for n samples the classifier labels with probability >= confidence."""
    pool = 8 * cfg.n
    z = latents(model, pool, cfg.seed)
    x = generate(model, pool, cfg.steps, cfg.seed, batch=pool)
    with torch.no_grad():
        prob = classifier(x).softmax(1)
    keep = (prob.amax(1) >= cfg.confidence).nonzero()[:, 0][: cfg.n]
    if len(keep) < cfg.n:
        raise ValueError(f"only {len(keep)} of {pool} samples reach confidence {cfg.confidence}; lower n")
    return z[keep], x[keep], prob[keep].argmax(1)


def attack(model, classifier, z, labels, estimator: str, cfg: AdversarialConfig) -> dict:
    """Optimise delta with one estimator; returns delta, per-step losses, wall time and status."""
    objective = margin_objective(classifier, labels, cfg.kappa)
    problem = Problem(
        model, samplers.get("ddim", steps=cfg.steps), objective, wrt="latent", batch=len(z), latent=z
    )
    est = estimators.get(estimator)
    delta, losses, status = torch.zeros_like(z), [], "ok"
    bound = linf_bound(cfg.tau, z.dtype)
    with Stopwatch() as clock:
        for _ in range(cfg.opt_steps):
            problem.latent = (z + delta).detach()
            res, skipped = estimate(est, problem)
            if skipped:
                return dict(delta=delta, losses=[], wall_s=0.0, status=skipped)
            if not res.ok:
                status = res.status
                break
            g = res.grads["latent"]
            delta = delta - cfg.lr * (g.sign() if cfg.update == "sign" else g)
            delta = delta.clamp(-bound, bound)
            losses.append(res.loss)
    return dict(delta=delta, losses=losses, wall_s=clock.seconds, status=status)


def evaluate(model, classifier, z, delta, x_clean, labels, cfg: AdversarialConfig, reference) -> dict:
    """Success rate, pixel L2, SSIM, FID change and LPIPS of the adversarial samples."""
    x_adv = sample_from_latent(model, z + delta, cfg.steps).clamp(-1, 1)
    with torch.no_grad():
        pred = classifier(x_adv).argmax(1)
    row = dict(
        success_pct=100.0 * (pred != labels).float().mean().item(),
        pixel_l2=(x_adv - x_clean).flatten(1).norm(dim=1).mean().item(),
        ssim=ssim(x_adv.double(), x_clean.double()).mean().item(),
        max_abs_delta=delta.abs().max().item(),
    )
    if reference is not None:
        from .fid import fid

        row["fid_change"] = fid(x_adv, reference) - fid(x_clean, reference)
    reason = lpips_unavailable_reason()
    row["lpips"] = float("nan") if reason else lpips_distance(x_adv, x_clean).mean().item()
    return dict(row=row, x_adv=x_adv)


def run_adversarial(
    cfg: AdversarialConfig | None = None, estimator_names=None, out: Path = RESULTS
) -> pd.DataFrame:
    """The Table 5 analogue on fmnist-ddpm + fmnist-classifier; writes adversarial.{csv,md,png,json}."""
    cfg = cfg or AdversarialConfig()
    model, classifier = trained_models()
    names = usable_estimators(estimator_names or DEFAULT_ESTIMATORS, "latent")
    z, x_clean, labels = pick_correct(model, classifier, cfg)
    reference = None
    if cfg.fid_reference:
        from ..data import fmnist_tensors

        reference = fmnist_tensors("test")[0][: cfg.fid_reference]
    rows, grids, curves, skipped = [], [x_clean[:8]], {}, {}
    for name in tqdm(names, desc="adversarial"):
        run = attack(model, classifier, z, labels, name, cfg)
        if run["status"].startswith("unsupported"):
            skipped[name] = run["status"]
            continue
        ev = evaluate(model, classifier, z, run["delta"], x_clean, labels, cfg, reference)
        rows.append(
            dict(estimator=name, update=cfg.update, status=run["status"], **ev["row"], wall_s=run["wall_s"])
        )
        grids += [ev["x_adv"][:8], (5 * (ev["x_adv"] - x_clean)[:8]).clamp(-1, 1)]
        curves[name] = run["losses"]
    df = pd.DataFrame(rows)
    reason = lpips_unavailable_reason()
    tag = f"adversarial-{cfg.update}"
    write_table(df, tag, out)
    labels_rows = ["clean"] + [s for n in df.estimator for s in (f"{n} adv", f"{n} 5x diff")]
    image_grid(
        grids, labels_rows, out / f"{tag}.png", f"adversarial latent, tau={cfg.tau}, {cfg.opt_steps} steps"
    )
    notes = dict(
        config=vars(cfg),
        n=len(z),
        lpips_empty_because=reason,
        losses=curves,
        fid="torch-fidelity FID in fmnist-classifier penultimate features vs the first "
        f"{cfg.fid_reference} test images, on only n={len(z)} samples: a change, not an absolute FID",
    )
    save_json(notes, out / f"{tag}.json")
    return df
