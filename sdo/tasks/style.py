"""Style guidance (paper Sec. 5.1.2, Eq. 24): a Gram-matrix loss on classifier features to a reference image,
optimising the latent at an intermediate step (the paper's t = 600 analogue) or the initial latent x_N."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import estimators, objectives, samplers
from ..models.trained import ClassifierFeatures
from ..problem import Problem
from .common import (
    DEFAULT_ESTIMATORS,
    RESULTS,
    Stopwatch,
    estimate,
    image_grid,
    load_models,
    record,
    save_json,
    ssim,
    usable_estimators,
    write_table,
)
from .sampling import class_cond, latents, sample_from_latent
from .stats import bootstrap_interval, clopper_pearson, discordant, mcnemar_exact, paired_share_interval

VARIABLES = {"latent": "x_N", "intermediate": "x_t"}


@dataclass
class StyleConfig:
    """Task settings: Adam on x_N or on x_t at t ~ 600 (the paper: Adam, 150 steps, DDIM 50)."""

    n: int = 64  # samples per seed (classes cycle 0..9)
    steps: int = 20  # DDIM steps N; step i = 12 of 20 has t = 599 (the paper's t = 600)
    opt_steps: int = 20
    lr: float = 0.05
    t_intermediate: int = 600
    reference_class: int = 8  # a test-set Bag as the style image
    seeds: tuple[int, ...] = field(default=(0, 1, 2))

    def __post_init__(self):
        if self.n < 1 or self.steps < 2 or self.opt_steps < 0 or self.lr <= 0 or not self.seeds:
            raise ValueError("need n >= 1, steps >= 2, opt_steps >= 0, lr > 0 and at least one seed")
        self.seeds = tuple(self.seeds)


class ShiftedSolver:
    """The problem's solver with an offset d added to the output x_k of step k + 1, so d moves x_k."""

    def __init__(self, solver, k: int, offset: torch.Tensor):
        self._solver, self._k, self.offset = solver, k, offset

    def __getattr__(self, name):
        return getattr(self._solver, name)

    def step(self, i, x, m, history, noise=None):
        out, history = self._solver.step(i, x, m, history, noise)
        return (out + self.offset if i == self._k + 1 else out), history


def intermediate_index(solver, t: float) -> int:
    """The paper step index i whose timestep t_i is closest to t."""
    return min(range(1, solver.steps + 1), key=lambda i: abs(solver.timestep(i) - t))


def reference_image(cls: int) -> torch.Tensor:
    """The first Fashion-MNIST test image of class `cls` (1, 1, 32, 32)."""
    from ..data import fmnist_tensors

    x, y = fmnist_tensors("test")
    return x[(y == cls).nonzero()[0, 0]][None]


def optimise(
    model, objective, z, wrt: str, k: int | None, estimator: str, cfg: StyleConfig, cond=None
) -> dict:
    """Adam on the offset of x_N (wrt latent) or of x_k (wrt intermediate) with one estimator."""
    problem = Problem(
        model,
        samplers.get("ddim", steps=cfg.steps),
        objective,
        wrt=wrt,
        batch=len(z),
        latent=z,
        cond=cond,
        intermediate_step=k,
    )
    offset = torch.zeros_like(z, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=cfg.lr)
    if wrt == "intermediate":
        problem.solver = ShiftedSolver(problem.solver, k, offset.detach())
    est, losses, status = estimators.get(estimator), [], "ok"
    key = "latent" if wrt == "latent" else f"x_{k}"
    with Stopwatch() as clock:
        for _ in range(cfg.opt_steps):
            if wrt == "latent":
                problem.latent = (z + offset).detach()
            else:
                problem.solver.offset = offset.detach().clone()
            res, skipped = estimate(est, problem)
            if skipped:
                return dict(x=None, losses=[], wall_s=0.0, status=skipped)
            if not res.ok:
                status = res.status
                break
            offset.grad = res.grads[key]
            opt.step()
            losses.append(res.loss)
    if wrt == "intermediate":
        problem.solver.offset = offset.detach().clone()
    x = final_sample(problem, wrt, z, offset.detach())
    return dict(x=x, losses=losses, wall_s=clock.seconds, status=status)


@torch.no_grad()
def final_sample(problem, wrt: str, z, offset) -> torch.Tensor:
    """x_0 of the optimised problem (no graph), clamped."""
    if wrt == "latent":
        return sample_from_latent(problem.model, z + offset, problem.steps, cond=problem.cond).clamp(-1, 1)
    solver, x, h = (
        problem.solver,
        problem.solver.init_scale * problem.latent,
        problem.solver.initial_history(),
    )
    for i in range(problem.steps, 0, -1):
        x, h = solver.step(i, x, problem.model(solver.model_input(i, x), solver.timestep(i), problem.cond), h)
    return x.clamp(-1, 1)


def per_sample_loss(objective, x: torch.Tensor) -> np.ndarray:
    """The style loss of each image on its own (the objective averages over its batch)."""
    with torch.no_grad():
        return np.array([objective(x[k : k + 1]).item() for k in range(len(x))])


