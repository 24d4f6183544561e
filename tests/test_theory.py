"""Theory beside measurement: every registered estimator's predicted NFE and FLOPs equal what it does."""

import pytest
import torch
from conftest import make_problem

import sdo
from sdo.measure import count_flops
from sdo.theory import predict, predicted_row, unit_flops

N = 4
CHEAP = {"spsa": {"samples": 2}}  # S = 2, not 16: the prediction is linear in S and 2 S N forwards stay few


def supported(estimator, problem) -> bool:
    """False when the estimator rejects this problem (ValueError) both in predict and in a call."""
    try:
        estimator.predict(problem)
        return True
    except ValueError:
        with pytest.raises(ValueError):
            estimator(problem)
        return False


@pytest.fixture(scope="module")
def problems():
    out = {}
    for wrt in ("latent", "params"):
        problem = make_problem("unet-tiny", steps=N, wrt=wrt, dtype=torch.float32)
        out[wrt] = problem, unit_flops(problem)
    return out


@pytest.mark.parametrize("wrt", ["latent", "params"])
@pytest.mark.parametrize("name", sdo.estimators.names())
def test_predicted_nfe_and_flops_equal_the_measured(name, wrt, problems):
    """Every registered estimator (new ones included) must implement predict(); its NFE must match the
    call's counts exactly and its FLOPs (per-call costs measured on one step) FlopCounterMode's within 2 %."""
    problem, unit = problems[wrt]
    estimator = sdo.estimators.get(name, **CHEAP.get(name, {}))
    if not supported(estimator, problem):
        pytest.skip(f"{name} does not support wrt={wrt}")
    pred = estimator.predict(problem)
    box = []
    flops = count_flops(lambda: box.append(estimator(problem)))
    measured = {k: v for k, v in box[0].stats.items() if k.startswith("nfe_")}
    assert measured == pred.nfe()
    assert flops == pytest.approx(pred.flops(unit), rel=0.02)


def test_depth_and_memory_of_the_named_cases():
    """Sequential depth: BPTT 2N, SDO N + 1, batched Neumann N + K + 1, checkpoint 2N; classes in N."""
    problem = make_problem("gmm", steps=6)
    n = problem.steps
    cases = {
        ("bptt", ()): (2 * n, "O(N)"),
        ("sdo", ()): (n + 1, "O(1)"),
        ("neumann", (("K", 2), ("batched", True))): (n + 3, "O(N|x|)"),
        ("checkpoint", (("segment", 2),)): (2 * n, "O(N/k)"),
        ("truncated", (("K", 2),)): (n + 2, "O(K)"),
    }
    for (name, opts), (depth, memory) in cases.items():
        pred = sdo.estimators.get(name, **dict(opts)).predict(problem)
        assert (pred.depth, pred.memory) == (depth, memory), name


def test_flops_ratio_to_bptt_and_the_row():
    problem = make_problem("gmm", steps=5)
    assert predict("bptt", problem).flops_ratio(predict("bptt", problem)) == 1.0
    row = predicted_row("sdo", problem)
    assert row["predicted_flops_ratio_to_bptt"] == pytest.approx((5 + 1) / (5 + 5))
    assert (row["predicted_bwd"], row["predicted_depth"]) == (1, 6)


def test_predict_does_not_advance_a_seeded_draw():
    """SDO wrt theta draws i'; predicting first must not change which step the call then uses."""
    problem = make_problem("mlp", steps=6, wrt="params")
    fresh, peeked = sdo.estimators.get("sdo"), sdo.estimators.get("sdo")
    peeked.predict(problem)
    assert peeked(problem).stats["retained"] == fresh(problem).stats["retained"]
