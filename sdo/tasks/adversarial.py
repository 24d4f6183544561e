"""Adversarial initial latent (paper Sec. 5.1.4, Eq. 26, Table 5): min over ||delta||_inf <= tau of a margin of
the attacked classifier through the sampler, delta clipped to [-tau, tau] after every step, on class-conditional
samples from every class. The same samples for every method; exclusions decided once, for all methods alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import estimators, objectives, samplers
from ..problem import Problem
from .common import (
    COUPLED,
    DEFAULT_ESTIMATORS,
    PERCEPTUAL_NOTE,
    RESULTS,
    Stopwatch,
    estimate,
    image_grid,
    load_models,
    perceptual_distance,
    record,
    save_json,
    ssim,
    usable_estimators,
    write_table,
)
from .sampling import class_cond, coupled_sample_from_latent, latents, sample_from_latent
from .stats import bootstrap_interval, clopper_pearson, discordant, mcnemar_exact, paired_share_interval

UPDATES = ("gd", "sign")
SAMPLE_BATCH = 250  # samples per no-grad sampling batch
EXCLUSION_RULE = (
    "a candidate is excluded, for every method alike, when the attacked classifier (fmnist-classifier) "
    "already misclassifies its clean sample (argmax != requested class), or when the separate judge "
    "(fmnist-classifier-eval) gives the requested class probability < {p} on it (a sample that does not "
    "look like its class); the rule is applied to the clean DDIM sample and, when the DOODL analogue "
    "(reversible) runs, also to its coupled sampler's clean sample"
)


@dataclass
class AdversarialConfig:
    """Task settings: the paper's 30 sampling and 30 optimisation steps, GD lr 0.1, tau 0.1."""

    n: int = 200  # kept samples per seed (classes cycle 0..9 over the candidates)
    steps: int = 30  # DDIM steps N
    opt_steps: int = 30
    tau: float = 0.1
    lr: float | None = None  # gd: 0.1 (the paper); sign: tau / 10 per step
    update: str = "gd"  # gd: delta -= lr g (the paper); sign: delta -= lr sign(g) (no magnitude)
    kappa: float = 1.0  # margin floor: a misclassified sample stops being pushed
    judge_min_prob: float = 0.5
    seeds: tuple[int, ...] = field(default=(0, 1, 2))
    pool_factor: float = 2.0  # candidates drawn per seed = pool_factor * n
    batch: int = 50  # samples per optimisation problem
    fid_reference: int = 2000  # test images for the FID change (0: skip)

    def __post_init__(self):
        if self.update not in UPDATES:
            raise ValueError(f"unknown update {self.update!r}; valid: {', '.join(UPDATES)}")
        if self.lr is None:
            self.lr = 0.1 if self.update == "gd" else self.tau / 10
        if self.tau <= 0 or self.n < 1 or self.steps < 1 or self.opt_steps < 0 or self.batch < 1:
            raise ValueError("need tau > 0, n >= 1, steps >= 1, opt_steps >= 0, batch >= 1")
        if self.pool_factor < 1 or not self.seeds:
            raise ValueError("need pool_factor >= 1 and at least one seed")
        self.seeds = tuple(self.seeds)


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


def clean_samples(model, z, cond, steps: int, coupled: bool, batch: int) -> torch.Tensor:
    """Clamped x_0 of latents z (in batches) from plain DDIM, or from the coupled sampler if `coupled`."""
    out = []
    for i in range(0, len(z), batch):
        c = None if cond is None else cond[i : i + batch]
        x = (
            coupled_sample_from_latent(model, z[i : i + batch], steps, c)
            if coupled
            else sample_from_latent(model, z[i : i + batch], steps, cond=c)
        )
        out.append(x.clamp(-1, 1))
    return torch.cat(out)


@torch.no_grad()
def exclusions(tm, x: torch.Tensor, labels: torch.Tensor, judge_min_prob: float) -> dict:
    """Per-sample exclusion flags: misclassified by the attacked classifier; rejected by the judge."""
    wrong = tm.attacked(x).argmax(1) != labels
    judged = tm.judge(x).softmax(1).gather(1, labels[:, None])[:, 0]
    return dict(misclassified=wrong, rejected=judged < judge_min_prob)


