"""Models: the analytic mixture's closed form, real-size configs, adapters with conditioning."""

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

import sdo


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("t", [10, 400, 990])
def test_gmm_eps_is_minus_sigma_times_the_score(full, t):
    """eps(x_t) = -sigma_t grad log p_t(x_t), the score taken by autograd of the mixture density."""
    model = sdo.models.get("gmm", dim=3, components=4, full=full).double()
    alpha, sigma = model.schedule.alpha_sigma(t)
    cov = model.cov if full else torch.diag_embed(model.cov)
    comp = MultivariateNormal(
        alpha * model.means.detach(), alpha**2 * cov + sigma**2 * torch.eye(3, dtype=torch.float64)
    )
    mix = MixtureSameFamily(Categorical(logits=model.log_weights), comp)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    (score,) = torch.autograd.grad(mix.log_prob(x).sum(), x)
    torch.testing.assert_close(model(x.detach(), t), -sigma * score, rtol=1e-9, atol=1e-10)


def test_named_real_size_configs_have_published_parameter_counts():
    counts = {}
    with torch.device("meta"):
        for name in ("ddpm-cifar10", "ddpm-256", "sd15"):
            model = sdo.models.get(name)
            counts[name] = sum(p.numel() for p in model.network_parameters().values())
        decoder = sum(p.numel() for p in model.decoder.parameters())
    assert counts == {"ddpm-cifar10": 35_746_307, "ddpm-256": 113_673_219, "sd15": 859_520_964}
    assert decoder == 83_653_863 - 34_163_592 - 72  # SD VAE total - encoder - quant_conv
    assert model.sample_shape == (4, 64, 64) and model.cond_shape == (77, 768)


def test_conditioning_changes_the_output_of_every_conditional_model():
    for model in (
        sdo.models.get("ldm-tiny"),
        sdo.models.get("gmm", conditional=True),
        sdo.models.get("mlp", cond_dim=2),
    ):
        g = torch.Generator().manual_seed(0)
        x = torch.randn((1, *model.sample_shape), generator=g)
        c1, c2 = model.default_cond(1, g), model.default_cond(1, g)
        assert not torch.allclose(model(x, 500, c1), model(x, 500, c2))


def test_model_weights_are_seeded():
    a, b, c = (
        sdo.models.get("unet-tiny", seed=1),
        sdo.models.get("unet-tiny", seed=1),
        sdo.models.get("unet-tiny", seed=2),
    )
    pa, pb, pc = (torch.cat([p.reshape(-1) for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_latent_model_decodes_into_pixel_space():
    model = sdo.models.get("ldm-tiny")
    img = model.decode(torch.randn(2, 4, 8, 8))
    assert img.shape == (2, 3, 16, 16)
