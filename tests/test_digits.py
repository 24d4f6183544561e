"""digits-ddpm: registered, trained (its class-conditional samples are the requested digits to its classifier),
cheap in float64, and classifier-free guidance at w = 1 is the plain conditional network."""

import pytest
import torch

import sdo
from sdo.models.digits import digits_classifier, digits_tensors
from sdo.tasks.sampling import generate


def test_digits_split_is_disjoint_and_in_range():
    xtr, ytr = digits_tensors("train")
    xte, _ = digits_tensors("test")
    assert xtr.shape == (1500, 1, 8, 8) and xte.shape == (297, 1, 8, 8)
    assert xtr.min() >= -1 and xtr.max() <= 1 and set(ytr.tolist()) == set(range(10))
    train = {tuple(r) for r in xtr.flatten(1).tolist()}
    assert sum(tuple(r) in train for r in xte.flatten(1).tolist()) < 10  # a few duplicate images exist
    with pytest.raises(ValueError, match="train, test"):
        digits_tensors("val")


def test_conditional_samples_are_the_requested_digits():
    model = sdo.models.get("digits-ddpm", conditional=True)
    labels = torch.arange(100) % 10
    x = generate(model, 100, steps=20, seed=1, batch=100, labels=labels)
    with torch.no_grad():
        acc = (digits_classifier()(x).argmax(1) == labels).float().mean().item()
    assert acc >= 0.9


def test_unconditional_model_takes_no_cond_and_runs_in_float64():
    model = sdo.models.get("digits-ddpm")
    assert model.cond_shape is None and model.sample_shape == (1, 8, 8)
    problem = sdo.Problem(
        model, sdo.samplers.get("ddim", steps=50), lambda v: v.pow(2).sum(), dtype="float64"
    )
    res = sdo.estimators.get("bptt")(problem)
    assert res.ok and res.grads["latent"].dtype == torch.float64


def test_guidance_one_is_the_conditional_network_and_guidance_mixes_the_null_class():
    plain = sdo.models.get("digits-ddpm", conditional=True)
    guided = sdo.models.get("digits-ddpm", conditional=True, guidance=3.0)
    x, c = torch.randn(4, 1, 8, 8), torch.nn.functional.one_hot(torch.arange(4), 10).float()
    t = torch.tensor(400.0)
    cond_eps, null_eps = plain(x, t, c), sdo.models.get("digits-ddpm")(x, t)
    assert torch.allclose(guided(x, t, c), null_eps + 3.0 * (cond_eps - null_eps), atol=1e-5)
    with pytest.raises(ValueError, match="class vector"):
        plain(x, t)
