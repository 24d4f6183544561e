"""Test configuration: offline, deterministic, float64 helpers."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import sdo  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_problem(
    model="gmm", sampler="ddim", steps=4, wrt="latent", dtype=torch.float64, objective=None, **kw
):
    """A small Problem; `model` may be a name or a Denoiser; `kw` go to the model factory or Problem."""
    problem_keys = {"seed", "batch", "intermediate_step", "params", "latent", "cond", "noise", "device"}
    pkw = {k: v for k, v in kw.items() if k in problem_keys}
    mkw = {k: v for k, v in kw.items() if k not in problem_keys}
    sampler_opts = mkw.pop("sampler_options", {})
    m = sdo.models.get(model, **mkw) if isinstance(model, str) else model
    obj = objective or sdo.objectives.get("target-mse", seed=7)
    spec = sdo.samplers.get(sampler, steps=steps, **sampler_opts)
    return sdo.Problem(m, spec, obj, wrt=wrt, dtype=dtype, **pkw)