def candidates(tm, cfg: AdversarialConfig, seed: int, coupled: bool) -> dict:
    """Latents, classes and clean samples for one seed, with the exclusion decided once for all methods."""
    pool = int(np.ceil(cfg.pool_factor * cfg.n))
    z = latents(tm.model, pool, seed)
    labels = torch.arange(pool) % 10
    cond = class_cond(tm.model, labels)
    x = clean_samples(tm.model, z, cond, cfg.steps, False, SAMPLE_BATCH)
    if cond is None:  # unconditional model: the class is what the attacked classifier says
        with torch.no_grad():
            labels = tm.attacked(x).argmax(1)
    flags = exclusions(tm, x, labels, cfg.judge_min_prob)
    keep = ~(flags["misclassified"] | flags["rejected"])
    counts = dict(
        candidates=pool,
        misclassified=int(flags["misclassified"].sum()),
        rejected_by_judge=int(flags["rejected"].sum()),
    )
    x_coupled = None
    if coupled:
        x_coupled = clean_samples(tm.model, z, cond, cfg.steps, True, SAMPLE_BATCH)
        more = exclusions(tm, x_coupled, labels, cfg.judge_min_prob)
        bad = more["misclassified"] | more["rejected"]
        counts["excluded_only_by_the_coupled_sample"] = int((bad & keep).sum())
        keep = keep & ~bad
    counts["excluded"] = int((~keep).sum())
    idx = keep.nonzero()[:, 0][: cfg.n]
    if len(idx) < cfg.n:
        raise ValueError(
            f"seed {seed}: only {len(idx)} of {pool} candidates pass the exclusions; raise pool_factor"
        )
    pick = lambda t: None if t is None else t[idx]  # noqa: E731
    return dict(
        z=z[idx], labels=labels[idx], cond=pick(cond), x=x[idx], x_coupled=pick(x_coupled), counts=counts
    )


def attack(model, classifier, z, labels, estimator: str, cfg: AdversarialConfig, cond=None) -> dict:
    """Optimise delta with one estimator, batch by batch; delta is clipped to [-tau, tau] after every step."""
    deltas, losses, status, wall = [], [], "ok", 0.0
    for i in range(0, len(z), cfg.batch):
        c = None if cond is None else cond[i : i + cfg.batch]
        run = attack_batch(
            model, classifier, z[i : i + cfg.batch], labels[i : i + cfg.batch], estimator, cfg, c
        )
        if run["status"] != "ok":
            return dict(delta=None, losses=[], wall_s=0.0, status=run["status"])
        deltas.append(run["delta"])
        losses.append(run["losses"])
        wall += run["wall_s"]
    return dict(delta=torch.cat(deltas), losses=np.sum(losses, 0).tolist(), wall_s=wall, status=status)


def attack_batch(model, classifier, z, labels, estimator: str, cfg: AdversarialConfig, cond=None) -> dict:
    """One batch: opt_steps of delta <- clip(delta - lr * g) (or lr * sign(g)); per-step losses."""
    objective = margin_objective(classifier, labels, cfg.kappa)
    problem = Problem(
        model,
        samplers.get("ddim", steps=cfg.steps),
        objective,
        wrt="latent",
        batch=len(z),
        latent=z,
        cond=cond,
    )
    est = estimators.get(estimator)
    delta, losses = torch.zeros_like(z), []
    bound = linf_bound(cfg.tau, z.dtype)
    with Stopwatch() as clock:
        for _ in range(cfg.opt_steps):
            problem.latent = (z + delta).detach()
            res, skipped = estimate(est, problem)
            if skipped:
                return dict(delta=delta, losses=[], wall_s=0.0, status=skipped)
            if not res.ok:
                return dict(delta=delta, losses=losses, wall_s=0.0, status=res.status)
            g = res.grads["latent"]
            delta = (delta - cfg.lr * (g.sign() if cfg.update == "sign" else g)).clamp(-bound, bound)
            losses.append(res.loss)
    return dict(delta=delta, losses=losses, wall_s=clock.seconds, status="ok")


