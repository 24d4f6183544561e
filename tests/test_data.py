"""Fashion-MNIST from the Debian package: shapes, ranges, labels, and the missing-package error."""

import pytest
import torch

from sdo.data import CLASSES, INSTALL_HINT, DatasetMissing, fmnist_available, load_fmnist, to_model_space

needs_fmnist = pytest.mark.skipif(not fmnist_available(), reason=f"Fashion-MNIST missing: {INSTALL_HINT}")


@needs_fmnist
def test_splits_have_the_published_sizes_and_balanced_labels():
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = load_fmnist(split)
        assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
        assert torch.bincount(labels, minlength=10).tolist() == [n // 10] * 10
    assert len(CLASSES) == 10


def test_model_space_pads_with_background_and_scales_to_unit_range():
    img = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    x = to_model_space(img)
    assert x.shape == (2, 1, 32, 32)
    assert x[:, :, 2:30, 2:30].eq(1).all() and x[:, :, :2].eq(-1).all() and x[:, :, :, 30:].eq(-1).all()


def test_missing_dataset_names_the_install_command(tmp_path):
    with pytest.raises(DatasetMissing, match="apt-get install dataset-fashion-mnist"):
        load_fmnist("train", root=tmp_path)


def test_unknown_split_lists_valid_ones():
    with pytest.raises(ValueError, match="train, test"):
        load_fmnist("val")
