"""Style guidance (paper Sec. 5.1.2, Eq. 24): a Gram-matrix loss on classifier features to a reference image,
optimising the latent at an intermediate step (the paper's t = 600 analogue) or the initial latent x_N."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    save_json,
    ssim,
    trained_models,
    usable_estimators,
    write_table,
)
from .sampling import generate, latents, sample_from_latent


@dataclass
class StyleConfig:
    """Task settings (defaults: the CPU-sized `make tasks` run)."""

    n: int = 8
    steps: int = 10  # DDIM steps N; step i = 6 of 10 has t = 599 (the paper's t = 600)
    opt_steps: int = 20
    lr: float = 0.05  # Adam (the paper: Adam, 150 steps)
    t_intermediate: int = 600
    reference_class: int = 8  # a test-set Bag as the style image
    seed: int = 1

    def __post_init__(self):
        if self.n < 1 or self.steps < 2 or self.opt_steps < 0 or self.lr <= 0:
            raise ValueError("need n >= 1, steps >= 2, opt_steps >= 0, lr > 0")


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


def optimise(model, objective, z, wrt: str, k: int | None, estimator: str, cfg: StyleConfig) -> dict:
    """Adam on the offset of x_N (wrt latent) or of x_k (wrt intermediate) with one estimator."""
    problem = Problem(
        model,
        samplers.get("ddim", steps=cfg.steps),
        objective,
        wrt=wrt,
        batch=len(z),
        latent=z,
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
        return sample_from_latent(problem.model, z + offset, problem.steps).clamp(-1, 1)
    solver, x, h = problem.solver, problem.latent, problem.solver.initial_history()
    for i in range(problem.steps, 0, -1):
        x, h = solver.step(i, x, problem.model(solver.model_input(i, x), solver.timestep(i)), h)
    return x.clamp(-1, 1)


def run_style(cfg: StyleConfig | None = None, estimator_names=None, out: Path = RESULTS) -> pd.DataFrame:
    """Style loss, pixel change and class preservation, x_N vs x_k (t ~ 600), per estimator; writes style.*."""
    cfg = cfg or StyleConfig()
    model, classifier = trained_models()
    ref = reference_image(cfg.reference_class)
    objective = objectives.get("style", reference=ref, features=ClassifierFeatures(classifier))
    z = latents(model, cfg.n, cfg.seed)
    x_plain = generate(model, cfg.n, cfg.steps, cfg.seed, batch=cfg.n)
    k = intermediate_index(samplers.get("ddim", steps=cfg.steps).build(model), cfg.t_intermediate)
    with torch.no_grad():
        plain_loss = objective(x_plain).item()
        plain_class = classifier(x_plain).argmax(1)
    rows, grids, labels, curves, skipped = [], [ref, x_plain], ["reference", "unguided"], {}, {}
    for wrt in ("latent", "intermediate"):
        for name in tqdm(
            usable_estimators(estimator_names or DEFAULT_ESTIMATORS, wrt),
            desc=f"style {wrt}",
        ):
            run = optimise(model, objective, z, wrt, k if wrt == "intermediate" else None, name, cfg)
            if run["status"].startswith("unsupported"):
                skipped[f"{name}@{wrt}"] = run["status"]
                continue
            x = run["x"]
            with torch.no_grad():
                style_loss = objective(x).item()
                kept = (classifier(x).argmax(1) == plain_class).float().mean().item()
            where = (
                "x_N"
                if wrt == "latent"
                else f"x_{k} (t={samplers.get('ddim', steps=cfg.steps).build(model).timestep(k):.0f})"
            )
            rows.append(
                dict(
                    variable=where,
                    estimator=name,
                    status=run["status"],
                    style_loss=style_loss,
                    style_loss_unguided=plain_loss,
                    class_kept_pct=100 * kept,
                    pixel_l2=(x - x_plain).flatten(1).norm(dim=1).mean().item(),
                    ssim_to_unguided=ssim(x.double(), x_plain.double()).mean().item(),
                    wall_s=run["wall_s"],
                )
            )
            grids.append(x)
            labels.append(f"{name} @ {where.split(' ')[0]}")
            curves[f"{name}@{wrt}"] = run["losses"]
    df = pd.DataFrame(rows)
    write_table(df, "style", out)
    image_grid(
        grids, labels, out / "style.png", f"style guidance to a test-set image of class {cfg.reference_class}"
    )
    save_json(dict(config=vars(cfg), intermediate_step=k, losses=curves, skipped=skipped), out / "style.json")
    return df
