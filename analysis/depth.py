"""Gradient norms vs backpropagation depth: ||dJ/dx_i|| along the sampler for full BPTT, and the same
cotangent carried by the linear chain only (network outputs frozen, as SDO does; paper Eq. 18).

Norms are also given in the scale-free coordinates x_bar = x / alpha (||dJ/dx_bar_i|| = alpha_i ||dJ/dx_i||),
where DDIM's linear chain is the identity, so what remains is the network's own contraction or growth."""

from __future__ import annotations

import pandas as pd

import sdo
from sdo.loop import Rollout


def cotangent_norms(problem: sdo.Problem, through_network: bool = True) -> dict[int, float]:
    """{i: ||dJ/dx_i||} for i = N..0, backpropagating through every network call (BPTT) or none."""
    rollout = Rollout(problem)
    x = (rollout.solver.init_scale * problem.latent).clone().requires_grad_(True)
    xs, history = {problem.steps: x}, rollout.solver.initial_history()
    with sdo.loop.trainable(problem):
        for i in range(problem.steps, 0, -1):
            x, history = rollout.step(i, x, history, keep=through_network)
            x.retain_grad()
            xs[i - 1] = x
        loss = problem.objective(problem.model.decode(x))
        loss.backward()
    return {i: float(v.grad.norm()) if v.grad is not None else float("nan") for i, v in xs.items()}


def alpha_at(problem: sdo.Problem, i: int) -> float:
    """alpha_{t_i} of x_i = alpha x_0 + sigma eps (1 at the clean endpoint i = 0)."""
    return 1.0 if i == 0 else problem.model.schedule.alpha_sigma(problem.solver.timestep(i))[0]


def depth_profile(problem: sdo.Problem) -> pd.DataFrame:
    """Step i, BPTT and linear-chain cotangent norms in x, and the same in x_bar = x / alpha."""

    full, chain = cotangent_norms(problem, True), cotangent_norms(problem, False)
    steps = list(full)
    alpha = [alpha_at(problem, i) for i in steps]
    df = pd.DataFrame({"step": steps, "alpha": alpha, "bptt": list(full.values())})
    df["linear_chain"] = [chain[i] for i in steps]
    df["bptt_xbar"] = df["bptt"] * df["alpha"]
    df["linear_chain_xbar"] = df["linear_chain"] * df["alpha"]
    return df
