"""A new model: data ~ N(mean, I), whose exact noise prediction is eps(x_t) = sigma_t (x_t - alpha_t mean)."""

import torch
from torch import nn

import sdo
from sdo.models import Denoiser, register_model
from sdo.schedule import NoiseSchedule


class UnitGaussian(Denoiser):
    """An epsilon-prediction denoiser on the DDPM schedule; `mean` is its one parameter (theta)."""

    def __init__(self, dim: int = 4):
        super().__init__(NoiseSchedule(), "epsilon", sample_shape=(dim,))
        self.mean = nn.Parameter(torch.linspace(-1.0, 1.0, dim))

    def forward(self, x, t, cond=None):
        abar = self.schedule.alphas_cumprod().to(x)[torch.as_tensor(t).round().long()]
        abar = abar.reshape(-1, *[1] * (x.dim() - 1))
        return (1 - abar).sqrt() * (x - abar.sqrt() * self.mean)


register_model("unit-gaussian", UnitGaussian)

if __name__ == "__main__":
    model = sdo.models.get("unit-gaussian", dim=3)
    problem = sdo.Problem(
        model, sdo.samplers.get("ddim", steps=10), sdo.objectives.get("target-mse"), wrt="params"
    )
    res = sdo.grad(problem, "bptt")
    print(list(res.grads), res.x0)  # ['mean'] and one sample of N(mean, I)
