"""adjoint: Euler on the sampler's grid is DDIM; its gradient converges to BPTT as N grows."""

import numpy as np
import pytest
from conftest import make_problem

import sdo
from sdo.schedule import FLOW_SCHEDULE

# Fitted log-log slope of rel. error vs N (N = 20..320) on the default mixture, wrt x_N, when written:
# -0.82 (errors 0.95, 0.64, 0.37, 0.20, 0.10); wrt theta: -0.79. Asymptotically O(1/N).
RECORDED_SLOPE = {"latent": -0.82, "params": -0.79}


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(
    "wrt,kw",
    [
        ("latent", {}),
        ("params", {}),
        ("cond", {"conditional": True}),
        ("latent", {"prediction_type": "v_prediction"}),
    ],
)
def test_euler_on_the_grid_reproduces_ddim(wrt, kw):
    problem = make_problem(steps=25, wrt=wrt, **kw)
    ref, res = sdo.grad(problem, "bptt"), sdo.grad(problem, "adjoint")
    assert res.ok and (res.x0 - ref.x0).abs().max() < 1e-6
    assert (res.x0 - problem.latent).abs().max() > 1e-2
    assert abs(res.loss - ref.loss) < 1e-6
    # the adjoint's backward re-evaluates the network once per step and does one VJP per evaluation
    assert res.stats["nfe_fwd_nograd"] == 25 and res.stats["nfe_fwd_recompute"] == 25
    assert res.stats["nfe_bwd"] == 25 and res.stats["nfe_fwd_grad"] == 0


@pytest.mark.parametrize("wrt", ["latent", "params"])
def test_gradient_converges_to_bptt(wrt):
    Ns = [20, 40, 80, 160, 320]
    errs = []
    for N in Ns:
        problem = make_problem(steps=N, wrt=wrt, objective=sdo.objectives.get("target-mse", seed=1234))
        errs.append(rel(sdo.grad(problem, "adjoint").flat(), sdo.grad(problem, "bptt").flat()))
    slope = np.polyfit(np.log(Ns), np.log(errs), 1)[0]
    assert slope < -0.5, (slope, errs)
    assert abs(slope - RECORDED_SLOPE[wrt]) < 0.05, (slope, errs)  # the recorded value is this run's
    assert all(b < a for a, b in zip(errs, errs[1:]))


@pytest.mark.parametrize("sampler,tol", [("ddim", 1e-12), ("flow-euler", 1e-6)])
@pytest.mark.parametrize("wrt", ["latent", "params"])
def test_flow_models_euler_on_the_grid_reproduces_the_sampler(sampler, tol, wrt):
    """Rectified flow: Euler in sigma on the sampler's grid is flow-Euler (diffusers steps in float32)."""
    problem = make_problem("gmm-flow", sampler, steps=10, wrt=wrt)
    ref, res = sdo.grad(problem, "bptt"), sdo.grad(problem, "adjoint")
    assert res.ok and (res.x0 - ref.x0).abs().max() < tol
    assert 0 < rel(res.flat(), ref.flat()) < 1  # the continuous adjoint: close, not exact at N = 10


def test_flow_gradient_converges_to_bptt():
    Ns = [20, 40, 80]
    errs = []
    for N in Ns:
        problem = make_problem("gmm-flow", steps=N, objective=sdo.objectives.get("target-mse", seed=1234))
        errs.append(rel(sdo.grad(problem, "adjoint").flat(), sdo.grad(problem, "bptt").flat()))
    slope = np.polyfit(np.log(Ns), np.log(errs), 1)[0]
    assert slope < -0.8 and all(b < a for a, b in zip(errs, errs[1:])), (slope, errs)


def test_adaptive_solver_converges_with_tolerance():
    """dopri5 solves the ODE itself: its x_0 approaches a fine-grid Euler solve as rtol shrinks."""
    fine = sdo.grad(make_problem(steps=1000), "adjoint")
    problem = make_problem(steps=10)
    loose = sdo.grad(problem, "adjoint", method="dopri5", rtol=1e-3, atol=1e-3)
    tight = sdo.grad(problem, "adjoint", method="dopri5", rtol=1e-8, atol=1e-8)
    assert (tight.x0 - fine.x0).norm() < (loose.x0 - fine.x0).norm()
    assert (tight.x0 - fine.x0).norm() < 1e-2
    assert tight.stats["nfe_fwd_nograd"] > loose.stats["nfe_fwd_nograd"] > 10


def test_bad_options_and_problems():
    with pytest.raises(ValueError, match="valid: euler, midpoint, rk4, dopri5"):
        sdo.estimators.get("adjoint", method="dopri9")
    with pytest.raises(ValueError, match="rtol and atol"):
        sdo.estimators.get("adjoint", rtol=0.0)
    with pytest.raises(ValueError, match="supported: latent, params, cond"):
        sdo.grad(make_problem(wrt="intermediate", intermediate_step=2), "adjoint")
    with pytest.raises(ValueError, match="flow-schedule models with velocity outputs"):
        sdo.grad(make_problem("gmm", schedule=FLOW_SCHEDULE), "adjoint")
    with pytest.raises(ValueError, match="deterministic"):
        sdo.grad(make_problem(sampler_options={"eta": 1.0}), "adjoint")
