"""Deterministic cost: FlopCounterMode shows SDO = N forwards + one backward of one step, and
BPTT = N forwards + N backwards (within 1%)."""

import pytest
import torch
from conftest import make_problem

import sdo
from sdo.measure import count_flops


def one_step_flops(problem):
    """(forward FLOPs, forward+backward FLOPs) of one network call at the first step, same wrt."""
    solver, model = problem.solver, problem.model
    i = problem.steps

    def fwd():
        with torch.no_grad():
            model(solver.model_input(i, problem.latent), solver.timestep(i))

    def fwd_bwd():
        if problem.wrt == "latent":
            x = problem.latent.clone().requires_grad_(True)
            inputs = [x]
        else:
            x = problem.latent
            inputs = list(problem.parameters().values())
            for p in inputs:
                p.requires_grad_(True)
        out = model(solver.model_input(i, x), solver.timestep(i))
        torch.autograd.grad(out.sum(), inputs)

    return count_flops(fwd), count_flops(fwd_bwd)


@pytest.mark.parametrize("wrt", ["latent", "params"])
def test_flops_sdo_and_bptt_match_the_step_count(wrt):
    N = 6
    problem = make_problem("unet-tiny", steps=N, wrt=wrt, dtype=torch.float32)
    fwd, fwd_bwd = one_step_flops(problem)
    bwd = fwd_bwd - fwd
    sdo_flops = count_flops(lambda: sdo.grad(problem, "sdo", step=N))
    bptt_flops = count_flops(lambda: sdo.grad(problem, "bptt"))
    assert sdo_flops == pytest.approx(N * fwd + bwd, rel=0.01)
    assert bptt_flops == pytest.approx(N * (fwd + bwd), rel=0.01)
    # and a backward costs about one forward wrt the input, about two with parameter gradients
    assert bwd / fwd == pytest.approx(1.0 if wrt == "latent" else 2.0, rel=0.1)


def test_checkpoint_flops_add_one_recomputed_forward_per_step():
    N = 4
    problem = make_problem("unet-tiny", steps=N, dtype=torch.float32)
    fwd, fwd_bwd = one_step_flops(problem)
    flops = count_flops(lambda: sdo.grad(problem, "checkpoint", segment=2))
    assert flops == pytest.approx(N * (fwd_bwd + fwd), rel=0.01)


def test_saved_bytes_peak_is_flat_for_sdo_and_grows_for_bptt():
    from sdo.measure import saved_tensor_bytes

    peaks = {}
    for name in ("sdo", "bptt"):
        for N in (3, 6):
            problem = make_problem("mlp", steps=N, dim=3, hidden=16, batch=64)
            with saved_tensor_bytes() as saved:
                sdo.grad(problem, name)
            peaks[name, N] = saved.peak
            assert saved.live == 0 and saved.total >= saved.peak > 0
    assert peaks["sdo", 3] == peaks["sdo", 6]
    assert peaks["bptt", 6] > 1.8 * peaks["bptt", 3]
