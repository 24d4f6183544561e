"""SDO, the one-step gradient shortcut (paper Sec. 4): S = one step."""

from __future__ import annotations

import dataclasses

from ..freeze import check_freeze
from ..loop import Rollout
from .base import RetentionEstimator, SeededStep

SDO_SCALES = (1, "N")


@dataclasses.dataclass
class SDO(RetentionEstimator, SeededStep):
    """wrt x_N: S = {N} (Eq. 15/19); wrt x_k: S = {k}; wrt theta or c: S = {i'}, i' ~ U{1..N} seeded or
    given as `step` (Eq. 17/20). scale=1 is the paper's Eq. 20; scale='N' makes it unbiased for Eq. 16.
    `freeze` picks what sg() holds outside S: None = the network's own output (the paper), or eps / x0 / v
    (native ddim; sdo/freeze.py)."""

    name = "sdo"
    step: int | None = None
    scale_by: int | str = 1
    freeze: str | None = None

    def __post_init__(self):
        if self.scale_by not in SDO_SCALES:
            raise ValueError(f"unknown SDO scale {self.scale_by!r}; valid: 1, 'N'")
        check_freeze(self.freeze)

    def rollout(self, problem):
        return Rollout(problem, freeze=self.freeze)

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
