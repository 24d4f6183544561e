"""Estimator presets configured as the public AdjointDPM and DOODL code ships them (paper Table 3),
registered beside the suite's own efficient configurations `adjoint` and `reversible`.

- `adjointdpm`: AdjointDPM's pixel-space DDPM code (github.com/HanshuYAN/AdjointDPM,
  ddpm_and_guided-diffusion/dpm_solver/node_solver.py and main.py) integrates the probability-flow ODE
  with torchdiffeq's `odeint_adjoint`, method `explicit_adams` on the sampler's time grid, rtol 0.05 and
  atol 0.0078 (its command-line defaults), the adjoint pass with the same settings. (Its Stable-Diffusion
  pipeline, adjoint/src/node_solver_noise.py, uses `euler` on the sigma grid: that is `adjoint`'s default.)
- `doodl`: DOODL (github.com/salesforce/DOODL, doodl.py) runs EDICT with mixing p = 0.93 as memcnn
  invertible layers without kept inputs: in the backward pass each step is first inverted without a
  graph (two network calls), then recomputed with a graph (two more) and differentiated. `reversible`
  instead reuses the inversion's network output for the VJP (two network calls per step fewer).
"""

from __future__ import annotations

import dataclasses

import torch

import sdo
from sdo.estimators import Adjoint, Reversible, register_estimator
from sdo.estimators.adjoint import ADJOINT_METHODS, check_adjoint_problem
from sdo.estimators.reversible import ReversibleSweep, coupled_step, invert_step
from sdo.estimators.sweep import accumulate
from sdo.theory import Prediction, vjp_kind

DOODL_MIX = 0.93
ADAMS = ("explicit_adams", "implicit_adams")  # torchdiffeq's fixed-grid Adams methods


@dataclasses.dataclass
class AdjointDPM(Adjoint):
    """`adjoint` as AdjointDPM ships it: odeint_adjoint, explicit Adams on the grid, rtol 0.05, atol 0.0078."""

    name = "adjointdpm"
    method: str = "explicit_adams"
    rtol: float = 0.05
    atol: float = 0.0078

    def __post_init__(self):
        valid = (*ADJOINT_METHODS, *ADAMS)
        if self.method not in valid:
            raise ValueError(f"unknown adjointdpm method {self.method!r}; valid: {', '.join(valid)}")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"adjointdpm rtol and atol must be > 0; got rtol={self.rtol}, atol={self.atol}")

    def predict(self, problem):
        """explicit Adams in torchdiffeq: RK4 (4 evaluations) on the first two steps, then 1 per step; the
        adjoint pass integrates each of the N grid intervals separately, so each restarts with RK4 (4N
        evaluations, each a forward with a graph and a VJP, chained). odeint keeps the N + 1 grid states."""
        check_adjoint_problem(problem, "adjointdpm")
        if self.method != "explicit_adams":
            return super().predict(problem)
        N = problem.steps
        fwd, bwd = 4 * min(N, 2) + max(N - 2, 0), 4 * N
        return Prediction(
            fwd_grad=0,
            fwd_nograd=fwd,
            fwd_recompute=bwd,
            bwd=bwd,
            depth=fwd + 2 * bwd,
            memory="O(N|x|)",
            bwd_params=bwd * vjp_kind(problem),
            graphs=1,
            states=N + 1,
        )


class RecomputingSweep(ReversibleSweep):
    """memcnn-style backward: invert step i (no graph), recompute it with a graph, one VJP of the step."""

    def backward(self, g):
        x, y, p = self.x0, self.y0, self.mix
        g_x, g_y, total = g, torch.zeros_like(g), None
        for i in range(1, self.first + 1):
            with torch.no_grad():
                x, y = invert_step(self.rollout, i, x, y, p)
            inputs = [x.detach().requires_grad_(True), y.detach().requires_grad_(True), *self.leaves]
            with torch.enable_grad():
                x_new, y_new = coupled_step(self.rollout, i, inputs[0], inputs[1], p, keep=True)
                grads = torch.autograd.grad((x_new, y_new), inputs, (g_x, g_y), allow_unused=True)
            self.rollout.calls.bwd += 2
            grads = [torch.zeros_like(t) if gr is None else gr for t, gr in zip(inputs, grads)]
            g_x, g_y = grads[0], grads[1]
            if self.leaves:
                total = accumulate(total, grads[2:])
        self.x0 = self.y0 = None
        return g_x + g_y, total or []


@dataclasses.dataclass
class Doodl(Reversible):
    """EDICT/DOODL coupled sampler (p = 0.93) with DOODL's memcnn backward: invert, recompute, VJP."""

    name = "doodl"
    mix: float = DOODL_MIX

    def predict(self, problem):
        """2N no-graph forwards; backward per step: the inversion (2 forwards), the recomputation with a
        graph (2 more) and 2 chained VJPs; inversions run ahead of the VJP chain (depth 2N + 4 + 2N)."""
        self.check(problem)
        N = problem.steps
        return Prediction(
            fwd_grad=0,
            fwd_nograd=2 * N,
            fwd_recompute=4 * N,
            bwd=2 * N,
            depth=4 * N + 4,
            memory="O(1)",
            bwd_params=2 * N * vjp_kind(problem),
            graphs=2,
            states=2,
        )

    def make_sweep(self, rollout, history, first, leaves):
        sweep = RecomputingSweep(rollout, history, first, leaves)
        sweep.mix = float(self.mix)
        return sweep


PRESETS = {"adjointdpm": AdjointDPM, "doodl": Doodl}  # preset -> class; each configures a suite estimator
SDO_FLOOR = "sdo-floor"  # the suite's SDO at its memory floor (memory='floor'), measured beside plain sdo


def register() -> None:
    """Register the presets and sdo-floor (idempotent)."""
    for name, cls in PRESETS.items():
        if name not in sdo.estimators.names():
            register_estimator(name, cls)
    if SDO_FLOOR not in sdo.estimators.names():
        register_estimator(SDO_FLOOR, sdo.estimators.SDO, memory="floor")


register()
