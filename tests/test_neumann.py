"""neumann: K = 0 is SDO, K = N-1 is BPTT, the error falls with K, batched and sequential agree."""

import pytest
from conftest import make_problem

import sdo
from sdo.schedule import SD_SCHEDULE


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(
    "model,sampler,kw",
    [
        ("gmm", "ddim", {}),
        ("mlp", "ddim", {}),
        ("gmm", "ddim", {"prediction_type": "v_prediction"}),
        ("mlp", "dpm++2m", {}),  # multistep history: the linear chain carries it
        ("mlp", "ddim", {"sampler_options": {"eta": 1.0}}),
    ],
)
def test_endpoints_are_sdo_and_bptt(model, sampler, kw):
    N = 6
    problem = make_problem(model, sampler=sampler, steps=N, **kw)
    bptt, sdo_g = sdo.grad(problem, "bptt").flat(), sdo.grad(problem, "sdo").flat()
    tol = 1e-6 if sampler == "dpm++2m" else 1e-10  # diffusers' DPM-Solver computes in float32
    assert rel(bptt, sdo_g) > 1e-3  # the endpoints differ, so the checks below can fail
    assert rel(sdo.grad(problem, "neumann", K=0).flat(), sdo_g) <= tol
    assert rel(sdo.grad(problem, "neumann", K=N - 1).flat(), bptt) <= tol
    assert rel(sdo.grad(problem, "neumann", K=1).flat(), bptt) > tol
    if sampler != "dpm++2m":  # in float64 even the last term K = N-1 is needed
        assert rel(sdo.grad(problem, "neumann", K=N - 2).flat(), bptt) > tol
    assert rel(sdo.grad(problem, "neumann", K=50).flat(), bptt) <= tol  # terms past N-1 vanish


def test_intermediate_latent():
    problem = make_problem("mlp", steps=6, wrt="intermediate", intermediate_step=4)
    bptt = sdo.grad(problem, "bptt").flat()
    assert rel(sdo.grad(problem, "neumann", K=0).flat(), sdo.grad(problem, "sdo").flat()) <= 1e-10
    assert rel(sdo.grad(problem, "neumann", K=3).flat(), bptt) <= 1e-10


def test_error_falls_with_K_on_a_broad_mixture():
    """On a broad mixture (scale 1, SD schedule) the relative error falls monotonically in K."""
    N = 10
    problem = make_problem("gmm", steps=N, scale=1.0, schedule=SD_SCHEDULE)
    bptt = sdo.grad(problem, "bptt").flat()
    errs = [rel(sdo.grad(problem, "neumann", K=K).flat(), bptt) for K in range(N)]
    assert all(b < a for a, b in zip(errs, errs[1:-1])), errs
    assert errs[-1] <= 1e-10


def test_error_on_the_default_sharp_mixture_overshoots_then_falls():
    """Recorded behaviour on the default (scale 0.1) mixture: SDO's gradient is ~1e3 times too long, the
    partial sums overshoot (error peaks near K = 2) and then fall to exact; the tail is monotone."""
    N = 10
    problem = make_problem("gmm", steps=N)
    bptt = sdo.grad(problem, "bptt").flat()
    errs = [rel(sdo.grad(problem, "neumann", K=K).flat(), bptt) for K in range(N)]
    peak = max(range(N), key=errs.__getitem__)
    assert errs[0] > 100 and 1 <= peak <= 3
    assert all(b < a for a, b in zip(errs[peak:], errs[peak + 1 : -1])), errs


@pytest.mark.parametrize("model,kw", [("gmm", {}), ("mlp", {}), ("gmm", {"conditional": True})])
def test_batched_equals_sequential(model, kw):
    problem = make_problem(model, steps=6, batch=2, **kw)
    seq = sdo.grad(problem, "neumann", K=3, batched=False)
    bat = sdo.grad(problem, "neumann", K=3, batched=True)
    assert rel(bat.flat(), seq.flat()) <= 1e-10
    assert bat.stats["batched"] and not seq.stats["batched"]
    for r in (seq, bat):  # 3 terms x 5 VJPs + the VJP at x_N, each with its forward
        assert r.stats["nfe_bwd"] == 16 and r.stats["nfe_fwd_recompute"] == 16


def test_batched_default_follows_device():
    problem = make_problem(steps=3)
    assert sdo.grad(problem, "neumann").stats["batched"] is False


def test_bad_options():
    with pytest.raises(ValueError, match="supported: latent, intermediate"):
        sdo.grad(make_problem(wrt="params"), "neumann")
    with pytest.raises(ValueError, match="K must be an integer >= 0"):
        sdo.estimators.get("neumann", K=-1)
    with pytest.raises(ValueError, match="batched"):
        sdo.estimators.get("neumann", batched="yes")
    with pytest.raises(ValueError, match="valid: K, batched"):
        sdo.estimators.get("neumann", terms=2)
