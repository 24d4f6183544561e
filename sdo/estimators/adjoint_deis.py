"""The adjoint solved with the sampler's own first-order exponential integrator (AdjointDEIS-1).

In the coordinates of adjoint_coords (VP: s = sigma/alpha, x_bar = x/alpha; flow: s = sigma, x_bar = x) the
forward step of DDIM / flow-Euler is x_bar_{i-1} = x_bar_i + h_i F(x_bar_i, s_i), h_i = s_{i-1} - s_i, and
the first-order exponential integrator of the adjoint ODE da/ds = -J_F^T a is
    a_i = a_{i-1} + h_i J_F(x_bar*, s*)^T a_{i-1},   g_theta += h_i (dF/dtheta)(x_bar*, s*)^T a_{i-1}.
The discrete adjoint of the sampler (BPTT) is this update with (x_bar*, s*) = (x_bar_i, s_i), the forward
step's input. AdjointDEIS-1 (Blasingame & Liu 2024) evaluates at the backward step's start, (x_bar_{i-1},
s_{i-1}), with states rebuilt by the explicit inversion x_bar_i ~ x_bar_{i-1} - h_i F(x_bar_{i-1}, s_{i-1}):
O(h) per step, O(1/N) overall. `states` chooses where the VJP is taken:
  'inversion'   AdjointDEIS-1: O(1) memory, N forwards + N VJPs; converges O(1/N).
  'fixed-point' x_bar_i from `iterations` fixed-point sweeps of the implicit inversion x_bar_i =
                x_bar_{i-1} - h_i F(x_bar_i, s_i), VJP at (x_bar_i, s_i): O(1) memory, exact in the limit.
  'stored'      x_bar_i kept from the forward pass: O(N |x|) memory; equals BPTT (the discrete adjoint).
"""

from __future__ import annotations

import dataclasses

import torch

from ..loop import Rollout
from ..result import GradResult
from ..theory import Prediction, vjp_kind
from .adjoint import check_adjoint_problem
from .adjoint_coords import Coords, sampler_grid
from .base import Estimator

DEIS_STATES = ("inversion", "fixed-point", "stored")
EULER_SAMPLERS = {"vp": ("ddim", "diffusers-ddim"), "flow": ("ddim", "flow-euler")}


@dataclasses.dataclass
class AdjointDEIS(Estimator):
    """The first-order exponential-integrator adjoint matched to DDIM / flow-Euler (see module docstring)."""

    name = "adjoint-deis"
    exact = False  # exact only with states='stored'
    states: str = "inversion"
    iterations: int = 3

    def __post_init__(self):
        if self.states not in DEIS_STATES:
            raise ValueError(f"unknown adjoint-deis states {self.states!r}; valid: {', '.join(DEIS_STATES)}")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"adjoint-deis iterations must be an integer >= 1; got {self.iterations!r}")

    def check(self, problem) -> None:
        """Raise ValueError unless the sampler is a first-order exponential integrator we match."""
        check_adjoint_problem(problem, "adjoint-deis")
        valid = EULER_SAMPLERS[problem.model.schedule.kind]
        if problem.sampler.name not in valid:
            raise ValueError(
                f"adjoint-deis matches first-order samplers; for this model use one of: {', '.join(valid)} "
                f"(got {problem.sampler.name!r})"
            )

    def predict(self, problem) -> Prediction:
        """N no-graph forwards; backward: per step one forward with a graph and one VJP (plus `iterations`
        no-graph forwards for fixed-point), all sequential. Memory O(1), or N + 1 states when stored."""
        self.check(problem)
        N = problem.steps
        sweeps = self.iterations * N if self.states == "fixed-point" else 0
        return Prediction(
            fwd_grad=N,
            fwd_nograd=N + sweeps,
            fwd_recompute=0,
            bwd=N,
            depth=3 * N + sweeps,
            memory="O(N|x|)" if self.states == "stored" else "O(1)",
            bwd_params=N * vjp_kind(problem),
            states=N + 1 if self.states == "stored" else 1,
        )

    def estimate(self, problem) -> GradResult:
        self.check(problem)
        rollout = Rollout(problem)
        x, history, first, leaves = rollout.start()
        times, s = sampler_grid(problem, first)
        coords = Coords(problem, dict(zip(s[:-1], times)))
        stored = [x.detach()]
        with torch.no_grad():
            for i in range(first, 0, -1):
                x, history = rollout.step(i, stored[-1], history, keep=False)
                stored.append(x.detach())
        x0 = stored[-1]
        loss, a = self._loss_and_cotangent(problem, x0)  # alpha(s_0) = 1: a_bar_0 = dJ/dx_0
        theta = {k: v for k, v in leaves.items() if k != "latent"}
        grads = {k: torch.zeros_like(v) for k, v in theta.items()}
        x_bar = x0
        for i in range(1, first + 1):  # undo forward step i: x_bar_i -> x_bar_{i-1}
            h = s[first - i + 1] - s[first - i]  # h_i = s_{i-1} - s_i < 0
            point, s_pt, t_pt = self._vjp_point(rollout, coords, stored, x_bar, i, s, times, first)
            F, vjps = self._vjp(rollout, coords, point, s_pt, t_pt, a, list(theta.values()))
            x_bar = x_bar - h * F  # inversion; for fixed-point one more sweep (unused by 'stored')
            a = a + h * vjps[0]
            for k, v in zip(theta, vjps[1:]):
                grads[k] += h * v
        if "latent" in leaves:
            grads = {"latent": problem.solver.init_scale * a / coords.alpha(s[0])}
        return self._result(rollout, grads, loss, x0)

    def _loss_and_cotangent(self, problem, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = x0.detach().requires_grad_(True)
        loss = problem.loss(leaf)
        if not loss.requires_grad:
            return loss.detach(), torch.zeros_like(leaf)
        return loss.detach(), torch.autograd.grad(loss, leaf)[0]

    def _vjp_point(self, rollout, coords, stored, x_bar, i, s, times, first):
        """(x_bar*, s*, t*) where step i's VJP is taken."""
        s_i, s_prev, t_i = s[first - i], s[first - i + 1], times[first - i]
        if self.states == "stored":
            return stored[first - i] / coords.alpha(s_i), s_i, t_i
        if self.states == "inversion":
            return x_bar, s_prev, coords.timestep(s_prev)
        guess = x_bar
        with torch.no_grad():
            for _ in range(self.iterations):
                m = rollout.call(coords.alpha(s_i) * guess, t_i, keep=False)
                guess = x_bar - (s_prev - s_i) * coords.field(m, coords.alpha(s_i) * guess, s_i)
        return guess, s_i, t_i

    def _vjp(self, rollout, coords, point, s_pt, t_pt, a, theta):
        """F at the point, and a^T dF/d(x_bar, theta...) (zeros where F does not depend on a leaf)."""
        leaf = point.detach().requires_grad_(True)
        with torch.enable_grad():
            x = coords.alpha(s_pt) * leaf
            F = coords.field(rollout.call(x, t_pt, keep=True), x, s_pt)
            inputs = [leaf, *theta]
            raw = torch.autograd.grad(F, inputs, a, allow_unused=True)
        vjps = [torch.zeros_like(v) if g is None else g for v, g in zip(inputs, raw)]
        return F.detach(), vjps

    def _result(self, rollout, grads, loss, x0) -> GradResult:
        finite = torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads.values())
        stats = {"status": "ok" if finite else "nonfinite", "states": self.states}
        if self.states == "fixed-point":
            stats["iterations"] = self.iterations
        stats.update(rollout.calls.as_dict())
        return GradResult(grads, float(loss), x0, stats)
