"""McCallum-Foster reversible coupling around any explicit sampler step (McCallum & Foster 2024, the
coupling of the Rex solvers): a (y, z) pair with parameter lam in (0, 1],

    y_{i-1} = lam y_i + (1 - lam) z_i + Psi_i(z_i)          Psi_i(u) = Phi_i(u, f(u, t_i)) - u
    z_{i-1} = z_i - Psi_i^-(y_{i-1})                         Psi_i^-: the step back from t_{i-1} to t_i

with y_N = z_N = x_N and x_0 = y_0. Every step is inverted algebraically in backward, so only (y_0, z_0)
are stored (O(1) in N) and each network call is made once more with its VJP.

The sampler's step with the multistep history fixed is affine, Phi_i(x, m) = A_i x + B_i m, so A_i and
B_i are read from the sampler once per call. The step back solves that step for its input with the
network output taken at the known end point, (y - B_i f(y, t_{i-1})) / A_i: for epsilon-DDIM, Euler and
flow-Euler this is the solver run backwards (DDIM inversion). At the last step t_0 is the clean end of the
grid, which no grid time names: the network is called there at the first training time with sigma > 0
(timestep 0 for VP schedules, 1 for flow ones, where sigma = 0 leaves epsilon undefined), input unscaled.

Multistep samplers (dpm++2m): a history holds outputs from states older than the pair being inverted,
which O(1) inversion cannot rebuild, so no history is coupled: every increment is the sampler's
first-order step (DPM-Solver++(1), the 2M step with a vanishing difference term).
"""

from __future__ import annotations

import dataclasses

import torch

from ..theory import Prediction, first_step, prefix_forwards, vjp_kind
from .sweep import Sweep, SweepEstimator, accumulate, leaf

AFFINE_RTOL = 1e-5  # diffusers computes some steps in float32


