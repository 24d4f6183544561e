"""The estimator protocol: `estimator(problem) -> GradResult`, one signature for every method.

Most estimators are the shared loop with a different graph-retention set S (DESIGN.md Sec. 1):
subclass `RetentionEstimator` and say which steps keep a graph.
"""

from __future__ import annotations

import dataclasses
import random
import time

from ..loop import Rollout, finish, keep_set, trainable
from ..problem import Problem
from ..result import GradResult


@dataclasses.dataclass
class Estimator:
    """Base class: options are dataclass fields; `__call__` returns the gradient with diagnostics."""

    name = "estimator"
    exact = False  # exact gradient of the discrete sampler

    def __call__(self, problem: Problem) -> GradResult:
        with trainable(problem):
            t0 = time.perf_counter()
            result = self.estimate(problem)
        result.stats.setdefault("estimator", self.name)
        result.stats["wall_s"] = time.perf_counter() - t0
        return result

    def estimate(self, problem: Problem) -> GradResult:
        raise NotImplementedError(f"{type(self).__name__} must implement estimate(problem)")


@dataclasses.dataclass
class RetentionEstimator(Estimator):
    """An estimator that is a choice of S on the shared loop, with an optional detach point and scale."""

    def retained(self, problem: Problem, first: int) -> set[int]:
        """S: the paper step indices i whose network call keeps its graph."""
        raise NotImplementedError

    def detach_at(self, problem: Problem, first: int) -> int | None:
        """Detach x_i before step i (None: never)."""
        return None

    def scale(self, problem: Problem) -> float:
        """A constant the gradient is multiplied by."""
        return 1.0

    def rollout(self, problem: Problem) -> Rollout:
        """The shared loop for this problem (estimators with loop options override)."""
        return Rollout(problem)

    def estimate(self, problem: Problem) -> GradResult:
        rollout = self.rollout(problem)
        x, history, first, leaves = rollout.start()
        S = self.retained(problem, first)
        x0, _ = rollout.run(x, history, first, 1, keep_set(S), self.detach_at(problem, first))
        result = finish(rollout, x0, leaves, retained=sorted(S, reverse=True))
        c = self.scale(problem)
        if c != 1.0:
            result.grads = {k: c * g for k, g in result.grads.items()}
        return result


@dataclasses.dataclass
class SeededStep:
    """A reproducible stream of random step indices (or K values): seeded by `seed`, else the problem's."""

    seed: int | None = None

    def draw(self, problem: Problem, low: int, high: int) -> int:
        """Uniform integer in [low, high]; the stream advances across calls of one estimator object."""
        if getattr(self, "_rng", None) is None:
            self._rng = random.Random(problem.seed if self.seed is None else self.seed)
        return self._rng.randint(low, high)
