"""adjoint-deis: the first-order exponential-integrator adjoint; exact with stored states, O(1/N) with
rebuilt ones, and identical to torchdiffeq's Euler adjoint solved over one interval."""

import numpy as np
import pytest
import torch
from conftest import make_problem
from torchdiffeq import odeint_adjoint

import sdo
from sdo.estimators.adjoint import PFODE
from sdo.estimators.adjoint_coords import Coords, sampler_grid
from sdo.loop import Rollout, finish

CASES = [
    ("gmm", "ddim", "latent", {}),
    ("gmm", "ddim", "params", {}),
    ("gmm", "ddim", "cond", {"conditional": True}),
    ("gmm", "ddim", "latent", {"prediction_type": "v_prediction"}),
    ("gmm-flow", "ddim", "latent", {}),
    ("gmm-flow", "ddim", "params", {}),
]


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("model,sampler,wrt,kw", CASES)
def test_stored_states_equal_bptt(model, sampler, wrt, kw):
    """The EI adjoint step with the VJP at the forward step's input is the sampler's discrete adjoint."""
    problem = make_problem(model, sampler, steps=8, wrt=wrt, **kw)
    ref, res = sdo.grad(problem, "bptt"), sdo.grad(problem, "adjoint-deis", states="stored")
    assert res.ok and set(res.grads) == set(ref.grads)
    assert rel(res.flat(), ref.flat()) < 1e-10
    assert torch.equal(res.x0, ref.x0) and res.loss == ref.loss


@pytest.mark.parametrize("model,sampler", [("gmm", "diffusers-ddim"), ("gmm-flow", "flow-euler")])
def test_stored_states_on_diffusers_samplers(model, sampler):
    """diffusers keeps its schedule in float32 (and flow-Euler steps in float32): agreement to that."""
    problem = make_problem(model, sampler, steps=8)
    ref, res = sdo.grad(problem, "bptt"), sdo.grad(problem, "adjoint-deis", states="stored")
    assert rel(res.flat(), ref.flat()) < 1e-4


@pytest.mark.parametrize("model,wrt", [("gmm", "latent"), ("gmm", "params"), ("gmm-flow", "latent")])
def test_inversion_is_torchdiffeq_euler_over_one_interval(model, wrt):
    """Independent computation: odeint_adjoint with only the endpoints requested and Euler on the sampler's
    grid (grid_constructor) rebuilds the states by reverse Euler, which is AdjointDEIS-1."""
    problem = make_problem(model, steps=6, wrt=wrt)
    rollout = Rollout(problem)
    _, _, first, leaves = rollout.start()
    times, s = sampler_grid(problem, first)
    grid = torch.tensor(s, dtype=problem.dtype)
    coords = Coords(problem, dict(zip(s[:-1], times)))

    def on_grid(func, y0, t):
        for g in (grid, grid.flip(0), -grid, -grid.flip(0)):
            if g[0] == t[0] and g[-1] == t[-1]:
                return g
        raise AssertionError(t)

    z = leaves["latent"] if wrt == "latent" else problem.latent
    params = () if wrt == "latent" else tuple(leaves.values())
    y0 = z / coords.alpha(s[0])
    ends = grid[[0, -1]]
    x0 = odeint_adjoint(
        PFODE(rollout, coords),
        y0,
        ends,
        method="euler",
        options={"grid_constructor": on_grid},
        adjoint_params=params,
    )[-1]
    independent = finish(rollout, x0, leaves)
    res = sdo.grad(problem, "adjoint-deis")
    assert rel(res.flat(), independent.flat()) < 1e-12


# Fitted log-log slope of the relative error vs N on the default mixture wrt x_N, when written:
# inversion -0.90 over N = 40, 80, 160 (errors 0.60, 0.33, 0.17; -0.92 over 40..320): O(1/N);
# fixed-point (3 sweeps) -3.81 over N = 20, 40, 80 (errors 0.044, 0.0044, 0.00022; -4.1 over 40..320).
RECORDED = {"inversion": ([40, 80, 160], -0.90), "fixed-point": ([20, 40, 80], -3.81)}


@pytest.mark.parametrize("states", ["inversion", "fixed-point"])
def test_rebuilt_states_converge_to_bptt(states):
    Ns, recorded = RECORDED[states]
    errs = []
    for N in Ns:
        problem = make_problem(steps=N, objective=sdo.objectives.get("target-mse", seed=1234))
        res = sdo.grad(problem, "adjoint-deis", states=states)
        errs.append(rel(res.flat(), sdo.grad(problem, "bptt").flat()))
    slope = np.polyfit(np.log(Ns), np.log(errs), 1)[0]
    assert slope < -0.8, (slope, errs)  # at least first order
    assert abs(slope - recorded) < 0.05, (slope, errs)  # the recorded value is this run's
    assert all(b < a for a, b in zip(errs, errs[1:])), errs


def test_fixed_point_sweeps_approach_the_exact_gradient():
    problem = make_problem(steps=10)
    exact = sdo.grad(problem, "bptt").flat()
    inv = rel(sdo.grad(problem, "adjoint-deis").flat(), exact)
    fp = [
        rel(sdo.grad(problem, "adjoint-deis", states="fixed-point", iterations=k).flat(), exact)
        for k in (1, 3, 10)
    ]
    assert fp[2] < fp[1] < fp[0] < inv, (inv, fp)


@pytest.mark.parametrize("states,extra", [("inversion", 0), ("stored", 0), ("fixed-point", 2 * 5)])
def test_counts(states, extra):
    problem = make_problem(steps=5)
    estimator = sdo.estimators.get("adjoint-deis", states=states, iterations=2)
    res = estimator(problem)
    assert estimator.predict(problem).nfe() == {k: v for k, v in res.stats.items() if k.startswith("nfe_")}
    assert res.stats["nfe_fwd_nograd"] == 5 + extra
    assert res.stats["nfe_fwd_grad"] == 5 and res.stats["nfe_bwd"] == 5
    assert res.stats["states"] == states


def test_refusals():
    with pytest.raises(ValueError, match="valid: inversion, fixed-point, stored"):
        sdo.estimators.get("adjoint-deis", states="rebuilt")
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        sdo.estimators.get("adjoint-deis", iterations=0)
    with pytest.raises(ValueError, match="use one of: ddim, diffusers-ddim"):
        sdo.grad(make_problem(sampler="dpm++2m"), "adjoint-deis")
    with pytest.raises(ValueError, match="use one of: ddim, flow-euler"):
        sdo.grad(make_problem("gmm-flow", sampler="euler"), "adjoint-deis")
    with pytest.raises(ValueError, match="deterministic"):
        sdo.grad(make_problem(sampler_options={"eta": 1.0}), "adjoint-deis")
