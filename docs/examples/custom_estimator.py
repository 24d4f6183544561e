"""A new estimator: keep the graph of the first and the last network call (S = {N, 1})."""

import dataclasses

import sdo
from sdo.estimators import RetentionEstimator, register_estimator


@dataclasses.dataclass
class FirstAndLast(RetentionEstimator):
    """S = {first, 1}: the step at the differentiated variable and the last step."""

    def retained(self, problem, first):
        return {first, 1}


register_estimator("first-and-last", FirstAndLast)

if __name__ == "__main__":
    problem = sdo.Problem(
        sdo.models.get("gmm"), sdo.samplers.get("ddim", steps=8), sdo.objectives.get("target-mse")
    )
    res = sdo.grad(problem, "first-and-last")
    print(res.stats["estimator"], res.stats["retained"], res.stats["nfe_fwd_grad"])  # first-and-last [8, 1] 2
    print(sdo.compare(problem, ["sdo", "first-and-last"])[["estimator", "cosine", "rel_err"]])
