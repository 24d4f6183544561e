"""spsa: zeroth order, unbiased for the Gaussian-smoothed objective, no backward."""

import math

import pytest
import torch
from conftest import make_problem

import sdo


def linear_problem(steps=3, wrt="latent", **kw):
    """One-component mixture: E[x_0 | x_t] is affine in x_t, so DDIM is affine in x_N (and in c), and
    target-MSE is quadratic: the smoothed gradient equals the exact (BPTT) gradient."""
    return make_problem(steps=steps, wrt=wrt, components=1, dim=3, **kw)


def z_scores(mean, g, samples):
    """(mean - g) / sd per coordinate; for quadratic J the k-th term is u u^T g, whose covariance has
    diagonal |g|^2 + g_j^2 (u ~ N(0, I))."""
    sd = ((g.norm() ** 2 + g**2) / samples).sqrt()
    return (mean - g) / sd


def test_mean_converges_to_the_smoothed_gradient_on_a_quadratic():
    problem = linear_problem()
    exact = sdo.grad(problem, "bptt").flat()
    samples = 500
    est = sdo.grad(problem, "spsa", samples=samples, sigma=0.1, seed=3).flat()
    z = z_scores(est, exact, samples)
    # 3 coordinates, |z| < 4 each: P(false failure) < 3 * 6.3e-5 under the CLT
    assert z.abs().max() < 4, (est, exact, z)
    assert float((est - exact).norm() / exact.norm()) < 4 * math.sqrt(4 / samples)


def test_unbiased_on_a_mixture_for_the_smoothed_gradient():
    """Nonlinear J: the mean of many SPSA estimates matches the smoothed gradient E[grad J(z + sigma u)]
    computed independently by BPTT at sampled points (antithetic, same directions count)."""
    problem = make_problem(steps=3, dim=2, components=3, spread=1.0, scale=0.5)
    sigma, samples = 0.3, 600
    est = sdo.grad(problem, "spsa", samples=samples, sigma=sigma, seed=11).flat()
    g = torch.Generator().manual_seed(5)
    smoothed = []
    for _ in range(100):
        u = torch.randn(problem.latent.shape, generator=g, dtype=torch.float64)
        for sign in (1, -1):
            moved = make_problem(steps=3, dim=2, components=3, spread=1.0, scale=0.5)
            moved.latent = problem.latent + sign * sigma * u
            smoothed.append(sdo.grad(moved, "bptt").flat())
    smoothed = torch.stack(smoothed)
    target, target_se = smoothed.mean(0), smoothed.std(0) / math.sqrt(len(smoothed) / 2)
    # SPSA's standard error from the quadratic-case bound with a 2x margin for non-Gaussian terms
    se = 2 * ((target.norm() ** 2 + target**2) / samples).sqrt()
    assert ((est - target).abs() / (se**2 + target_se**2).sqrt()).max() < 4, (est, target)


@pytest.mark.parametrize("wrt,kw", [("latent", {}), ("cond", {"conditional": True}), ("params", {})])
def test_counts_forwards_only(wrt, kw):
    problem = linear_problem(steps=4, wrt=wrt, **kw)
    res = sdo.grad(problem, "spsa", samples=5)
    assert res.ok and set(res.grads) == set(sdo.grad(problem, "bptt").grads)
    assert res.stats["nfe_fwd_nograd"] == 2 * 5 * 4
    assert res.stats["nfe_fwd_grad"] == 0 and res.stats["nfe_bwd"] == 0


def test_intermediate_counts_the_prefix_once_and_matches_its_prediction():
    problem = linear_problem(steps=5, wrt="intermediate", intermediate_step=2)
    estimator = sdo.estimators.get("spsa", samples=3)
    res = estimator(problem)
    assert res.stats["nfe_fwd_nograd"] == 3 + 2 * 3 * 2
    assert estimator.predict(problem).nfe() == {k: v for k, v in res.stats.items() if k.startswith("nfe_")}
    assert set(res.grads) == {"x_2"}


def test_params_restored_and_reproducible():
    problem = linear_problem(wrt="params")
    before = problem.model.means.detach().clone()
    a = sdo.grad(problem, "spsa", samples=4, seed=1)
    b = sdo.grad(problem, "spsa", samples=4, seed=1)
    assert torch.equal(problem.model.means.detach(), before)
    assert torch.equal(a.flat(), b.flat())
    assert not torch.equal(a.flat(), sdo.grad(problem, "spsa", samples=4, seed=2).flat())


def test_params_mean_matches_bptt_on_a_quadratic():
    """theta = the component mean: E[x_0 | x_t] is affine in it, so J is quadratic in theta too."""
    problem = linear_problem(wrt="params")
    exact = sdo.grad(problem, "bptt").flat()
    samples = 600
    est = sdo.grad(problem, "spsa", samples=samples, sigma=0.1, seed=4).flat()
    assert z_scores(est, exact, samples).abs().max() < 4


def test_variance_falls_as_one_over_samples():
    """Mean squared error over R seeds at S and 16 S samples: ratio 16 in expectation. With R = 40 the
    MSE of a sum of 40 * 3 squared errors has relative sd about sqrt(2 / 120) ~ 0.13 per
    figure, so the ratio lies in [8, 32] with margin."""
    problem = linear_problem(steps=2)
    exact = sdo.grad(problem, "bptt").flat()

    def mse(samples):
        errs = [sdo.grad(problem, "spsa", samples=samples, seed=s).flat() - exact for s in range(40)]
        return float(torch.stack(errs).pow(2).sum(1).mean())

    ratio = mse(2) / mse(32)
    assert 8 < ratio < 32, ratio


def test_bad_options():
    with pytest.raises(ValueError, match="samples must be an integer >= 1"):
        sdo.estimators.get("spsa", samples=0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        sdo.estimators.get("spsa", sigma=0.0)
