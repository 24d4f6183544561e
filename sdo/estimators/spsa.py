"""SPSA: a zeroth-order gradient from antithetic Gaussian perturbations, forward sampling only."""

from __future__ import annotations

import dataclasses

import torch

from ..loop import Rollout, keep_set
from ..result import GradResult
from ..theory import Prediction, first_step, prefix_forwards
from .base import Estimator

NO_GRAPH = keep_set(())


@dataclasses.dataclass
class SPSA(Estimator):
    """g = (1/S) sum_k [J(v + sigma u_k) - J(v - sigma u_k)] / (2 sigma) u_k with u_k ~ N(0, I): unbiased
    for the gradient of the Gaussian-smoothed objective E_u J(v + sigma u) (Nesterov & Spokoiny 2017),
    2 S N network forwards and no backward. v is the wrt variable (x_N, x_k, c or the selected theta);
    `seed` (default: the problem's) draws the directions. loss is the mean of the 2 S perturbed losses."""

    name = "spsa"
    exact = False  # unbiased for the smoothed objective only
    samples: int = 16
    sigma: float = 1e-2
    seed: int | None = None

    def __post_init__(self):
        if not isinstance(self.samples, int) or isinstance(self.samples, bool) or self.samples < 1:
            raise ValueError(f"spsa samples must be an integer >= 1; got {self.samples!r}")
        if not self.sigma > 0:
            raise ValueError(f"spsa sigma must be > 0; got {self.sigma!r}")

    def predict(self, problem) -> Prediction:
        """2 S sampler runs from the first differentiated step, no backward; the runs are independent, so the
        critical path is one run (depth N)."""
        first = first_step(problem)
        return Prediction(
            fwd_grad=0,
            fwd_nograd=prefix_forwards(problem) + 2 * self.samples * first,
            fwd_recompute=0,
            bwd=0,
            depth=problem.steps,
            memory="O(1)",
            graphs=0,
        )

    def estimate(self, problem) -> GradResult:
        rollout = Rollout(problem)
        with torch.no_grad():
            base = _Base(rollout)
            g = torch.Generator().manual_seed(problem.seed if self.seed is None else self.seed)
            grads = {k: torch.zeros_like(v) for k, v in base.values.items()}
            losses, x0s = [], []
            for _ in range(self.samples):
                u = {k: _randn(v, g) for k, v in base.values.items()}
                (jp, xp), (jm, xm) = base.value(u, self.sigma), base.value(u, -self.sigma)
                for k in grads:
                    grads[k] += (jp - jm) / (2 * self.sigma * self.samples) * u[k]
                losses += [jp, jm]
                x0s += [xp, xm]
        loss = torch.stack(losses).mean()
        finite = torch.isfinite(loss) and all(torch.isfinite(v).all() for v in grads.values())
        stats = {"status": "ok" if finite else "nonfinite", "samples": self.samples, "sigma": self.sigma}
        stats.update(rollout.calls.as_dict())
        return GradResult(grads, float(loss), torch.stack(x0s).mean(0), stats)


def _randn(like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    u = torch.randn(like.shape, generator=g, dtype=torch.float64)
    return u.to(dtype=like.dtype, device=like.device)


class _Base:
    """The unperturbed wrt values and J(D(x_0)) at a perturbation of them (no graph anywhere)."""

    def __init__(self, rollout: Rollout):
        self.rollout, p = rollout, rollout.problem
        x, self.history, self.first, leaves = rollout.start()
        self.values = {k: v.detach().clone() for k, v in leaves.items()}  # theta: a copy to restore
        self.x = x.detach()
        if p.wrt == "latent":
            self.x = None  # rebuilt from the perturbed latent

    def value(self, u: dict, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        rollout, p = self.rollout, self.rollout.problem
        moved = {k: v + sigma * u[k] for k, v in self.values.items()}
        x = self.x
        if p.wrt == "latent":
            x = p.solver.init_scale * moved["latent"]
        elif p.wrt == "intermediate":
            x = next(iter(moved.values()))
        elif p.wrt == "cond":
            rollout.cond = moved["cond"]
        else:
            return self._with_params(moved)
        return self._sample(x)

    def _sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.rollout.problem
        x0, _ = self.rollout.run(x, self.history, self.first, 1, NO_GRAPH)
        return p.loss(x0).detach(), x0

    def _with_params(self, moved: dict) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.rollout.problem.parameters()
        for k, v in moved.items():
            params[k].copy_(v)
        try:
            return self._sample(self.x)
        finally:
            for k, v in self.values.items():
                params[k].copy_(v)
