"""sdo: gradient estimators for backpropagation through diffusion sampling, behind one interface.

problem = sdo.Problem(model=sdo.models.get("gmm"), sampler=sdo.samplers.get("ddim", steps=10),
                      objective=sdo.objectives.get("target-mse"), wrt="latent")
res = sdo.grad(problem, estimator="sdo")
"""

from __future__ import annotations

from . import estimators, measure, models, objectives, samplers
from .compare import compare
from .doctor import doctor
from .problem import WRT, Problem
from .result import GradResult, NetworkCalls


def grad(problem: Problem, estimator: str = "bptt", **options) -> GradResult:
    """The gradient of J wrt `problem.wrt` by estimator `estimator` (see sdo.estimators.names())."""
    return estimators.get(estimator, **options)(problem)


__all__ = [
    "WRT",
    "compare",
    "doctor",
    "GradResult",
    "NetworkCalls",
    "Problem",
    "estimators",
    "grad",
    "measure",
    "models",
    "objectives",
    "samplers",
]
__version__ = "0.1.0"
