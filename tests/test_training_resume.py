"""Training resumes bit-exactly, and the class-conditional model honours its class input and guidance."""

import torch
from diffusers import UNet2DModel

from sdo.models.conditional import GuidedUNetDenoiser, one_hot
from sdo.schedule import DDPM_SCHEDULE
from sdo.train.ddpm import DDPMRecipe, EpochBatches, train_ddpm

TINY = dict(
    sample_size=8,
    in_channels=1,
    out_channels=1,
    layers_per_block=1,
    block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D"),
    norm_num_groups=4,
    num_class_embeds=4,
)


def tiny_recipe() -> DDPMRecipe:
    return DDPMRecipe(
        lambda: UNet2DModel(**TINY), steps=6, batch=4, warmup=2, classes=3, min_snr=5.0, checkpoint_every=2
    )


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(10, 1, 8, 8, generator=g) * 2 - 1, torch.randint(0, 3, (10,), generator=g)


def _weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_stopped_and_resumed_run_equals_uninterrupted_run(tmp_path):
    data, labels = tiny_data()
    train_ddpm(tiny_recipe(), data, labels, tmp_path / "a.safetensors", tmp_path / "work-a", resume=False)
    train_ddpm(tiny_recipe(), data, labels, tmp_path / "b.safetensors", tmp_path / "work-b", stop_at=3)
    info = train_ddpm(
        tiny_recipe(), data, labels, tmp_path / "b.safetensors", tmp_path / "work-b", resume=True
    )
    a, b = _weights(tmp_path / "a.safetensors"), _weights(tmp_path / "b.safetensors")
    assert info["steps"] == 6 and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = _weights(tmp_path / "work-b" / "ema.safetensors")
    assert all(torch.equal(first[k], b[k]) for k in a)


def test_epoch_batches_cover_the_data_once_per_epoch_and_depend_on_step_only():
    batches = EpochBatches(10, 3, seed=0)
    epoch0 = torch.cat([batches.indices(s) for s in range(3)])
    assert epoch0.unique().numel() == 9
    assert torch.equal(EpochBatches(10, 3, seed=0).indices(4), batches.indices(4))


def _guided(guidance: float) -> GuidedUNetDenoiser:
    torch.manual_seed(0)
    unet = UNet2DModel(**TINY)
    with torch.no_grad():
        unet.class_embedding.weight.mul_(50.0)  # make the class input matter at random init
    return GuidedUNetDenoiser(unet, DDPM_SCHEDULE, classes=3, guidance=guidance)


def test_class_input_changes_the_output_and_soft_labels_interpolate_the_embedding():
    model = _guided(1.0)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor(500.0)
    c0, c1 = one_hot(torch.tensor([0, 0]), 3), one_hot(torch.tensor([1, 1]), 3)
    assert (model(x, t, c0) - model(x, t, c1)).abs().max() > 1e-3
    with torch.no_grad():
        ints = model.unet(x, t.expand(2), class_labels=torch.tensor([2, 2])).sample
    assert torch.allclose(model(x, t, one_hot(torch.tensor([2, 2]), 3)), ints, atol=1e-6)


def test_guidance_is_the_classifier_free_combination_of_two_independent_calls():
    model, w = _guided(3.0), 3.0
    x, t, c = torch.randn(2, 1, 8, 8), torch.tensor(300.0), one_hot(torch.tensor([1, 2]), 3)
    with torch.no_grad():
        cond = model.unet(x, t.expand(2), class_labels=torch.tensor([1, 2])).sample
        null = model.unet(x, t.expand(2), class_labels=torch.tensor([3, 3])).sample
    assert torch.allclose(model(x, t, c), null + w * (cond - null), atol=1e-5)


def test_class_vector_is_differentiable():
    model = _guided(2.0)
    c = one_hot(torch.tensor([0]), 3).requires_grad_(True)
    model(torch.randn(1, 1, 8, 8), torch.tensor(100.0), c).square().sum().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
