"""Checkpointed BPTT: store x_i every k steps, recompute each segment in backward (exact)."""

from __future__ import annotations

import dataclasses

from torch.utils.checkpoint import checkpoint

from ..loop import Rollout, finish, keep_set
from ..theory import Prediction, first_step, prefix_forwards, vjp_kind
from .base import Estimator


@dataclasses.dataclass
class Checkpoint(Estimator):
    """BPTT with `torch.utils.checkpoint` (non-reentrant) over segments of `segment` steps."""

    name = "checkpoint"
    exact = True
    segment: int = 5

    def __post_init__(self):
        if not isinstance(self.segment, int) or self.segment < 1:
            raise ValueError(f"checkpoint segment must be an integer >= 1; got {self.segment!r}")

    def predict(self, problem):
        """BPTT plus one recomputed forward per step; N/k boundary states and one segment's k graphs at once
        (recomputes can run ahead of the VJP chain: depth N + N)."""
        first = first_step(problem)
        kept = first
        return Prediction(
            fwd_grad=kept,
            fwd_nograd=prefix_forwards(problem),
            fwd_recompute=kept,
            bwd=kept,
            depth=problem.steps + kept,
            memory="O(N/k)",
            bwd_params=kept * vjp_kind(problem),
            graphs=min(self.segment, first),
            states=-(-first // self.segment),
        )

    def estimate(self, problem):
        rollout = Rollout(problem)
        x, history, first, leaves = rollout.start()
        keep_all = keep_set(range(1, first + 1))

        def segment(hi: int, lo: int, x, *history):
            x, history = rollout.run(x, tuple(history), hi, lo, keep_all)
            return (x, *history)

        hi = first
        while hi >= 1:
            lo = max(hi - self.segment + 1, 1)
            x, *history = checkpoint(segment, hi, lo, x, *history, use_reentrant=False)
            hi = lo - 1
        return finish(rollout, x, leaves, retained=list(range(first, 0, -1)), segment=self.segment)
