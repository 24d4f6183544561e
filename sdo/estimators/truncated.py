"""Truncated backpropagation (DRaFT-K, AlignProp): S = the last K steps."""

from __future__ import annotations

import dataclasses

from .base import RetentionEstimator, SeededStep

TRUNCATION_MODES = ("fixed", "uniform")


@dataclasses.dataclass
class Truncated(RetentionEstimator, SeededStep):
    """S = {K, ..., 1}; mode='uniform' draws K ~ U{1..N} per call (AlignProp); detach=True also stops the
    gradient through x before the window (DRaFT-K proper), so only theta / c receive a gradient."""

    name = "truncated"
    K: int = 1
    mode: str = "fixed"
    detach: bool = False

    def __post_init__(self):
        if self.mode not in TRUNCATION_MODES:
            raise ValueError(f"unknown truncation mode {self.mode!r}; valid: {', '.join(TRUNCATION_MODES)}")
        if self.mode == "fixed" and (not isinstance(self.K, int) or self.K < 1):
            raise ValueError(f"truncation K must be an integer >= 1; got {self.K!r}")

    def window(self, problem, first) -> int:
        """K for this call, capped at the number of differentiated steps."""
        k = self.draw(problem, 1, first) if self.mode == "uniform" else self.K
        return min(k, first)

    def retained(self, problem, first):
        self._k = self.window(problem, first)
        return set(range(1, self._k + 1))

    def memory_class(self, problem):
        return "O(N)" if self.mode == "uniform" else "O(K)"

    def detach_at(self, problem, first):
        if not (self.detach and self._k < first):
            return None
        if problem.wrt in ("latent", "intermediate"):
            raise ValueError(
                f"estimator {self.name!r} does not support wrt={problem.wrt!r} with a window of K={self._k} "
                f"< {first} steps: x is detached before the window, so no gradient reaches the "
                f"{problem.wrt}; use K={first}, detach=False ('truncated'), or wrt params or cond"
            )
        return self._k
