"""neumann: K = 0 is SDO, K = N-1 is BPTT, the error falls with K, batched and sequential agree."""

import math

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


@pytest.mark.parametrize(
    "model,wrt,kw",
    [("mlp", "params", {}), ("gmm", "params", {}), ("gmm", "cond", {"conditional": True})],
)
def test_theta_and_c_endpoints_are_sdo_all_and_bptt(model, wrt, kw):
    """wrt theta / c the series acts on the m-cotangents: K = 0 is sdo-all (Eq. 16 summed), K = N-1 exact."""
    N = 6
    problem = make_problem(model, steps=N, wrt=wrt, **kw)
    bptt, sdo_all = sdo.grad(problem, "bptt").flat(), sdo.grad(problem, "sdo-all").flat()
    assert rel(bptt, sdo_all) > 1e-3
    assert rel(sdo.grad(problem, "neumann", K=0).flat(), sdo_all) <= 1e-12
    assert rel(sdo.grad(problem, "neumann", K=N - 1).flat(), bptt) <= 1e-10
    assert rel(sdo.grad(problem, "neumann", K=N - 2).flat(), bptt) > 1e-10
    for batched in (False, True):  # one VJP per step to the leaves, or one stacked call
        r = sdo.grad(problem, "neumann", K=2, batched=batched)
        assert r.stats["nfe_bwd"] == 2 * (N - 1) + N
    seq, bat = (sdo.grad(problem, "neumann", K=2, batched=b).flat() for b in (False, True))
    assert rel(bat, seq) <= 1e-10


def binomial_mixture(problem, K, tau):
    """sum_j Binomial(j; K, tau) * (undamped estimate with j terms): the damped series' closed form."""
    out = 0
    for j in range(K + 1):
        w = math.comb(K, j) * tau**j * (1 - tau) ** (K - j)
        out = out + w * sdo.grad(problem, "neumann", K=j).flat()
    return out


@pytest.mark.parametrize("wrt", ["latent", "params"])
def test_damping_is_a_binomial_average_of_the_undamped_terms(wrt):
    problem = make_problem("mlp", steps=5, wrt=wrt)
    for K, tau in ((3, 0.6), (7, 0.3)):  # K = 7 > N - 1: damped terms past N - 1 still move the estimate
        damped = sdo.grad(problem, "neumann", K=K, tau=tau)
        assert rel(damped.flat(), binomial_mixture(problem, K, tau)) <= 1e-10
        assert damped.stats["neumann_terms"] == K
    undamped = sdo.grad(problem, "neumann", K=3).flat()
    assert rel(sdo.grad(problem, "neumann", K=3, tau=1.0).flat(), undamped) == 0
    assert rel(sdo.grad(problem, "neumann", K=3, tau=0.6).flat(), undamped) > 1e-6


def test_damped_series_converges_to_bptt():
    problem = make_problem("mlp", steps=4)
    bptt = sdo.grad(problem, "bptt").flat()
    assert rel(sdo.grad(problem, "neumann", K=3, tau=0.5).flat(), bptt) > 1e-3  # not exact at K = N-1
    assert rel(sdo.grad(problem, "neumann", K=80, tau=0.5).flat(), bptt) <= 1e-10


def test_bad_options():
    for tau in (0.0, 1.5, True):
        with pytest.raises(ValueError, match="tau"):
            sdo.estimators.get("neumann", tau=tau)
    with pytest.raises(ValueError, match="K must be an integer >= 0"):
        sdo.estimators.get("neumann", K=-1)
    with pytest.raises(ValueError, match="batched"):
        sdo.estimators.get("neumann", batched="yes")
    with pytest.raises(ValueError, match="valid: K, batched, tau"):
        sdo.estimators.get("neumann", terms=2)
