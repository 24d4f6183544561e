"""The Picard-Neumann family: K = 0 is SDO (wrt x_N, x_k) or sdo-all (wrt theta, c), K = N-1 is exact BPTT
(docs/design.md Sec. 1).

With the trajectory as unknowns, its Jacobian splits as L + M: L is the solver arithmetic with the
network outputs frozen (the linear chain, Eq. 18) and M the network part dPhi/dm dm/dx. M (I - L)^{-1}
is strictly triangular, so (I - L - M)^{-1} = (I - L)^{-1} sum_{k<N} (M (I - L)^{-1})^k exactly; keeping
the terms k <= K gives this estimator. In adjoint form: sweep the cotangent back through L, then apply
the N-1 network VJPs of the previous sweep's m-cotangents (independent: one batched call), K times.
wrt theta or c the m-cotangents of the last sweep are applied to dm_i/dtheta (or dm_i/dc) at every step.

Damping tau (TorchDEQ's phantom gradients, z <- tau f(z) + (1 - tau) z): each term is the damped update
v_{k+1} = (1 - tau) v_k + tau S(v_k) of the cotangents v, S the sweep with the previous network terms.
Since S(P_j) = P_{j+1} for the undamped partial sums P_j, v_K = E[P_J] with J ~ Binomial(K, tau): a
binomial average of the undamped estimates, tau = 1 the series itself. For tau < 1 no finite K is exact;
v_K converges to the exact cotangent as the binomial weight on the partial sums j < N - 1 vanishes.
"""

from __future__ import annotations

import dataclasses

import torch

from ..theory import Prediction, first_step, prefix_forwards, vjp_kind
from .sweep import Sweep, SweepEstimator, accumulate, frozen_step_vjp, leaf, network_vjp, record


class NeumannSweep(Sweep):
    """Forward: the sampler without a graph, storing (x_i, history, m_i). Backward: K + 1 linear sweeps."""

    K: int = 0
    tau: float = 1.0
    batched: bool = False

    def forward(self, x):
        x0, self.states = record(self.rollout, x, self.history, self.first)
        self.stats["trajectory_bytes"] = sum(s.nbytes() for s in self.states.values())
        return x0

    def backward(self, g):
        K = neumann_terms(self.K, self.tau, self.first)
        g_first, g_m = self.linear_sweep(g, {})
        for _ in range(K):
            new_first, new_m = self.linear_sweep(g, self.network_terms(g_m))
            g_first, g_m = self.damp(g_first, new_first), {i: self.damp(g_m[i], new_m[i]) for i in g_m}
        if self.leaves:
            total = self.leaf_terms(g_m)
            self.states = None
            return None, total
        x = leaf(self.states[self.first].x)
        (g_net,) = network_vjp(self.rollout, self.first, x, g_m[self.first], [x])
        self.states = None
        return g_first + g_net, []

    def damp(self, old, new):
        """(1 - tau) old + tau new (tau = 1: new)."""
        return new if self.tau == 1 else (1 - self.tau) * old + self.tau * new

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
            xs = [leaf(self.states[i].x) for i in steps]
            return dict(zip(steps, self.batched_vjp(steps, [g_m[i] for i in steps], xs)))
        out = {}
        for i in steps:
            x = leaf(self.states[i].x)
            (out[i],) = network_vjp(self.rollout, i, x, g_m[i], [x])
        return out

    def leaf_terms(self, g_m: dict) -> list:
        """sum_i g_m[i]^T dm_i/d(theta or c) over every step: the last sweep's cotangents on the leaves."""
        steps = list(range(1, self.first + 1))
        if self.batched:
            return self.batched_vjp(steps, [g_m[i] for i in steps], list(self.leaves), self.states)
        total = None
        for i in steps:
            total = accumulate(total, network_vjp(self.rollout, i, self.states[i].x, g_m[i], self.leaves))
        return total

    def batched_vjp(self, steps: list[int], cots: list, inputs: list, states=None) -> list:
        """The VJPs to `inputs` of all `steps` as one network call over the timesteps stacked along the batch
        (inputs: the steps' x leaves, or theta / c, whose gradient is then summed over the steps)."""
        r, solver = self.rollout, self.rollout.solver
        xs = inputs if states is None else [states[i].x for i in steps]
        b = xs[0].shape[0]
        with torch.enable_grad():
            x_in = torch.cat([solver.model_input(i, x) for i, x in zip(steps, xs)])
            t = torch.tensor([solver.timestep(i) for i in steps for _ in range(b)], dtype=x_in.dtype)
            cond = None if r.cond is None else torch.cat([r.cond] * len(steps))
            m = r.call(x_in, t.to(x_in.device), keep=True, cond=cond, evals=len(steps))
            grads = torch.autograd.grad(m, inputs, torch.cat(cots), allow_unused=True)
        r.calls.bwd += len(steps)
        return [torch.zeros_like(v) if gr is None else gr for v, gr in zip(inputs, grads)]


