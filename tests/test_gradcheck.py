"""Exact estimators (bptt, checkpoint) agree with central finite differences (torch.autograd.gradcheck)."""

import pytest
import torch
from conftest import make_problem
from estimator_function import latent_loss_fn, params_loss_fn

EXACT = [("bptt", {}), ("checkpoint", {"segment": 2})]
TINY_MODELS = [("gmm", {"dim": 3, "components": 3, "full": True}), ("mlp", {"dim": 3, "hidden": 8})]


@pytest.mark.parametrize("estimator,options", EXACT)
@pytest.mark.parametrize("model,model_kw", TINY_MODELS)
@pytest.mark.parametrize("steps", [1, 5])
def test_gradcheck_latent(estimator, options, model, model_kw, steps):
    problem = make_problem(model, steps=steps, **model_kw)
    fn = latent_loss_fn(problem, estimator, **options)
    z = problem.latent.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (z,), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("estimator,options", EXACT)
@pytest.mark.parametrize("model,model_kw", TINY_MODELS)
def test_gradcheck_params(estimator, options, model, model_kw):
    problem = make_problem(model, steps=5, wrt="params", **model_kw)
    fn, values = params_loss_fn(problem, estimator, **options)
    assert torch.autograd.gradcheck(fn, tuple(values), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_stochastic_ddim_intermediate():
    """eta > 0 with explicit noise, wrt the latent: still the exact gradient of the replayed sampler."""
    problem = make_problem("mlp", steps=4, dim=3, hidden=8, sampler_options={"eta": 1.0})
    fn = latent_loss_fn(problem, "bptt")
    z = problem.latent.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (z,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_detects_a_wrong_gradient():
    """Sanity of the harness: a truncated (inexact) estimator fails gradcheck."""
    problem = make_problem("mlp", steps=5, dim=3, hidden=8)
    fn = latent_loss_fn(problem, "truncated", K=1)
    z = problem.latent.clone().requires_grad_(True)
    assert not torch.autograd.gradcheck(fn, (z,), eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
