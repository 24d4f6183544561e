"""Checks against computations written here, independent of sdo's loop: SDO's random step i' reaches N,
the loss is taken on the decoded image D(x_0) for latent models, stochastic samplers use step p's noise at
step p."""

import math
from collections import Counter

import torch
from conftest import make_problem

import sdo


def test_sdo_random_step_is_uniform_over_1_to_N_including_N():
    N, draws = 3, 60
    problem = make_problem("mlp", steps=N, wrt="params", dim=2, hidden=8)
    est = sdo.estimators.get("sdo", seed=0)
    results = [est(problem) for _ in range(draws)]
    counts = Counter(r.stats["retained"][0] for r in results)
    assert set(counts) == {1, 2, 3}
    assert all(8 <= counts[i] <= 32 for i in counts), counts  # expected 20 each; > 3 sigma either side
    at_n = next(r for r in results if r.stats["retained"] == [N])  # and i' = N is the step N gradient
    torch.testing.assert_close(at_n.flat(), sdo.grad(problem, "sdo", step=N).flat(), rtol=0, atol=0)


def _ddim(problem, eta: float = 0.0):
    """DDIM (Song et al., Eq. 12) written here on the sampler's timesteps; noise[p] at execution step p."""
    abar = problem.model.schedule.alphas_cumprod()
    ts = [float(problem.solver.timestep(i)) for i in range(problem.steps, 0, -1)]
    assert all(t == int(t) for t in ts)
    ab = [float(abar[int(t)]) for t in ts] + [1.0]
    x = problem.latent.clone().requires_grad_(True)
    z = x
    for p, t in enumerate(ts):
        eps = problem.model(z, t, problem.cond)
        a, ap = ab[p], ab[p + 1]
        x0 = (z - math.sqrt(1 - a) * eps) / math.sqrt(a)
        s = eta * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
        z = math.sqrt(ap) * x0 + math.sqrt(1 - ap - s * s) * eps
        if s > 0:
            z = z + s * problem.noise[p]
    return x, z


def test_stochastic_ddim_uses_each_steps_noise_in_execution_order():
    problem = make_problem("gmm", steps=5, sampler_options={"eta": 0.8}, dim=3, seed=2)
    assert problem.solver.stochastic and len(problem.noise) == 5
    x, x0 = _ddim(problem, eta=0.8)
    res = sdo.grad(problem, "bptt")
    torch.testing.assert_close(res.x0, x0.detach(), rtol=1e-10, atol=1e-10)
    (expected,) = torch.autograd.grad(problem.objective(x0), x)
    torch.testing.assert_close(res.grads["latent"], expected, rtol=1e-9, atol=1e-10)


def test_latent_model_loss_is_taken_on_the_decoded_image():
    problem = make_problem("ldm-tiny", steps=2, wrt="latent")
    dec = problem.model.decoder
    x, x0 = _ddim(problem)
    image = dec.decoder(dec.post_quant_conv(x0 / dec.scaling_factor))  # the VAE decode, done here
    assert image.shape[1:] == (3, 16, 16) and x0.shape[1:] == (4, 8, 8)
    loss = problem.objective(image)
    (expected,) = torch.autograd.grad(loss, x)
    res = sdo.grad(problem, "bptt")
    torch.testing.assert_close(res.x0, x0.detach(), rtol=1e-10, atol=1e-10)  # x0 is the latent, undecoded
    assert math.isclose(res.loss, float(loss.detach()), rel_tol=1e-10)
    torch.testing.assert_close(res.grads["latent"], expected, rtol=1e-8, atol=1e-10)
