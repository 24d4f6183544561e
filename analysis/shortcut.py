"""When does the shortcut work? Accuracy of approximate estimators against float64 BPTT over N, wrt, samples and
training progress, and the mechanism: the frozen chain's gain against the true Jacobian's contraction."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

import sdo
from sdo.freeze import frozen_gain

from .depth import cotangent_norms

T_INTERMEDIATE = 600  # the paper's "t = 600": the step whose timestep is nearest


def intermediate_step(problem: sdo.Problem, t: float = T_INTERMEDIATE) -> int:
    """The step index k whose timestep t_k is nearest t."""
    return min(range(1, problem.steps + 1), key=lambda i: abs(problem.solver.timestep(i) - t))


def make_problem(model, steps: int, wrt: str, seed: int, objective=None) -> sdo.Problem:
    """A float64 DDIM problem on `model` (target-MSE by default); wrt intermediate at t ~ 600, params: all."""
    obj = objective or sdo.objectives.get("target-mse", seed=7)
    spec = sdo.samplers.get("ddim", steps=steps)
    problem = sdo.Problem(model, spec, obj, wrt="latent", seed=seed, dtype=torch.float64)
    if wrt == "intermediate":
        k = intermediate_step(problem)
        return sdo.Problem(model, spec, obj, wrt=wrt, intermediate_step=k, seed=seed, dtype=torch.float64)
    if wrt != "latent":
        return sdo.Problem(model, spec, obj, wrt=wrt, seed=seed, dtype=torch.float64)
    return problem


def accuracy_rows(
    models: dict[str, Callable[[], sdo.models.Denoiser]],
    estimators: Sequence,
    steps: Sequence[int],
    wrts: Sequence[str],
    seeds: Sequence[int],
    progress: str = "accuracy",
) -> pd.DataFrame:
    """sdo.compare against float64 BPTT for every (model, N, wrt, seed); one row per estimator and case."""
    cases = [(m, n, w, s) for m in models for n in steps for w in wrts for s in seeds]
    frames, built = [], {}
    for name, n, wrt, seed in tqdm(cases, desc=progress, mininterval=10):
        model = built.setdefault(name, models[name]())
        df = sdo.compare(make_problem(model, n, wrt, seed), estimators, dtype=torch.float64)
        frames.append(df.assign(model=name, steps=n, wrt=wrt, seed=seed))
    out = pd.concat(frames, ignore_index=True)
    out["label"] = [label(e, o) for e, o in zip(out.estimator, out.options)]
    return out


def label(estimator: str, options) -> str:
    """A short readable name of an estimator with its options, e.g. 'neumann K=1'."""
    if not options:
        return estimator
    return estimator + " " + " ".join(f"{k}={v}" for k, v in dict(options).items())


def snapshots(directory: Path) -> list[tuple[int, Path]]:
    """(training step, EMA weights) of a training run's snapshots, in step order."""
    found = []
    for path in Path(directory).glob("ema-*.safetensors"):
        match = re.fullmatch(r"ema-(\d+)\.safetensors", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def mechanism(problem: sdo.Problem) -> dict:
    """The eps-frozen chain's gain from x_{N-1} to x_0 (alpha_0 / alpha_{N-1} on DDIM) and the true one,
    ||dJ/dx_{N-1}|| / ||dJ/dx_0|| from float64 BPTT."""
    norms = cotangent_norms(problem, through_network=True)
    true_gain = norms[problem.steps - 1] / norms[0] if norms[0] > 0 else math.nan
    return {"frozen_gain": frozen_gain(problem.solver.coef, 1, "eps"), "true_gain": true_gain}


def summarise(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Median cosine and norm ratio with their 10-90 % range over samples, per group."""
    agg = df.groupby(list(by)).agg(
        cosine=("cosine", "median"),
        cosine_lo=("cosine", lambda v: v.quantile(0.1)),
        cosine_hi=("cosine", lambda v: v.quantile(0.9)),
        norm_ratio=("norm_ratio", "median"),
        ratio_lo=("norm_ratio", lambda v: v.quantile(0.1)),
        ratio_hi=("norm_ratio", lambda v: v.quantile(0.9)),
        rel_err=("rel_err", "median"),
        n=("cosine", "size"),
    )
    return agg.reset_index()
