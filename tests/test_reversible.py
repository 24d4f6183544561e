"""reversible (EDICT/DOODL): exact inversion, the gradient of the coupled sampler, memory flat in N."""

import pytest
import torch
from conftest import make_problem
from memory_helpers import graph_and_peak_bytes

import sdo
from sdo.estimators.reversible import coupled_sample, invert_step
from sdo.loop import Rollout, finish, trainable


def coupled_bptt(problem, mix=0.93):
    """BPTT through the coupled sampler's plain forward (autograd keeps every step's graph)."""
    with trainable(problem):
        rollout = Rollout(problem)
        x, _, first, leaves = rollout.start()
        x0, _ = coupled_sample(rollout, x, first, mix, keep=True)
        return finish(rollout, x0, leaves)


def test_inverting_50_steps_recovers_the_latent():
    problem = make_problem(steps=50)
    rollout = Rollout(problem)
    with torch.no_grad():
        x, y = coupled_sample(rollout, problem.latent, 50, 0.93)
        assert (x - problem.latent).abs().max() > 1e-2  # the sampler moved (10 orders above the tolerance)
        for i in range(1, 51):
            x, y = invert_step(rollout, i, x, y, 0.93)
    assert (x - problem.latent).abs().max() < 1e-12
    assert (y - problem.latent).abs().max() < 1e-12


@pytest.mark.parametrize(
    "model,wrt,kw",
    [
        ("gmm", "latent", {}),
        ("gmm", "params", {}),
        ("gmm", "cond", {"conditional": True}),
        ("gmm", "latent", {"prediction_type": "v_prediction"}),
        ("mlp", "params", {}),
        ("gmm-flow", "latent", {}),
    ],
)
def test_gradient_equals_bptt_of_the_coupled_sampler(model, wrt, kw):
    problem = make_problem(model, steps=12, wrt=wrt, **kw)
    ref = coupled_bptt(problem)
    res = sdo.grad(problem, "reversible")
    assert res.ok and ref.flat().norm() > 1e-6
    assert (res.flat() - ref.flat()).norm() <= 1e-8 * ref.flat().norm()
    assert abs(res.loss - ref.loss) < 1e-12
    assert res.stats["nfe_fwd_nograd"] == 24 and res.stats["nfe_bwd"] == 24  # 2 calls per step
    assert res.stats["nfe_fwd_grad"] == 0


def test_mixing_option_changes_the_sampler():
    problem = make_problem(steps=8)
    a, b = sdo.grad(problem, "reversible", mix=0.93), sdo.grad(problem, "reversible", mix=0.8)
    ref = coupled_bptt(problem, mix=0.8)
    assert (a.flat() - b.flat()).norm() > 1e-6
    assert (b.flat() - ref.flat()).norm() <= 1e-8 * ref.flat().norm()


def _memory(estimator, steps):
    graph, peak, _ = graph_and_peak_bytes(estimator, steps)
    return graph, peak


def test_saved_bytes_do_not_grow_with_steps():
    graph5, peak5 = _memory("reversible", 5)
    graph20, peak20 = _memory("reversible", 20)
    assert graph5 == graph20 and peak5 == peak20
    bptt5, bptt_peak5 = _memory("bptt", 5)
    bptt20, bptt_peak20 = _memory("bptt", 20)
    assert bptt20 > bptt5 and bptt_peak20 > bptt_peak5  # the measure sees growth where there is some


def test_bad_options_and_problems():
    with pytest.raises(ValueError, match="mix"):
        sdo.estimators.get("reversible", mix=0.0)
    with pytest.raises(ValueError, match="native 'ddim'"):
        sdo.grad(make_problem(sampler="dpm++2m"), "reversible")
    with pytest.raises(ValueError, match="eta > 0"):
        sdo.grad(make_problem(sampler_options={"eta": 1.0}), "reversible")
    with pytest.raises(ValueError, match="supported: latent, params, cond"):
        sdo.grad(make_problem(steps=4, wrt="intermediate", intermediate_step=2), "reversible")
