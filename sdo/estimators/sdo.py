"""SDO, the one-step gradient shortcut (paper Sec. 4): S = one step."""

from __future__ import annotations

import dataclasses

import torch

from ..freeze import check_freeze
from ..loop import Rollout
from .base import RetentionEstimator, SeededStep

SDO_SCALES = (1, "N")
SDO_MEMORY = ("hold", "floor")


class _Recomputed(torch.autograd.Function):
    """m_i = f(x_i) run without a graph; the backward recomputes it with its graph for the VJP, so step i's
    graph exists only while its own backward runs (x_i is kept: one latent-sized tensor)."""

    @staticmethod
    def forward(ctx, rollout, i, x, *leaves):
        ctx.rollout, ctx.i = rollout, i
        ctx.save_for_backward(x, *leaves)
        return rollout.network(i, x, keep=False)

    @staticmethod
    def backward(ctx, g):
        x, *leaves = ctx.saved_tensors
        x = x.detach().requires_grad_(ctx.needs_input_grad[2])
        needed = [t for t, need in zip([x, *leaves], ctx.needs_input_grad[2:]) if need]
        with torch.enable_grad():
            m = Rollout.network(ctx.rollout, ctx.i, x, keep=True)  # the plain call, not deferred again
            grads = iter(torch.autograd.grad(m, needed, g, allow_unused=True))
        ctx.rollout.calls.bwd += 1
        return (None, None, *(next(grads) if need else None for need in ctx.needs_input_grad[2:]))


class FloorRollout(Rollout):
    """The shared loop with every kept network call deferred to the backward (`_Recomputed`)."""

    def network(self, i, x, keep):
        if not (keep and torch.is_grad_enabled()):
            return super().network(i, x, keep)
        p = self.problem
        leaves = list(p.parameters().values()) if p.wrt == "params" else []
        leaves += [self.cond] if p.wrt == "cond" else []
        return _Recomputed.apply(self, i, x, *leaves)


@dataclasses.dataclass
class SDO(RetentionEstimator, SeededStep):
    """wrt x_N: S = {N} (Eq. 15/19); wrt x_k: S = {k}; wrt theta or c: S = {i'}, i' ~ U{1..N} seeded or
    given as `step` (Eq. 17/20). scale=1 is the paper's Eq. 20; scale='N' makes it unbiased for Eq. 16.
    `freeze` picks what sg() holds outside S: None = the network's own output (the paper), or eps / x0 / v
    (native ddim; sdo/freeze.py). memory='floor' runs step i' without a graph and recomputes it with its
    graph in the backward (N + 1 forwards; peak one forward + backward plus the x-chain); 'hold' keeps it."""

    name = "sdo"
    step: int | None = None
    scale_by: int | str = 1
    freeze: str | None = None
    memory: str = "hold"

    def __post_init__(self):
        if self.scale_by not in SDO_SCALES:
            raise ValueError(f"unknown SDO scale {self.scale_by!r}; valid: 1, 'N'")
        check_freeze(self.freeze)
        if self.memory not in SDO_MEMORY:
            raise ValueError(f"unknown SDO memory {self.memory!r}; valid: {', '.join(SDO_MEMORY)}")

    def rollout(self, problem):
        loop = FloorRollout if self.memory == "floor" else Rollout
        return loop(problem, freeze=self.freeze)

    def predict(self, problem):
        """The retained step's forward moves into the backward with memory='floor' (still N + 1 forwards)."""
        pred = super().predict(problem)
        if self.memory != "floor":
            return pred
        return pred.replace(
            fwd_grad=0, fwd_nograd=pred.fwd_nograd + pred.fwd_grad, fwd_recompute=pred.fwd_grad
        )

    def retained(self, problem, first):
        if self.step is not None and not (isinstance(self.step, int) and 1 <= self.step <= problem.steps):
            raise ValueError(f"SDO step must be an integer in 1..{problem.steps}; got {self.step!r}")
        if problem.wrt in ("latent", "intermediate"):
            if self.step not in (None, first):
                raise ValueError(
                    f"SDO wrt={problem.wrt!r} keeps the graph of the first differentiated step only "
                    f"(S = {{{first}}}, Eq. 15); `step` chooses i' for wrt params or cond; got step={self.step}"
                )
            return {first}
        if self.step is not None:
            return {self.step}
        return {self.draw(problem, 1, problem.steps)}

    def memory_class(self, problem):
        return "O(1)"

    def scale(self, problem):
        shared = problem.wrt in ("params", "cond")
        return float(problem.steps) if shared and self.scale_by == "N" else 1.0
