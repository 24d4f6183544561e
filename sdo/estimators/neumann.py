"""The Picard-Neumann family for wrt x_N (or x_k): K = 0 is SDO, K = N-1 is exact BPTT (DESIGN.md Sec. 1).

With the trajectory as unknowns, its Jacobian splits as L + M: L is the solver arithmetic with the
network outputs frozen (the linear chain, Eq. 18) and M the network part dPhi/dm dm/dx. M (I - L)^{-1}
is strictly triangular, so (I - L - M)^{-1} = (I - L)^{-1} sum_{k<N} (M (I - L)^{-1})^k exactly; keeping
the terms k <= K gives this estimator. In adjoint form: sweep the cotangent back through L, then apply
the N-1 network VJPs of the previous sweep's m-cotangents (independent: one batched call), K times.
"""

from __future__ import annotations

import dataclasses

import torch

from ..theory import Prediction, first_step, prefix_forwards
from .sweep import Sweep, SweepEstimator, frozen_step_vjp, leaf, network_vjp, record


class NeumannSweep(Sweep):
    """Forward: the sampler without a graph, storing (x_i, history, m_i). Backward: K + 1 linear sweeps."""

    K: int = 0
    batched: bool = False

    def forward(self, x):
        x0, self.states = record(self.rollout, x, self.history, self.first)
        self.stats["trajectory_bytes"] = sum(s.nbytes() for s in self.states.values())
        return x0

    def backward(self, g):
        K = min(self.K, self.first - 1)  # terms beyond N-1 vanish (nilpotent)
        g_m = {}
        for k in range(K + 1):
            extra = self.network_terms(g_m) if k > 0 else {}
            g_first, g_m = self.linear_sweep(g, extra)
        x = leaf(self.states[self.first].x)
        (g_net,) = network_vjp(self.rollout, self.first, x, g_m[self.first], [x])
        self.stats["neumann_terms"] = K
        self.states = None
        return g_first + g_net, []

    def linear_sweep(self, g, extra: dict) -> tuple[torch.Tensor, dict]:
        """Cotangents back through L from x_0 to x_first, adding M^T terms `extra[i]` at x_i (i < first)."""
        g_x, g_h, g_m = g, (None,) * len(self.history), {}
        for i in range(1, self.first + 1):
            g_x, g_m[i], g_h = frozen_step_vjp(self.rollout, self.states[i], g_x, g_h)
            if i in extra:
                g_x = g_x + extra[i]
        return g_x, g_m

    def network_terms(self, g_m: dict) -> dict:
        """M^T applied to the previous sweep: g_m[i]^T dm_i/dx_i at every i < first."""
        steps = list(range(1, self.first))
        if not steps:
            return {}
        if self.batched:
            return dict(zip(steps, self.batched_vjp(steps, [g_m[i] for i in steps])))
        out = {}
        for i in steps:
            x = leaf(self.states[i].x)
            (out[i],) = network_vjp(self.rollout, i, x, g_m[i], [x])
        return out

    def batched_vjp(self, steps: list[int], cots: list) -> list:
        """The VJPs of all `steps` as one network call over the timesteps stacked along the batch."""
        r, solver = self.rollout, self.rollout.solver
        xs = [leaf(self.states[i].x) for i in steps]
        b = xs[0].shape[0]
        with torch.enable_grad():
            x_in = torch.cat([solver.model_input(i, x) for i, x in zip(steps, xs)])
            t = torch.tensor([solver.timestep(i) for i in steps for _ in range(b)], dtype=x_in.dtype)
            cond = None if r.cond is None else torch.cat([r.cond] * len(steps))
            m = r.call(x_in, t.to(x_in.device), keep=True, cond=cond, evals=len(steps))
            grads = torch.autograd.grad(m, xs, torch.cat(cots))
        r.calls.bwd += len(steps)
        return list(grads)


@dataclasses.dataclass
class Neumann(SweepEstimator):
    """K Neumann terms beyond SDO (K = 0: SDO wrt x_N; K >= N-1: exact). `batched` stacks each term's
    N-1 VJPs into one network call (default: on for CUDA, off otherwise); the model must then accept one
    timestep per sample."""

    name = "neumann"
    exact = False  # exact only for K >= N-1
    supported_wrt = ("latent", "intermediate")
    K: int = 1
    batched: bool | None = None

    def __post_init__(self):
        if not isinstance(self.K, int) or isinstance(self.K, bool) or self.K < 0:
            raise ValueError(f"neumann K must be an integer >= 0; got {self.K!r}")
        if self.batched not in (None, True, False):
            raise ValueError(f"neumann batched must be True, False or None (auto); got {self.batched!r}")

    def predict(self, problem):
        """N no-graph forwards; K terms of N-1 VJPs and one at x_first, each VJP after a recomputed forward;
        depth N + K + 1 (a term's VJPs are independent); the trajectory (x_i, m_i) is stored."""
        self.check(problem)
        first = first_step(problem)
        K = min(self.K, first - 1)
        vjps = K * (first - 1) + 1
        batched = problem.device.type == "cuda" if self.batched is None else self.batched
        return Prediction(
            fwd_grad=0,
            fwd_nograd=prefix_forwards(problem) + first,
            fwd_recompute=vjps,
            bwd=vjps,
            depth=problem.steps + K + 1,
            memory="O(N|x|)",
            graphs=max(first - 1, 1) if batched and K > 0 else 1,
            states=2 * first,
        )

    def make_sweep(self, rollout, history, first, leaves):
        sweep = NeumannSweep(rollout, history, first, leaves)
        sweep.K = self.K
        device = rollout.problem.device
        sweep.batched = device.type == "cuda" if self.batched is None else self.batched
        sweep.stats["batched"] = sweep.batched
        return sweep
