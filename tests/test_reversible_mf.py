"""reversible-mf (McCallum-Foster coupling around any sampler step): exact inversion, the gradient of the
coupled sampler for every sampler, step coefficients from independent formulas, memory flat in N."""

import math

import pytest
import torch
from conftest import make_problem
from memory_helpers import graph_and_peak_bytes
from reference_solvers import ddim_abar, ddim_coefficients, dpm_alpha_sigma

import sdo
from sdo.estimators.reversible_mf import Coupling, coupled_sample, step_coefficients
from sdo.loop import Rollout, finish, trainable


def coupled_bptt(problem, lam):
    """Autograd through a plain loop of the coupled forward, written from the scheme (not the module)."""
    with trainable(problem):
        r = Rollout(problem)
        x, _, first, leaves = r.start()
        t0 = 1.0 if problem.model.schedule.kind == "flow" else 0.0
        y = z = x
        for i in range(first, 0, -1):
            A, B = step_coefficients(r.solver, i)
            y_new = lam * y + (1 - lam) * z + (A * z + B * r.network(i, z, True) - z)
            m_end = r.network(i - 1, y_new, True) if i > 1 else r.call(y_new, t0, True)
            z = z - ((y_new - B * m_end) / A - y_new)
            y = y_new
        return finish(r, y, leaves)


CASES = [
    ("gmm", "ddim", "latent", {}),
    ("mlp", "ddim", "params", {}),
    ("gmm", "ddim", "cond", {"conditional": True}),
    ("gmm", "ddim", "latent", {"prediction_type": "v_prediction"}),
    ("mlp", "ddim", "intermediate", {"intermediate_step": 4}),
    ("mlp", "dpm++2m", "latent", {}),
    ("mlp", "euler", "params", {}),
    ("gmm-flow", "flow-euler", "latent", {}),
]


@pytest.mark.parametrize("model,sampler,wrt,kw", CASES)
def test_gradient_equals_bptt_of_the_coupled_sampler(model, sampler, wrt, kw):
    """1e-10 for every sampler: the coefficients are read once, the coupling runs in float64."""
    problem = make_problem(model, sampler=sampler, steps=6, wrt=wrt, **kw)
    ref = coupled_bptt(problem, 0.9)
    res = sdo.grad(problem, "reversible-mf", lam=0.9)
    assert res.ok and ref.flat().norm() > 1e-6
    assert (res.flat() - ref.flat()).norm() <= 1e-10 * ref.flat().norm()
    assert abs(res.loss - ref.loss) <= 1e-12 * max(1.0, abs(ref.loss))
    steps = 6 if wrt != "intermediate" else 4
    assert res.stats["nfe_bwd"] == 2 * steps and res.stats["nfe_fwd_grad"] == 0


@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m"])
def test_inverting_50_steps_recovers_the_latent(sampler):
    problem = make_problem(sampler=sampler, steps=50)
    r = Rollout(problem)
    c = Coupling.build(r, 50, 0.99)
    with torch.no_grad():
        y, z = coupled_sample(c, problem.latent, 50)
        assert (y - problem.latent).abs().max() > 1e-2  # the sampler moved
        for i in range(1, 51):
            y, z = c.invert(i, y, z)
    assert (y - problem.latent).abs().max() < 1e-10
    assert (z - problem.latent).abs().max() < 1e-10


def test_coefficients_match_the_papers_formulas():
    """DDIM (Song et al. Eq. 12) and first-order DPM-Solver++ (Lu et al.), from tests/reference_solvers."""
    ddim = make_problem(steps=7)
    for p, (a, b) in enumerate(ddim_coefficients(ddim_abar(ddim))):
        A, B = step_coefficients(ddim.solver, 7 - p)
        assert abs(A - a) < 1e-12 and abs(B - b) < 1e-12
    dpm = make_problem(sampler="dpm++2m", steps=7)
    coef = dpm_alpha_sigma(dpm)
    for p in range(7):
        (a, s), (an, sn) = coef[p], coef[p + 1]
        if sn == 0:  # the last step returns x0_hat
            a_ref, b_ref = 1 / a, -s / a
        else:
            e = math.exp(-(math.log(an / sn) - math.log(a / s))) - 1
            a_ref, b_ref = sn / s - an * e / a, an * e * s / a
        A, B = step_coefficients(dpm.solver, 7 - p)
        assert abs(A - a_ref) < 1e-5 * abs(a_ref) and abs(B - b_ref) < 1e-5 * (abs(b_ref) + 1e-3)


def test_lam_changes_the_sampler_and_lam_near_one_tracks_it():
    """Each lam is its own exact sampler; on a broad mixture the coupled x_0 approaches the plain one."""
    problem = make_problem(steps=8, scale=1.0)
    a, b = sdo.grad(problem, "reversible-mf", lam=0.999), sdo.grad(problem, "reversible-mf", lam=0.5)
    assert (a.flat() - b.flat()).norm() > 1e-6
    assert (b.flat() - coupled_bptt(problem, 0.5).flat()).norm() <= 1e-10 * b.flat().norm()
    plain = sdo.grad(problem, "bptt").x0
    assert (a.x0 - plain).norm() < (b.x0 - plain).norm()


def test_saved_bytes_do_not_grow_with_steps():
    graph5, peak5, _ = graph_and_peak_bytes("reversible-mf", 5)
    graph20, peak20, _ = graph_and_peak_bytes("reversible-mf", 20)
    assert graph5 == graph20 and peak5 == peak20


def test_bad_options_and_problems():
    for lam in (0.0, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="lam"):
            sdo.estimators.get("reversible-mf", lam=lam)
    with pytest.raises(ValueError, match="deterministic"):
        sdo.grad(make_problem(sampler_options={"eta": 1.0}), "reversible-mf")
    with pytest.raises(ValueError, match="valid: lam"):
        sdo.estimators.get("reversible-mf", mix=0.9)