def run_seed(tm, objective, cfg: StyleConfig, names: dict, seed: int) -> dict:
    """Every (variable, method) on one seed's class-conditional samples: per-sample rows and images."""
    z = latents(tm.model, cfg.n, seed)
    labels = torch.arange(cfg.n) % 10
    cond = class_cond(tm.model, labels)
    x_plain = sample_from_latent(tm.model, z, cfg.steps, cond=cond).clamp(-1, 1)
    if cond is None:
        with torch.no_grad():
            labels = tm.judge(x_plain).argmax(1)
    base_loss = per_sample_loss(objective, x_plain)
    k = intermediate_index(samplers.get("ddim", steps=cfg.steps).build(tm.model), cfg.t_intermediate)
    rows, images, skipped = [], {"unguided": x_plain}, {}
    for wrt, methods in names.items():
        for name in tqdm(methods, desc=f"style {wrt} seed {seed}"):
            run = optimise(tm.model, objective, z, wrt, k if wrt == "intermediate" else None, name, cfg, cond)
            if run["status"] != "ok":
                skipped[f"{name}@{wrt}"] = run["status"]
                continue
            x = run["x"]
            with torch.no_grad():
                kept = (tm.judge(x).argmax(1) == labels).numpy()
            loss = per_sample_loss(objective, x)
            l2 = (x - x_plain).flatten(1).norm(dim=1).numpy()
            s = ssim(x.double(), x_plain.double()).numpy()
            for j in range(cfg.n):
                rows.append(
                    dict(seed=seed, sample=j, label=int(labels[j]), variable=VARIABLES[wrt], method=name)
                    | dict(style_ratio=loss[j] / base_loss[j], class_kept=bool(kept[j]), pixel_l2=l2[j])
                    | dict(ssim=s[j], s_per_sample=run["wall_s"] / cfg.n)
                )
            images[f"{name} @ {VARIABLES[wrt]}"] = x
    return dict(rows=rows, images=images, skipped=skipped, k=k)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per (variable, method): class preserved with its Clopper-Pearson interval, style-loss ratio
    (guided / unguided, per sample) with a bootstrap interval, per-seed values, distances."""
    rows = []
    for (variable, method), g in df.groupby(["variable", "method"], sort=False):
        k, n = int(g.class_kept.sum()), len(g)
        lo, hi = clopper_pearson(k, n)
        r, rlo, rhi = bootstrap_interval(g.style_ratio.to_numpy())
        rows.append(
            dict(variable=variable, method=method, n=n, class_kept_pct=100 * k / n)
            | dict(kept_ci_lo_pct=100 * lo, kept_ci_hi_pct=100 * hi)
            | dict(style_ratio=r, style_ratio_lo=rlo, style_ratio_hi=rhi)
            | dict(per_seed_style_ratio=" / ".join(f"{v:.3f}" for v in g.groupby("seed").style_ratio.mean()))
            | dict(
                pixel_l2=g.pixel_l2.mean(), ssim_to_unguided=g.ssim.mean(), s_per_sample=g.s_per_sample.mean()
            )
        )
    return pd.DataFrame(rows)


def paired_variables(df: pd.DataFrame) -> pd.DataFrame:
    """Per method: x_t vs x_N on the same samples; class kept (McNemar) and style ratio difference."""
    rows = []
    for method, g in df.groupby("method", sort=False):
        a = g[g.variable == VARIABLES["intermediate"]].set_index(["seed", "sample"]).sort_index()
        b = g[g.variable == VARIABLES["latent"]].set_index(["seed", "sample"]).sort_index()
        if a.empty or b.empty:
            continue
        lo, hi = paired_share_interval(a.class_kept.to_numpy(bool), b.class_kept.to_numpy(bool))
        d, dlo, dhi = bootstrap_interval(a.style_ratio.to_numpy() - b.style_ratio.to_numpy())
        only_t, only_n = discordant(a.class_kept.to_numpy(bool), b.class_kept.to_numpy(bool))
        rows.append(
            dict(method=method, n_pairs=len(a), kept_only_at_x_t=only_t, kept_only_at_x_N=only_n)
            | dict(mcnemar_p=mcnemar_exact(a.class_kept, b.class_kept), share_lo=lo, share_hi=hi)
            | dict(style_ratio_t_minus_N=d, diff_lo=dlo, diff_hi=dhi)
        )
    return pd.DataFrame(rows)


def run_style(
    cfg: StyleConfig | None = None, estimator_names=None, out: Path = RESULTS, tm=None
) -> pd.DataFrame:
    """Style guidance at x_N and x_t (t ~ 600) per method and seed; writes style.{csv,md,png,json},
    style-samples.csv and style-paired.{csv,md}."""
    cfg = cfg or StyleConfig()
    tm = tm or load_models()
    ref = reference_image(cfg.reference_class)
    objective = objectives.get("style", reference=ref, features=ClassifierFeatures(tm.attacked))
    names = {w: usable_estimators(estimator_names or DEFAULT_ESTIMATORS, w) for w in VARIABLES}
    seeds_out = [run_seed(tm, objective, cfg, names, seed) for seed in cfg.seeds]
    df = pd.DataFrame([r for s in seeds_out for r in s["rows"]])
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "style-samples.csv", index=False)
    write_table(summarise(df), "style", out)
    write_table(paired_variables(df), "style-paired", out)
    images = seeds_out[0]["images"]
    image_grid(
        [ref] + [v[:10] for v in images.values()],
        ["reference"] + list(images),
        out / "style.png",
        f"style guidance to a test-set image of class {cfg.reference_class}",
    )
    notes = record(
        cfg,
        seeds=list(cfg.seeds),
        model=tm.name,
        intermediate_step=seeds_out[0]["k"],
        skipped={s: o["skipped"] for s, o in zip(cfg.seeds, seeds_out)},
        class_kept="the judge (fmnist-classifier-eval) predicts the requested class on the guided sample; the "
        "style loss uses the attacked classifier's (fmnist-classifier) conv features",
    )
    save_json(notes, out / "style.json")
    return summarise(df)
