"""tweedie: the gradient of J(D(x0_hat(x_t))) wrt x_t through one network call, x0_hat the one-step data
prediction (Tweedie's formula for an epsilon model) -- the guidance baseline of DPS, FreeDoM and universal
guidance. No sampling: wrt x_N it predicts from x_N at t_N, wrt x_k from x_k at t_k (x_k reached by the
sampler without a graph). wrt theta or c is refused: guidance differentiates the state, and x0_hat(x_N)
alone is no sample whose loss a parameter change would be judged by.
"""

from __future__ import annotations

import dataclasses

from ..loop import Rollout, finish
from ..samplers.ddim import predict_x0_eps
from ..theory import Prediction, prefix_forwards
from .base import Estimator

TWEEDIE_WRT = ("latent", "intermediate")


def data_prediction(rollout: Rollout, i: int, x, keep: bool = True):
    """x0_hat at step i: the network at (x_i, t_i) converted with the schedule's (alpha, sigma) at t_i; the
    network input is the sampler's (Euler's sigma-space x is rescaled to the VP x_t there)."""
    solver, model = rollout.solver, rollout.problem.model
    x_in, t = solver.model_input(i, x), solver.timestep(i)
    alpha, sigma = model.schedule.alpha_sigma(t)
    m = rollout.call(x_in, t, keep)
    return predict_x0_eps(m, x_in, alpha, sigma, model.prediction_type)[0]


@dataclasses.dataclass
class Tweedie(Estimator):
    """One network call with a graph at the first differentiated step; loss J(D(x0_hat)) (x0 is x0_hat)."""

    name = "tweedie"
    exact = False

    def check(self, problem) -> None:
        """ValueError for wrt theta or c."""
        if problem.wrt not in TWEEDIE_WRT:
            raise ValueError(
                f"estimator 'tweedie' does not support wrt={problem.wrt!r}; supported: "
                f"{', '.join(TWEEDIE_WRT)} (it differentiates the one-step prediction wrt the state it is made "
                "from; for theta or c use sdo-all or bptt)"
            )

    def estimate(self, problem):
        self.check(problem)
        rollout = Rollout(problem)
        x, _, first, leaves = rollout.start()
        x0_hat = data_prediction(rollout, first, x)
        return finish(rollout, x0_hat, leaves, tweedie_step=first)

    def predict(self, problem):
        """One forward with a graph and its VJP (after the no-graph prefix for wrt x_k)."""
        self.check(problem)
        return Prediction(
            fwd_grad=1,
            fwd_nograd=prefix_forwards(problem),
            fwd_recompute=0,
            bwd=1,
            depth=prefix_forwards(problem) + 2,
            memory="O(1)",
            graphs=1,
            states=0,
        )
