"""Style guidance (paper Sec. 5.1.2, Eq. 24): a Gram-matrix loss on classifier features to a reference image,
optimising the latent at an intermediate step (the paper's t = 600 analogue) or the initial latent x_N."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import estimators, objectives, samplers
from ..models.trained import ClassifierFeatures
from ..problem import Problem
from .chunks import ChunkRunner, model_settings, settings_of, table_note, tensor_digest
from .common import (
    COUPLED,
    DEFAULT_ESTIMATORS,
    REPLICAS,
    RESULTS,
    Stopwatch,
    estimate,
    image_grid,
    load_models,
    record,
    replica_agreement,
    replica_sentence,
    save_json,
    ssim,
    usable_estimators,
    write_table,
)
from .sampling import class_cond, coupled_sample_from_latent, latents, sample_from_latent
from .stats import bootstrap_interval, clopper_pearson, mcnemar_columns

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
    # samples optimised at once; memory only (not a chunk setting): every sample's optimisation is its own, and
    # each group's gradient is rescaled to the whole batch's mean. bptt keeps every step's activations: at 64
    # samples, 20 steps and guidance it needs more than 15 GB
    micro_batch: int = 16

    def __post_init__(self):
        if self.n < 1 or self.steps < 2 or self.opt_steps < 0 or self.lr <= 0 or not self.seeds:
            raise ValueError("need n >= 1, steps >= 2, opt_steps >= 0, lr > 0 and at least one seed")
        if self.micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1; got {self.micro_batch}")
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
    """Adam on the offset of x_N (wrt latent) or of x_k (wrt intermediate) with one estimator, cfg.micro_batch
    samples at a time; the result is that of the whole batch at once (per-step losses: the batch mean)."""
    parts = []
    for a in range(0, len(z), cfg.micro_batch):
        b = min(a + cfg.micro_batch, len(z))
        part_cond = None if cond is None else cond[a:b]
        part = optimise_group(model, objective, z[a:b], wrt, k, estimator, cfg, part_cond, (b - a) / len(z))
        if part["x"] is None:
            return part
        parts.append(part)
    steps = min(len(p["losses"]) for p in parts)
    return dict(
        x=torch.cat([p["x"] for p in parts]),
        losses=[sum(p["losses"][i] * len(p["x"]) for p in parts) / len(z) for i in range(steps)],
        wall_s=sum(p["wall_s"] for p in parts),
        status=next((p["status"] for p in parts if p["status"] != "ok"), "ok"),
    )


def optimise_group(
    model, objective, z, wrt: str, k: int | None, estimator: str, cfg: StyleConfig, cond, share: float
) -> dict:
    """Adam on one group's offsets; `share` (group size / batch size) rescales the group's mean-loss gradient to
    the whole batch's mean, so Adam sees the same gradients as with the batch at once."""
    problem = Problem(
        model,
        samplers.get("ddim", steps=cfg.steps),
        objective,
        wrt=wrt,
        batch=len(z),
        latent=z,
        cond=cond,
        intermediate_step=k,
        device=z.device,
    )
    offset = torch.zeros_like(z, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=cfg.lr)
    if wrt == "intermediate":
        problem.solver = ShiftedSolver(problem.solver, k, offset.detach())
    est, losses, status = estimators.get(estimator), [], "ok"
    key = "latent" if wrt == "latent" else f"x_{k}"
    with Stopwatch(z.device) as clock:
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
            offset.grad = res.grads[key] * share
            opt.step()
            losses.append(res.loss)
    if wrt == "intermediate":
        problem.solver.offset = offset.detach().clone()
    x = final_sample(problem, wrt, z, offset.detach(), coupled=estimator in COUPLED)
    return dict(x=x, losses=losses, wall_s=clock.seconds, status=status)


@torch.no_grad()
def final_sample(problem, wrt: str, z, offset, coupled: bool = False) -> torch.Tensor:
    """x_0 of the optimised problem (no graph), clamped; with `coupled`, from the coupled (EDICT) sampler that
    the method differentiates (latent only)."""
    if coupled and wrt != "latent":
        raise ValueError(f"the coupled sampler scores latent guidance only; got wrt={wrt!r}")
    if wrt == "latent":
        sample = coupled_sample_from_latent if coupled else sample_from_latent
        return sample(problem.model, z + offset, problem.steps, cond=problem.cond).clamp(-1, 1)
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


STYLE_FIELDS = ("n", "steps", "opt_steps", "lr", "t_intermediate", "reference_class")