def neumann_terms(K: int, tau: float, first: int) -> int:
    """Terms computed: undamped, those past first - 1 vanish (nilpotent); damped, all K change the result."""
    return min(K, first - 1) if tau == 1 else K


@dataclasses.dataclass
class Neumann(SweepEstimator):
    """K Neumann terms beyond SDO (K = 0: SDO wrt x_N / x_k, sdo-all wrt theta / c; K >= N-1: exact), damped
    by tau in (0, 1]. `batched` stacks each term's N-1 VJPs into one network call (default: on for CUDA,
    off otherwise); the model must then accept one timestep per sample."""

    name = "neumann"
    exact = False  # exact only for K >= N-1 and tau = 1
    supported_wrt = ("latent", "intermediate", "params", "cond")
    K: int = 1
    batched: bool | None = None
    tau: float = 1.0

    def __post_init__(self):
        if not isinstance(self.K, int) or isinstance(self.K, bool) or self.K < 0:
            raise ValueError(f"neumann K must be an integer >= 0; got {self.K!r}")
        if self.batched not in (None, True, False):
            raise ValueError(f"neumann batched must be True, False or None (auto); got {self.batched!r}")
        if isinstance(self.tau, bool) or not isinstance(self.tau, (int, float)) or not 0 < self.tau <= 1:
            raise ValueError(f"neumann tau must be a number in (0, 1]; got {self.tau!r}")

    def is_batched(self, problem) -> bool:
        """The batched option, resolved for the problem's device."""
        return problem.device.type == "cuda" if self.batched is None else self.batched

    def predict(self, problem):
        """N no-graph forwards; K terms of N-1 VJPs, then one VJP at x_first (wrt x) or N VJPs to the leaves
        (wrt theta, c), each after a recomputed forward; depth N + K + 1 (a term's VJPs are independent); the
        trajectory (x_i, m_i) is stored."""
        self.check(problem)
        first = first_step(problem)
        K = neumann_terms(self.K, self.tau, first)
        shared = problem.wrt in ("params", "cond")
        last = first if shared else 1
        vjps = K * (first - 1) + last
        batched = self.is_batched(problem)
        return Prediction(
            fwd_grad=0,
            fwd_nograd=prefix_forwards(problem) + first,
            fwd_recompute=vjps,
            bwd=vjps,
            depth=problem.steps + K + 1,
            memory="O(N|x|)",
            bwd_params=last * vjp_kind(problem),
            graphs=max(first - 1 if K > 0 else 1, last if shared else 1) if batched else 1,
            states=2 * first,
        )

    def make_sweep(self, rollout, history, first, leaves):
        sweep = NeumannSweep(rollout, history, first, leaves)
        sweep.K, sweep.tau = self.K, float(self.tau)
        sweep.batched = self.is_batched(rollout.problem)
        sweep.stats["batched"] = sweep.batched
        sweep.stats["neumann_terms"] = neumann_terms(self.K, sweep.tau, first)
        return sweep