def per_sample(tm, cand: dict, x_adv: torch.Tensor, clean: torch.Tensor, delta: torch.Tensor) -> dict:
    """Per-sample success (attacked classifier flipped), pixel L2, SSIM, perceptual distance, max |delta|."""
    with torch.no_grad():
        flipped = tm.attacked(x_adv).argmax(1) != cand["labels"]
    return dict(
        success=flipped.numpy(),
        pixel_l2=(x_adv - clean).flatten(1).norm(dim=1).numpy(),
        ssim=ssim(x_adv.double(), clean.double()).numpy(),
        perceptual=perceptual_distance(tm.judge, x_adv, clean).numpy(),
        max_abs_delta=delta.flatten(1).abs().amax(1).numpy(),
    )


def run_seed(tm, cfg: AdversarialConfig, names: list[str], seed: int) -> dict:
    """All methods on one seed's samples: per-sample rows, adversarial images, loss curves, skipped methods."""
    cand = candidates(tm, cfg, seed, coupled=any(n in COUPLED for n in names))
    rows, images, curves, skipped = [], {"clean": cand["x"]}, {}, {}
    for name in tqdm(names, desc=f"adversarial {cfg.update} seed {seed}"):
        run = attack(tm.model, tm.attacked, cand["z"], cand["labels"], name, cfg, cand["cond"])
        if run["status"] != "ok":
            skipped[name] = run["status"]
            continue
        coupled = name in COUPLED
        x_adv = clean_samples(
            tm.model, cand["z"] + run["delta"], cand["cond"], cfg.steps, coupled, SAMPLE_BATCH
        )
        clean = cand["x_coupled"] if coupled else cand["x"]
        metrics = per_sample(tm, cand, x_adv, clean, run["delta"])
        per = run["wall_s"] / len(cand["z"])
        for k in range(len(cand["z"])):
            rows.append(
                dict(seed=seed, sample=k, label=int(cand["labels"][k]), method=name, s_per_sample=per)
                | {m: v[k].item() for m, v in metrics.items()}
            )
        images[name] = x_adv
        curves[name] = run["losses"]
    return dict(rows=rows, images=images, curves=curves, skipped=skipped, counts=cand["counts"], clean=cand)


