"""SDO summed over every step for theta or c (paper Eq. 16): deterministic, one network graph at a time."""

from __future__ import annotations

import dataclasses

from ..theory import Prediction, vjp_kind
from .sweep import Sweep, SweepEstimator, accumulate, frozen_step_vjp, network_vjp, record


class SdoAllSweep(Sweep):
    """Forward: the sampler without a graph, storing x_i. Backward: i = 1..N, carry the cotangent of x
    through the linear chain (network outputs frozen, Eq. 18) and add each step's g^T dPhi_i/dm dm_i/dtheta."""

    def forward(self, x):
        x0, self.states = record(self.rollout, x, self.history, self.first)
        self.stats["trajectory_bytes"] = sum(s.nbytes() for s in self.states.values())
        return x0

    def backward(self, g):
        g_x, g_h, total = g, (None,) * len(self.history), None
        for i in range(1, self.first + 1):
            s = self.states[i]
            g_x, g_m, g_h = frozen_step_vjp(self.rollout, s, g_x, g_h)
            total = accumulate(total, network_vjp(self.rollout, i, s.x.detach(), g_m, self.leaves))
        self.states = None
        return None, total


@dataclasses.dataclass
class SdoAll(SweepEstimator):
    """Eq. 16 over all steps i' = 1..N (= N x the mean over i' of SDO's Eq. 20 gradient), wrt theta or c."""

    name = "sdo-all"
    exact = False
    supported_wrt = ("params", "cond")

    def predict(self, problem):
        """N no-graph forwards storing (x_i, m_i); backward: N recomputed forwards and N independent VJPs
        (depth N + 1)."""
        self.check(problem)
        N = problem.steps
        return Prediction(
            fwd_grad=0,
            fwd_nograd=N,
            fwd_recompute=N,
            bwd=N,
            depth=N + 1,
            memory="O(N|x|)",
            bwd_params=N * vjp_kind(problem),
            graphs=1,
            states=2 * N,
        )

    def make_sweep(self, rollout, history, first, leaves):
        return SdoAllSweep(rollout, history, first, leaves)