def seed_samples(tm, objective, cfg: StyleConfig, seed: int) -> dict:
    """One seed's latents, classes, unguided samples and their style losses (recomputed, cheap)."""
    z = latents(tm.model, cfg.n, seed)
    labels = (torch.arange(cfg.n) % 10).to(z.device)
    cond = class_cond(tm.model, labels)
    x_plain = sample_from_latent(tm.model, z, cfg.steps, cond=cond).clamp(-1, 1)
    if cond is None:
        with torch.no_grad():
            labels = tm.judge(x_plain).argmax(1)
    return dict(z=z, labels=labels, cond=cond, x=x_plain, loss=per_sample_loss(objective, x_plain))


def coupled_reference(tm, objective, cfg: StyleConfig, base: dict) -> dict:
    """The unguided samples of the coupled (EDICT) sampler from the same latents, and their style losses: the
    reference of a method that differentiates, and is scored on, that sampler."""
    x = coupled_sample_from_latent(tm.model, base["z"], cfg.steps, cond=base["cond"]).clamp(-1, 1)
    return dict(x_coupled=x, loss_coupled=per_sample_loss(objective, x))


def reference(base: dict, name: str) -> tuple[torch.Tensor, np.ndarray]:
    """The unguided samples and style losses that method `name`'s result is measured against."""
    return (base["x_coupled"], base["loss_coupled"]) if name in COUPLED else (base["x"], base["loss"])


def style_chunk(tm, objective, cfg: StyleConfig, base: dict, wrt: str, k: int, name: str) -> dict:
    """One chunk: one method guiding one seed's samples at x_N or x_k, with per-sample results."""
    run = optimise(
        tm.model, objective, base["z"], wrt, k if wrt == "intermediate" else None, name, cfg, base["cond"]
    )
    if run["status"] != "ok":
        return dict(status=run["status"])
    x = run["x"]
    x_ref, loss_ref = reference(base, name)
    with torch.no_grad():
        kept = tm.judge(x).argmax(1) == base["labels"]
    return dict(
        status="ok",
        x=x,
        losses=run["losses"],
        wall_s=run["wall_s"],
        style_ratio=torch.from_numpy(per_sample_loss(objective, x) / loss_ref),
        class_kept=kept,
        pixel_l2=(x - x_ref).flatten(1).norm(dim=1),
        ssim=ssim(x.double(), x_ref.double()),
    )


def style_key(seed: int, wrt: str, name: str) -> str:
    """The chunk of one method at one variable on one seed."""
    return f"style/seed{seed}/{VARIABLES[wrt]}/{name}"


def planned_seeds(cfg: StyleConfig, method: str, methods) -> tuple[int, ...]:
    """The seeds planned for `method` among `methods`: all, or the first for a replica whose original runs too."""
    return cfg.seeds[:1] if REPLICAS.get(method) in methods else cfg.seeds


def run_seed(
    tm, objective, cfg: StyleConfig, names: dict, seed: int, runner: ChunkRunner, models: dict
) -> dict:
    """Every (variable, method) on one seed's class-conditional samples, chunk by chunk: per-sample rows of
    the stored chunks, their images and the statuses of those that did not finish."""
    base = seed_samples(tm, objective, cfg, seed)
    k = intermediate_index(samplers.get("ddim", steps=cfg.steps).build(tm.model), cfg.t_intermediate)
    inputs = tensor_digest(base["z"], base["labels"])
    rows, images, skipped = [], {"unguided": base["x"]}, {}
    if any(m in COUPLED for ms in names.values() for m in ms if seed in planned_seeds(cfg, m, ms)):
        base |= coupled_reference(tm, objective, cfg, base)
        images["unguided, coupled sampler"] = base["x_coupled"]
    for wrt, methods in names.items():
        for name in (m for m in methods if seed in planned_seeds(cfg, m, methods)):
            settings = settings_of(cfg, STYLE_FIELDS, seed=seed, wrt=wrt, estimator=name, inputs=inputs)
            settings |= {"scored_on": "coupled sampler"} if name in COUPLED else {}
            chunk = runner.get(
                style_key(seed, wrt, name),
                settings | models,
                partial(style_chunk, tm, objective, cfg, base, wrt, k, name),
            )
            if chunk is None:
                continue
            if chunk["status"] != "ok":
                skipped[f"{name}@{wrt}"] = chunk["status"]
                continue
            per = chunk["wall_s"] / cfg.n
            loss_ref = reference(base, name)[1]
            for j in range(cfg.n):
                rows.append(
                    dict(
                        seed=seed,
                        sample=j,
                        label=int(base["labels"][j]),
                        variable=VARIABLES[wrt],
                        method=name,
                    )
                    | {m: chunk[m][j].item() for m in ("style_ratio", "class_kept", "pixel_l2", "ssim")}
                    | dict(style_loss=chunk["style_ratio"][j].item() * float(loss_ref[j]))
                    | dict(s_per_sample=per)
                )
            images[f"{name} @ {VARIABLES[wrt]}"] = chunk["x"]
    return dict(rows=rows, images=images, skipped=skipped, k=k)


