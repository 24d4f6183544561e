"""What an estimate is compared with: the exact gradient of the problem's sampler (BPTT), the exact gradient
of the coupled EDICT sampler that `reversible`-type estimators differentiate, and the accuracy measures."""

from __future__ import annotations

import torch

import sdo
from sdo.estimators.reversible import coupled_sample
from sdo.estimators.reversible_mf import Coupling, ReversibleMF
from sdo.estimators.reversible_mf import coupled_sample as mf_coupled_sample
from sdo.loop import Rollout, finish, trainable
from sdo.result import GradResult

INTERMEDIATE_T = 600.0  # the paper's intermediate point x_k: the step whose timestep is nearest t = 600


def intermediate_step(solver, steps: int) -> int:
    """k in 1..N whose network timestep t_k is nearest INTERMEDIATE_T (ties: the larger k)."""
    return min(range(steps, 0, -1), key=lambda i: abs(float(solver.timestep(i)) - INTERMEDIATE_T))


def coupled_bptt(problem: sdo.Problem, mix: float) -> GradResult:
    """BPTT through the coupled EDICT sampler's plain forward (every step's graph kept): the exact gradient
    of the sampler `reversible` with mixing `mix` differentiates."""
    with trainable(problem):
        rollout = Rollout(problem)
        x, _, first, leaves = rollout.start()
        x0, _ = coupled_sample(rollout, x, first, mix, keep=True)
        return finish(rollout, x0, leaves)


def mf_coupled_bptt(problem: sdo.Problem, lam: float) -> GradResult:
    """BPTT through the McCallum-Foster coupled sampler with parameter `lam` (every graph kept): the exact
    gradient of the sampler `reversible-mf` differentiates."""
    with trainable(problem):
        rollout = Rollout(problem)
        x, _, first, leaves = rollout.start()
        y0, _ = mf_coupled_sample(Coupling.build(rollout, first, lam), x, first, keep=True)
        return finish(rollout, y0, leaves)


def coupled_reference(estimator):
    """(key, exact-gradient function of the problem) for an estimator that differentiates its own coupled
    sampler (EDICT `reversible`, McCallum-Foster `reversible-mf`); None for every other estimator."""
    if isinstance(estimator, sdo.estimators.Reversible):
        mix = float(estimator.mix)
        return ("edict", mix), lambda problem: coupled_bptt(problem, mix)
    if isinstance(estimator, ReversibleMF):
        lam = float(estimator.lam)
        return ("mf", lam), lambda problem: mf_coupled_bptt(problem, lam)
    return None


def accuracy(grad: torch.Tensor, exact: torch.Tensor | None, suffix: str = "exact") -> dict:
    """Cosine similarity, relative L2 error and norm ratio |g_hat| / |g| to a reference gradient (None
    where undefined): cosine alone hides magnitude errors."""
    keys = (f"cos_to_{suffix}", f"rel_err_to_{suffix}", f"norm_ratio_to_{suffix}")
    if exact is None or grad.shape != exact.shape:
        return dict.fromkeys(keys)
    gn, en = float(grad.norm()), float(exact.norm())
    cos = float(grad @ exact) / (gn * en) if gn > 0 and en > 0 else None
    rel = float((grad - exact).norm()) / en if en > 0 else None
    ratio = gn / en if en > 0 else None
    return dict(zip(keys, (cos, rel, ratio)))
