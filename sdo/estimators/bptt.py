"""Full backpropagation through time: S = every step (the exact gradient of the discrete sampler)."""

from __future__ import annotations

import dataclasses

from .base import RetentionEstimator


@dataclasses.dataclass
class BPTT(RetentionEstimator):
    """S = {first, ..., 1}: every network call keeps its graph (paper Eq. 11)."""

    name = "bptt"
    exact = True

    def retained(self, problem, first):
        return set(range(1, first + 1))

    def memory_class(self, problem):
        return "O(N)"