def first_order_step(solver, i: int, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Phi_i(x, m) with no multistep term: a history equal to the step's own converted output."""
    history = solver.initial_history()
    if history:
        zeros = tuple(torch.zeros_like(x) for _ in history)
        current = solver.step(i, x, m, zeros)[1][-1]
        history = tuple(current for _ in history)
    return solver.step(i, x, m, history)[0]


def step_coefficients(solver, i: int, dtype=torch.float64) -> tuple[float, float]:
    """(A_i, B_i) with the sampler's first-order step Phi_i(x, m) = A_i x + B_i m."""
    one, zero = torch.ones(1, dtype=dtype), torch.zeros(1, dtype=dtype)
    solver.model_input(i, one)  # diffusers' Euler warns unless its input scaling ran before step
    A = float(first_order_step(solver, i, one, zero)[0])
    B = float(first_order_step(solver, i, zero, one)[0])
    return A, B


def check_affine(solver, coef: dict, dtype=torch.float64) -> None:
    """ValueError unless every step equals A_i x + B_i m on a random probe."""
    g = torch.Generator().manual_seed(0)
    x, m = torch.randn(2, 8, generator=g, dtype=dtype)
    for i, (A, B) in coef.items():
        if A == 0:
            raise ValueError(f"reversible-mf: step {i} does not depend on x_i, so it cannot be inverted")
        out = first_order_step(solver, i, x, m)
        expected = A * x + B * m
        if (out - expected).abs().max() > AFFINE_RTOL * (1 + expected.abs().max()):
            raise ValueError(f"reversible-mf needs steps affine in (x_i, m_i); step {i} is not")


@dataclasses.dataclass
class Coupling:
    """The coupled step's pieces for one problem: coefficients, lam and the two network calls."""

    rollout: object
    lam: float
    coef: dict

    @classmethod
    def build(cls, rollout, first: int, lam: float) -> Coupling:
        solver = rollout.solver
        if solver.stochastic:
            raise ValueError("reversible-mf needs a deterministic sampler (eta = 0)")
        coef = {i: step_coefficients(solver, i) for i in range(1, first + 1)}
        check_affine(solver, coef)
        return cls(rollout, lam, coef)

    def net_start(self, i: int, u, keep: bool):
        """f(u, t_i): the network at the step's start time."""
        return self.rollout.network(i, u, keep)

    def net_end(self, i: int, u, keep: bool):
        """f(u, t_{i-1}): the network at the step's end time (at t_0 the first training time with sigma > 0)."""
        if i > 1:
            return self.rollout.network(i - 1, u, keep)
        kind = self.rollout.problem.model.schedule.kind
        return self.rollout.call(u, 1.0 if kind == "flow" else 0.0, keep)

    def forward_part(self, i: int, z, keep: bool = False):
        """(1 - lam) z + Psi_i(z): what z_i adds to lam y_i to give y_{i-1}."""
        A, B = self.coef[i]
        return (1 - self.lam) * z + (A - 1) * z + B * self.net_start(i, z, keep)

    def back_increment(self, i: int, y, keep: bool = False):
        """Psi_i^-(y) = (y - B_i f(y, t_{i-1})) / A_i - y: the step from t_{i-1} back to t_i."""
        A, B = self.coef[i]
        return (y - B * self.net_end(i, y, keep)) / A - y

    def step(self, i: int, y, z, keep: bool = False):
        """(y_i, z_i) -> (y_{i-1}, z_{i-1})."""
        y_new = self.lam * y + self.forward_part(i, z, keep)
        return y_new, z - self.back_increment(i, y_new, keep)

    def invert(self, i: int, y_new, z_new):
        """The exact inverse of `step` (no graph): (y_{i-1}, z_{i-1}) -> (y_i, z_i)."""
        z = z_new + self.back_increment(i, y_new)
        return (y_new - self.forward_part(i, z)) / self.lam, z


def coupled_sample(coupling: Coupling, x, first: int, keep: bool = False):
    """The coupled sampler from y = z = x over steps first..1: (y_0, z_0); x_0 is y_0."""
    y = z = x
    for i in range(first, 0, -1):
        y, z = coupling.step(i, y, z, keep)
    return y, z


class ReversibleMFSweep(Sweep):
    """Forward without a graph keeping (y_0, z_0); backward inverts each step and makes one VJP per
    network call, reusing that call's output for the inversion (2 forwards + 2 VJPs per step)."""

    lam: float = 0.9

    def forward(self, x):
        self.coupling = Coupling.build(self.rollout, self.first, self.lam)
        with torch.no_grad():
            self.y0, self.z0 = coupled_sample(self.coupling, x, self.first)
        return self.y0.clone()

    def backward(self, g):
        y, z, lam = self.y0, self.z0, self.lam
        g_y, g_z, total = g, torch.zeros_like(g), None
        for i in range(1, self.first + 1):
            inc, grads = self._vjp(self.coupling.back_increment, i, y, -g_z)
            z = z + inc  # undo z_{i-1} = z_i - Psi^-(y_{i-1})
            g_y, total = g_y + grads[0], self._add(total, grads[1:])
            part, grads = self._vjp(self.coupling.forward_part, i, z, g_y)
            y = (y - part) / lam  # undo y_{i-1} = lam y_i + part(z_i)
            g_z, g_y, total = g_z + grads[0], lam * g_y, self._add(total, grads[1:])
        self.y0 = self.z0 = self.coupling = None
        return g_y + g_z, total or []

    def _vjp(self, fn, i, u, cot):
        """fn(i, u) without a graph on its output, and the VJP of cot through it wrt (u, leaves)."""
        inputs = [leaf(u), *self.leaves]
        with torch.enable_grad():
            out = fn(i, inputs[0], keep=True)
            grads = torch.autograd.grad(out, inputs, cot, allow_unused=True)
        self.rollout.calls.bwd += 1
        return out.detach(), [torch.zeros_like(t) if gr is None else gr for t, gr in zip(inputs, grads)]

    def _add(self, total, grads):
        return accumulate(total, grads) if self.leaves else total


@dataclasses.dataclass
class ReversibleMF(SweepEstimator):
    """McCallum-Foster coupled sampler around the problem's sampler, parameter lam in (0, 1]; the exact
    gradient of that coupled sampler with O(1) stored states in N. Default lam 0.9: at N = 10 the best for
    DDIM on the mixture and on fmnist-ddpm; 0.999, McCallum-Foster's neural-ODE choice, is far from the
    plain sampler there (results/analysis/reversible_lambda.csv)."""

    name = "reversible-mf"
    exact = False  # exact gradient of the coupled sampler, which is not the problem's sampler
    supported_wrt = ("latent", "intermediate", "params", "cond")
    lam: float = 0.9

    def __post_init__(self):
        if isinstance(self.lam, bool) or not isinstance(self.lam, (int, float)) or not 0 < self.lam <= 1:
            raise ValueError(f"reversible-mf lam must be a number in (0, 1]; got {self.lam!r}")

    def predict(self, problem):
        """2 no-graph forwards per step; in backward each is recomputed with its VJP; (y_0, z_0) stored.
        Depth: 2N forwards, then the inversion chain with the VJPs one behind (4N + 1)."""
        self.check(problem)
        calls = 2 * first_step(problem)
        return Prediction(
            fwd_grad=0,
            fwd_nograd=prefix_forwards(problem) + calls,
            fwd_recompute=calls,
            bwd=calls,
            depth=prefix_forwards(problem) + 2 * calls + 1,
            memory="O(1)",
            bwd_params=calls * vjp_kind(problem),
            graphs=1,
            states=2,
        )

    def make_sweep(self, rollout, history, first, leaves):
        sweep = ReversibleMFSweep(rollout, history, first, leaves)
        sweep.lam = float(self.lam)
        return sweep
