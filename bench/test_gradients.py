"""pytest-benchmark timings of one gradient (make benchmark writes results/pytest-benchmark.json).

Run: python -m pytest bench --benchmark-json=results/pytest-benchmark.json
These time; they assert only that the gradient is finite (targets live in results/README.md, not here).
"""

from __future__ import annotations

import os

import pytest

from bench.case import Context, finite, target
from bench.grid import FLOORS, Case

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = [("gmm", 10), ("unet-tiny", 10)]
ESTIMATORS = ["floor-sample", "floor-step", "sdo", "bptt", "checkpoint"]
_CTX = Context()


@pytest.mark.parametrize("wrt", ["latent", "params"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("model,steps", MODELS, ids=[m for m, _ in MODELS])
def test_gradient(benchmark, model, steps, estimator, wrt):
    """One gradient (or floor) of target-MSE through DDIM, wrt the initial latent or the weights."""
    case = Case(model, "ddim", steps, wrt, estimator)
    fn, _ = target(case, _CTX.problem(case))
    benchmark.extra_info.update(case.as_dict())
    result = benchmark.pedantic(fn, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update({k: v for k, v in result.stats.items() if k.startswith("nfe_")})
    assert estimator in FLOORS or finite(result)