def summarise(df: pd.DataFrame, planned: dict | None = None, groups=None) -> pd.DataFrame:
    """Per (variable, method) of `groups` (default: those with stored samples): n of n_planned samples
    (`planned`: per method), class preserved with its Clopper-Pearson interval, style-loss ratio (guided /
    unguided, per sample) with a bootstrap interval, per-seed values, distances."""
    groups = list(groups if groups is not None else dict.fromkeys(zip(df.variable, df.method)))
    rows = []
    for variable, method in groups:
        g = df[(df.variable == variable) & (df.method == method)] if len(df) else df
        k, n = (int(g.class_kept.sum()), len(g)) if len(g) else (0, 0)
        lo, hi = clopper_pearson(k, n) if n else (np.nan, np.nan)
        r, rlo, rhi = bootstrap_interval(g.style_ratio.to_numpy() if n else [])
        by_seed = g.groupby("seed").style_ratio.mean() if n else []
        n_planned = (planned or {}).get(method)
        rows.append(
            dict(variable=variable, method=method, n=n, n_planned=n_planned, complete=n == n_planned)
            | dict(class_kept_pct=100 * k / n if n else np.nan)
            | dict(kept_ci_lo_pct=100 * lo, kept_ci_hi_pct=100 * hi)
            | dict(style_ratio=r, style_ratio_lo=rlo, style_ratio_hi=rhi)
            | dict(per_seed_style_ratio=" / ".join(f"{v:.3f}" for v in by_seed))
            | dict(
                pixel_l2=g.pixel_l2.mean() if n else np.nan,
                ssim_to_unguided=g.ssim.mean() if n else np.nan,
                s_per_sample=g.s_per_sample.mean() if n else np.nan,
            )
        )
    return pd.DataFrame(rows)


def paired_variables(df: pd.DataFrame, planned: dict | None = None, methods=None) -> pd.DataFrame:
    """Per method of `methods` (default: those with stored samples): x_t vs x_N on the samples stored for both
    (n_pairs of n_pairs_planned; `planned`: per method); class kept (McNemar) and style ratio difference."""
    methods = list(methods if methods is not None else dict.fromkeys(df.method))
    rows = []
    for method in methods:
        g = df[df.method == method] if len(df) else df
        at_t, at_n = (g[g.variable == VARIABLES[w]] if len(g) else g for w in ("intermediate", "latent"))
        both = (
            at_t.merge(at_n, on=["seed", "sample"], suffixes=("_t", "_n"))
            if len(at_t) and len(at_n)
            else None
        )
        a = both.class_kept_t.to_numpy(bool) if both is not None else np.zeros(0, bool)
        b = both.class_kept_n.to_numpy(bool) if both is not None else np.zeros(0, bool)
        diff = (both.style_ratio_t - both.style_ratio_n).to_numpy() if both is not None else []
        d, dlo, dhi = bootstrap_interval(diff)
        n_planned = (planned or {}).get(method)
        rows.append(
            dict(method=method, n_pairs=len(a), n_pairs_planned=n_planned, complete=len(a) == n_planned)
            | mcnemar_columns(a, b, "kept_only_at_x_t", "kept_only_at_x_N")
            | dict(style_ratio_t_minus_N=d, diff_lo=dlo, diff_hi=dhi)
        )
    return pd.DataFrame(rows)


