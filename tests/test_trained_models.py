"""The shipped trained models load, the classifier hits its test accuracy, and fmnist-ddpm's samples look like
garments to it (issue criterion: on 500 samples every class is predicted, mean top-class probability >= 0.7)."""

import pytest
import torch

import sdo
from sdo.data import INSTALL_HINT, fmnist_available, fmnist_tensors
from sdo.models.trained import WEIGHTS_DIR, fmnist_classifier
from sdo.tasks.sampling import generate

needs_fmnist = pytest.mark.skipif(not fmnist_available(), reason=f"Fashion-MNIST missing: {INSTALL_HINT}")
DDIM_STEPS = 10  # DDIM steps for the 500-sample criterion (the card uses 25)
BATCH = 50  # small batches stay in the CPU's cache: a third less time on one core, the same samples


def test_shipped_weights_load_and_fit_the_size_budget():
    model = sdo.models.get("fmnist-ddpm")
    assert model.sample_shape == (1, 32, 32) and model.prediction_type == "epsilon"
    assert sum(p.numel() for p in model.parameters()) > 100_000
    clf = fmnist_classifier()
    assert clf(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    assert not any(p.requires_grad for p in clf.parameters())
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir() if p.is_file())
    assert total <= 25 * 2**20
    for name in ("fmnist-ddpm", "fmnist-classifier"):
        assert (WEIGHTS_DIR / f"{name}.md").exists()


def test_weights_are_trained_not_random():
    trained = sdo.models.get("fmnist-ddpm").unet.state_dict()
    random = sdo.models.trained.fmnist_unet().state_dict()
    assert any(not torch.equal(trained[k], random[k]) for k in trained)


@needs_fmnist
def test_classifier_test_accuracy_at_least_90_percent():
    from sdo.train.classifier import accuracy

    x, y = fmnist_tensors("test")
    assert accuracy(fmnist_classifier(), x, y, batch=2 * BATCH) >= 0.90


def test_ddpm_samples_cover_every_class_with_confident_predictions():
    x = generate(sdo.models.get("fmnist-ddpm"), 500, steps=DDIM_STEPS, seed=0, batch=BATCH)
    with torch.no_grad():
        prob = fmnist_classifier()(x).softmax(1)
    assert prob.argmax(1).unique().numel() == 10
    assert prob.amax(1).mean().item() >= 0.7
