"""The estimator protocol: `estimator(problem) -> GradResult`, one signature for every method.

Most estimators are the shared loop with a different graph-retention set S (docs/design.md Sec. 1):
subclass `RetentionEstimator` and say which steps keep a graph.
"""

from __future__ import annotations

import dataclasses
import random
import time

from ..loop import Rollout, finish, keep_set, trainable
from ..problem import Problem
from ..result import GradResult
from ..theory import Prediction, first_step, prefix_forwards, vjp_kind


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

    def predict(self, problem: Problem) -> Prediction:
        """Predicted NFE, FLOPs, memory class and sequential depth of one call on `problem` (sdo/theory.py)."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict(problem) -> Prediction")


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

    def memory_class(self, problem: Problem) -> str:
        """Activation memory in N: the number of retained graphs, |S|."""
        return "O(|S|)"

    def predict(self, problem: Problem) -> Prediction:
        """Counts from S and the detach point: a call in S keeps a graph when its input or the leaves need
        grad; one VJP per kept graph, chained along x (depth N + |kept|)."""
        first = first_step(problem)
        with peeking(self):
            S, cut = self.retained(problem, first), self.detach_at(problem, first)
        kept, chain, x_grad = 0, 0, problem.wrt in ("latent", "intermediate")
        in_net = problem.wrt in ("params", "cond")
        for i in range(first, 0, -1):
            x_grad = x_grad and i != cut
            if i in S and (x_grad or in_net):
                kept, x_grad = kept + 1, True
            chain += x_grad
        nograd = prefix_forwards(problem) + first - kept
        return Prediction(
            fwd_grad=kept,
            fwd_nograd=nograd,
            fwd_recompute=0,
            bwd=kept,
            depth=problem.steps + kept,
            memory=self.memory_class(problem),
            bwd_params=kept * vjp_kind(problem),
            graphs=kept,
            states=chain,
        )

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


class peeking:
    """Context: draws of a SeededStep inside it do not advance its stream (predict sees the next draw)."""

    def __init__(self, estimator):
        self.estimator = estimator

    def __enter__(self):
        rng = getattr(self.estimator, "_rng", None)
        self.state = None if rng is None else rng.getstate()
        return self

    def __exit__(self, *exc):
        if isinstance(self.estimator, SeededStep):
            if self.state is None:
                self.estimator._rng = None
            else:
                self.estimator._rng.setstate(self.state)
        return False


@dataclasses.dataclass
class SeededStep:
    """A reproducible stream of random step indices (or K values): seeded by `seed`, else the problem's."""

    seed: int | None = None

    def draw(self, problem: Problem, low: int, high: int) -> int:
        """Uniform integer in [low, high]; the stream advances across calls of one estimator object."""
        if getattr(self, "_rng", None) is None:
            self._rng = random.Random(problem.seed if self.seed is None else self.seed)
        return self._rng.randint(low, high)