def paired_methods(
    df: pd.DataFrame, planned: dict | None = None, methods=None, base: str = "sdo"
) -> pd.DataFrame:
    """At x_N, method `base` against every other method of `methods` (default: those with stored samples), on
    the latents stored for both (n_pairs of n_pairs_planned): class kept (McNemar), mean style ratios and the
    difference of the final images' style loss (Eq. 24, paper Table 2), other - base, with its bootstrap
    interval."""
    at_n = df[df.variable == VARIABLES["latent"]] if len(df) else df
    ref = at_n[at_n.method == base] if len(at_n) else at_n
    rows = []
    methods = methods if methods is not None else dict.fromkeys(at_n.method if len(at_n) else [])
    for method in (m for m in methods if m != base and len(ref)):
        both = ref.merge(at_n[at_n.method == method], on=["seed", "sample"], suffixes=("_ref", "_other"))
        a, b = both.class_kept_ref.to_numpy(bool), both.class_kept_other.to_numpy(bool)
        d, dlo, dhi = bootstrap_interval((both.style_loss_other - both.style_loss_ref).to_numpy())
        sizes = [(planned or {}).get(m) for m in (base, method)]
        n_planned = None if None in sizes else min(sizes)
        rows.append(
            dict(comparison=f"{base} vs {method}", n_pairs=len(both), n_pairs_planned=n_planned)
            | dict(complete=len(both) == n_planned)
            | dict(
                reference_style_ratio=both.style_ratio_ref.mean(),
                other_style_ratio=both.style_ratio_other.mean(),
            )
            | dict(
                reference_style_loss=both.style_loss_ref.mean(), other_style_loss=both.style_loss_other.mean()
            )
            | dict(style_loss_other_minus_ref=d, diff_lo=dlo, diff_hi=dhi)
            | dict(reference_kept_pct=100 * a.mean() if len(a) else np.nan)
            | dict(other_kept_pct=100 * b.mean() if len(b) else np.nan)
            | mcnemar_columns(a, b, "kept_only_by_reference", "kept_only_by_other")
        )
    return pd.DataFrame(rows)


def run_style(
    cfg: StyleConfig | None = None,
    estimator_names=None,
    out: Path = RESULTS,
    tm=None,
    runner: ChunkRunner | None = None,
) -> pd.DataFrame:
    """Style guidance at x_N and x_t (t ~ 600) per method and seed from the chunks under out/chunks/
    (computing the missing ones until the runner's limit); writes style.{csv,md,png,json},
    style-samples.csv, style-paired.{csv,md} and style-methods.{csv,md}."""
    cfg = cfg or StyleConfig()
    tm = tm or load_models()
    runner = runner or ChunkRunner(out, device=tm.device)
    ref = reference_image(cfg.reference_class).to(tm.device)
    objective = objectives.get("style", reference=ref, features=ClassifierFeatures(tm.attacked))
    wanted = estimator_names or DEFAULT_ESTIMATORS
    names = {w: usable_estimators(wanted, w, required=False) for w in VARIABLES}
    if not any(names.values()):
        usable_estimators(wanted, "latent")  # raises, naming the valid estimators
    keys = [
        style_key(s, w, m)
        for s in cfg.seeds
        for w, methods in names.items()
        for m in methods
        if s in planned_seeds(cfg, m, methods)
    ]
    models = model_settings(tm)
    runner.progress("style", len(keys))
    seeds_out = [run_seed(tm, objective, cfg, names, seed, runner, models) for seed in cfg.seeds]
    runner.close()
    df = pd.DataFrame([r for s in seeds_out for r in s["rows"]])
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "style-samples.csv", index=False)
    planned = {m: cfg.n * len(planned_seeds(cfg, m, ms)) for ms in names.values() for m in ms}
    cover = runner.coverage(keys)
    note = table_note(cover, "style", "style.json")
    skipped = {k: v for o in seeds_out for k, v in o["skipped"].items() if v.startswith("unsupported")}
    groups = [(VARIABLES[w], m) for w, ms in names.items() for m in ms if f"{m}@{w}" not in skipped]
    both = [
        m
        for m in names["latent"]
        if (VARIABLES["intermediate"], m) in groups and (VARIABLES["latent"], m) in groups
    ]
    table = summarise(df, planned, groups)
    replicas = replica_agreement(
        df, [m for _, m in groups], on=["seed", "sample", "variable"], outcome="class_kept"
    )
    sentences = [replica_sentence(r, "the first seed") for r in replicas]
    write_table(table, "style", out, note="\n\n".join([note, *sentences]))
    write_table(paired_variables(df, planned, both), "style-paired", out, note=note)
    write_table(paired_methods(df, planned, names["latent"]), "style-methods", out, note=note)
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
        device=tm.device,
        model=tm.name,
        coverage=cover,
        intermediate_step=seeds_out[0]["k"],
        replicas=replicas,
        skipped={s: o["skipped"] for s, o in zip(cfg.seeds, seeds_out)},
        class_kept="the judge (fmnist-classifier-eval) predicts the requested class on the guided sample; the "
        "style loss uses the attacked classifier's (fmnist-classifier) conv features",
    )
    save_json(notes, out / "style.json")
    return table
