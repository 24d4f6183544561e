"""Graph-size measurements shared by the O(1)-memory estimator tests."""

from __future__ import annotations

from conftest import make_problem

import sdo
from sdo.loop import Rollout, trainable
from sdo.measure import saved_tensor_bytes


def graph_and_peak_bytes(estimator: str, steps: int):
    """(saved bytes of the graph at the start of backward, peak saved bytes held by live graphs over the whole
    call, the GradResult) on a small MLP problem wrt params."""
    problem = make_problem("mlp", steps=steps, wrt="params")
    est = sdo.estimators.get(estimator)
    with trainable(problem), saved_tensor_bytes() as at_backward:
        if estimator == "bptt":
            rollout = Rollout(problem)
            x, h, first, _ = rollout.start()
            x0, _ = rollout.run(x, h, first, 1, lambda i: True)
        else:
            _, x0, _, _ = est.forward(problem)
        problem.objective(x0)
    with saved_tensor_bytes() as live:
        res = est(problem)
    return at_backward.total, live.peak, res
