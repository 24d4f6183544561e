"""Estimators with a hand-written backward sweep over the sampler steps, wrapped as one autograd Function.

The forward runs the sampler without a graph (recording what the sweep needs); `finish` then
differentiates J through the Function, whose backward is the estimator's own sweep. Helpers here
are the pieces the sweeps share: the recorded trajectory, the VJP of one solver step with the network
output frozen (the linear chain, paper Eq. 18), and a network VJP.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ..loop import Rollout, finish
from ..problem import WRT
from .base import Estimator


def leaf(t: torch.Tensor | None) -> torch.Tensor | None:
    """A detached copy that requires grad (None stays None)."""
    return None if t is None else t.detach().requires_grad_(True)


def tensor_bytes(tensors) -> int:
    """Bytes of the given tensors (None skipped)."""
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@dataclass
class State:
    """Step i's input: x_i, the multistep history, and the network output m_i (no graph)."""

    i: int
    x: torch.Tensor
    history: tuple
    m: torch.Tensor

    def nbytes(self) -> int:
        return tensor_bytes([self.x, self.m, *self.history])


def record(rollout: Rollout, x: torch.Tensor, history: tuple, first: int) -> tuple[torch.Tensor, dict]:
    """Run steps first..1 without a graph; (x_0, {i: State}) with every step's input stored."""
    states = {}
    with torch.no_grad():
        for i in range(first, 0, -1):
            m = rollout.network(i, x, keep=False)
            states[i] = State(i, x, history, m)
            x, history = rollout.solver.step(i, x, m, history, rollout.noise(i))
    return x, states


def frozen_step_vjp(rollout: Rollout, s: State, g_x: torch.Tensor, g_h: tuple) -> tuple:
    """VJP of Phi_i with m_i frozen: cotangents of (x_{i-1}, history out) -> of (x_i, m_i, history in)."""
    with torch.enable_grad():
        x, m = leaf(s.x), leaf(s.m)
        hist = tuple(leaf(h) for h in s.history)
        out, hout = rollout.solver.step(s.i, x, m, hist, rollout.noise(s.i))
        outs, cots = [out], [g_x]
        for h, g in zip(hout, g_h):
            if h is not None and g is not None and h.requires_grad:
                outs.append(h)
                cots.append(g)
        ins = [x, m, *(h for h in hist if h is not None)]
        grads = torch.autograd.grad(outs, ins, cots, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(ins, grads)]
    it = iter(grads[2:])
    g_hist = tuple(None if h is None else next(it) for h in hist)
    return grads[0], grads[1], g_hist


def network_vjp(rollout: Rollout, i: int, x: torch.Tensor, g_m: torch.Tensor, inputs: list) -> list:
    """g_m^T dm_i/d(inputs) for m_i = f(x, t_i, c) (x may be one of the inputs): one forward with a graph
    and one VJP."""
    with torch.enable_grad():
        m = rollout.network(i, x, keep=True)
        grads = torch.autograd.grad(m, inputs, g_m, allow_unused=True)
    rollout.calls.bwd += 1
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]


def accumulate(total: list | None, grads: list) -> list:
    """Elementwise sum of two gradient lists (total None: start from grads)."""
    return list(grads) if total is None else [a + b for a, b in zip(total, grads)]


class _SweepFunction(torch.autograd.Function):
    """x_first -> x_0 by `sweep.forward`; backward by `sweep.backward` (also gives the leaves' grads)."""

    @staticmethod
    def forward(ctx, sweep, x, *leaves):
        ctx.sweep = sweep
        return sweep.forward(x)

    @staticmethod
    def backward(ctx, g):
        g_x, g_leaves = ctx.sweep.backward(g)
        ctx.sweep = None
        return (None, g_x if ctx.needs_input_grad[1] else None, *g_leaves)


@dataclass
class Sweep:
    """One call's state: the rollout, the first differentiated step and the leaves (theta or c)."""

    rollout: Rollout
    history: tuple
    first: int
    leaves: list
    stats: dict = field(default_factory=dict)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, g: torch.Tensor) -> tuple[torch.Tensor | None, list]:
        raise NotImplementedError


@dataclasses.dataclass
class SweepEstimator(Estimator):
    """An estimator whose backward is a Sweep; subclasses set `supported_wrt` and `make_sweep`."""

    supported_wrt = WRT

    def check(self, problem) -> None:
        """Raise ValueError for a wrt (or sampler) this estimator does not support."""
        if problem.wrt not in self.supported_wrt:
            raise ValueError(
                f"estimator {self.name!r} does not support wrt={problem.wrt!r}; "
                f"supported: {', '.join(self.supported_wrt)}"
            )

    def make_sweep(self, rollout, history, first, leaves) -> Sweep:
        raise NotImplementedError

    def forward(self, problem) -> tuple[Rollout, torch.Tensor, dict, Sweep]:
        """The forward pass alone: (rollout, x_0 whose backward is the sweep, leaves, sweep)."""
        self.check(problem)
        rollout = Rollout(problem)
        x, history, first, leaves = rollout.start()
        shared = list(leaves.values()) if problem.wrt in ("params", "cond") else []
        sweep = self.make_sweep(rollout, history, first, shared)
        return rollout, _SweepFunction.apply(sweep, x, *shared), leaves, sweep

    def estimate(self, problem):
        rollout, x0, leaves, sweep = self.forward(problem)
        return finish(rollout, x0, leaves, **sweep.stats)