def summarise(df: pd.DataFrame, cfg: AdversarialConfig, fid: dict) -> pd.DataFrame:
    """One row per method: success with its Clopper-Pearson interval (pooled over seeds), per-seed rates,
    and bootstrap intervals of the distance means."""
    rows = []
    for method, g in df.groupby("method", sort=False):
        k, n = int(g.success.sum()), len(g)
        lo, hi = clopper_pearson(k, n)
        row = dict(method=method, update=cfg.update, n=n, successes=k, success_pct=100 * k / n)
        row |= dict(ci_lo_pct=100 * lo, ci_hi_pct=100 * hi)
        row["per_seed_pct"] = " / ".join(f"{100 * s.success.mean():.1f}" for _, s in g.groupby("seed"))
        for metric in ("pixel_l2", "ssim", "perceptual"):
            m, mlo, mhi = bootstrap_interval(g[metric].to_numpy())
            row |= {metric: m, f"{metric}_lo": mlo, f"{metric}_hi": mhi}
        row["fid_change"], row["fid_change_lo"], row["fid_change_hi"] = fid.get(method, (np.nan,) * 3)
        row |= dict(max_abs_delta=g.max_abs_delta.max(), s_per_sample=g.s_per_sample.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def paired(
    df: pd.DataFrame, cfg: AdversarialConfig, reference: str = "sdo", fid: dict | None = None
) -> pd.DataFrame:
    """reference vs every other method on the same samples: discordant counts, exact McNemar p, the interval
    of reference's share of discordant pairs (> 0.5: reference succeeds more), perceptual difference."""
    if reference not in set(df.method):
        return pd.DataFrame()
    key = ["seed", "sample"]
    ref = df[df.method == reference].set_index(key).sort_index()
    rows = []
    for method, g in df[df.method != reference].groupby("method", sort=False):
        other = g.set_index(key).sort_index()
        a, b = ref.success.to_numpy(bool), other.success.to_numpy(bool)
        wins, losses = discordant(a, b)
        lo, hi = paired_share_interval(a, b)
        diff = other.perceptual.to_numpy() - ref.perceptual.to_numpy()
        m, dlo, dhi = bootstrap_interval(diff)
        rows.append(
            dict(
                update=cfg.update,
                comparison=f"{reference} vs {method}",
                n_pairs=len(a),
                only_reference_succeeds=wins,
                only_other_succeeds=losses,
                mcnemar_p=mcnemar_exact(a, b),
                share_lo=lo,
                share_hi=hi,
                perceptual_other_minus_ref=m,
                perceptual_diff_lo=dlo,
                perceptual_diff_hi=dhi,
            )
            | dict(
                zip(
                    ("fid_change_other_minus_ref", "fid_diff_lo", "fid_diff_hi"),
                    (fid or {}).get(f"{method} - {reference}", (np.nan,) * 3),
                )
            )
        )
    return pd.DataFrame(rows)


def fid_changes(tm, seeds_out: list[dict], cfg: AdversarialConfig) -> dict:
    """FID(adv) - FID(clean) in the judge's features vs test images, paired bootstrap over samples."""
    if not cfg.fid_reference:
        return {}
    from ..data import fmnist_tensors
    from .fid import features, fid_change_interval

    ref = features(tm.judge, fmnist_tensors("test")[0][: cfg.fid_reference])
    clean = features(tm.judge, torch.cat([s["images"]["clean"] for s in seeds_out]))
    methods = [m for m in seeds_out[0]["images"] if m != "clean"]
    adv = {m: features(tm.judge, torch.cat([s["images"][m] for s in seeds_out])) for m in methods}
    return fid_change_interval(ref, clean, adv)


def run_adversarial(
    cfg: AdversarialConfig | None = None, estimator_names=None, out: Path = RESULTS, tm=None
) -> pd.DataFrame:
    """The Table 5 analogue; writes adversarial-<update>.{csv,md,png,json}, -samples.csv and -paired.{csv,md}."""
    cfg = cfg or AdversarialConfig()
    tm = tm or load_models()
    names = usable_estimators(estimator_names or DEFAULT_ESTIMATORS, "latent")
    seeds_out = [run_seed(tm, cfg, names, seed) for seed in cfg.seeds]
    df = pd.DataFrame([r for s in seeds_out for r in s["rows"]])
    tag = f"adversarial-{cfg.update}"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{tag}-samples.csv", index=False)
    fid = fid_changes(tm, seeds_out, cfg)
    table = summarise(df, cfg, fid)
    write_table(table, tag, out)
    write_table(paired(df, cfg, fid=fid), f"{tag}-paired", out)
    first = seeds_out[0]["images"]
    image_grid(
        [first["clean"][:10]] + [first[m][:10] for m in first if m != "clean"],
        ["clean"] + [m for m in first if m != "clean"],
        out / f"{tag}.png",
        f"adversarial latent ({cfg.update}), tau={cfg.tau}, {cfg.opt_steps} steps, seed {cfg.seeds[0]}",
    )
    notes = record(
        cfg,
        seeds=list(cfg.seeds),
        model=tm.name,
        exclusion_rule=EXCLUSION_RULE.format(p=cfg.judge_min_prob),
        exclusion_counts={s: o["counts"] for s, o in zip(cfg.seeds, seeds_out)},
        skipped={s: o["skipped"] for s, o in zip(cfg.seeds, seeds_out)},
        losses={s: o["curves"] for s, o in zip(cfg.seeds, seeds_out)},
        perceptual=PERCEPTUAL_NOTE,
        fid=f"Frechet distance in the judge's penultimate features vs {cfg.fid_reference} test images; the change "
        "FID(adversarial) - FID(clean) on the same samples with a paired bootstrap interval (200 draws)",
    )
    save_json(notes, out / f"{tag}.json")
    return table
