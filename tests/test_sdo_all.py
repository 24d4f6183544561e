"""sdo-all: Eq. 16 summed over every step equals the sum over i' of SDO's single-step gradient."""

import pytest
from conftest import make_problem
from memory_helpers import graph_and_peak_bytes

import sdo


def sdo_sum(problem):
    """sum_{i'=1..N} of SDO with S = {i'} (scale 1): N x the mean over i' of Eq. 20."""
    return sum(sdo.grad(problem, "sdo", step=i).flat() for i in range(1, problem.steps + 1))


@pytest.mark.parametrize(
    "model,sampler,wrt,kw",
    [
        ("gmm", "ddim", "params", {}),
        ("gmm", "ddim", "cond", {"conditional": True}),
        ("mlp", "ddim", "params", {}),
        ("gmm", "ddim", "params", {"prediction_type": "v_prediction"}),
        ("gmm", "dpm++2m", "params", {}),  # multistep history carries cotangents too
        ("mlp", "ddim", "params", {"sampler_options": {"eta": 1.0}}),  # stochastic, explicit noise
    ],
)
def test_equals_sum_of_sdo_over_steps(model, sampler, wrt, kw):
    problem = make_problem(model, sampler=sampler, steps=6, wrt=wrt, **kw)
    ref = sdo_sum(problem)
    res = sdo.grad(problem, "sdo-all")
    assert res.ok and ref.norm() > 1e-6
    tol = 1e-6 if sampler == "dpm++2m" else 1e-12  # diffusers' DPM-Solver computes in float32
    assert (res.flat() - ref).norm() <= tol * ref.norm()
    assert abs(res.loss - sdo.grad(problem, "bptt").loss) < 1e-12
    assert res.stats["nfe_fwd_nograd"] == 6 and res.stats["nfe_fwd_recompute"] == 6
    assert res.stats["nfe_bwd"] == 6 and res.stats["nfe_fwd_grad"] == 0


def test_differs_from_bptt_and_single_steps():
    problem = make_problem("mlp", steps=6, wrt="params")
    res = sdo.grad(problem, "sdo-all").flat()
    assert (res - sdo.grad(problem, "bptt").flat()).norm() > 1e-6 * res.norm()
    assert (res - 6 * sdo.grad(problem, "sdo", step=3).flat()).norm() > 1e-3 * res.norm()


def _memory(estimator, steps):
    graph, peak, res = graph_and_peak_bytes(estimator, steps)
    return graph, peak, res.stats.get("trajectory_bytes")


def test_saved_bytes_do_not_grow_with_steps():
    graph5, peak5, traj5 = _memory("sdo-all", 5)
    graph20, peak20, traj20 = _memory("sdo-all", 20)
    assert graph5 == graph20 and peak5 == peak20
    assert traj20 == 4 * traj5  # the stored trajectory (no graph) is O(N |x|), reported in stats
    assert _memory("bptt", 20)[1] > _memory("bptt", 5)[1]


def test_bad_wrt():
    with pytest.raises(ValueError, match="supported: params, cond"):
        sdo.grad(make_problem(wrt="latent"), "sdo-all")
    with pytest.raises(ValueError, match="valid: none"):
        sdo.estimators.get("sdo-all", step=3)
