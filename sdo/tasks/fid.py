"""FID with torch-fidelity, in the feature space of the trained classifier's penultimate layer."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .devices import module_device
from .sampling import to_uint8

FEATURE_EXTRACTOR = "fmnist-classifier"
FEATURE = "penultimate"


class _Images(Dataset):
    """uint8 (N, 1, 32, 32) images as a torch-fidelity input dataset."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, k: int) -> torch.Tensor:
        return self.images[k]


def _extractor_class():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class ClassifierFeatureExtractor(FeatureExtractorBase):
        """torch-fidelity feature extractor: uint8 (N, 1, 32, 32) -> the classifier's penultimate features."""

        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)
            from ..models.trained import fmnist_classifier

            self.classifier = fmnist_classifier()

        @staticmethod
        def get_provided_features_list():
            return (FEATURE,)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return FEATURE

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 1, 32, 32, dtype=torch.uint8)

        def forward(self, x):
            x = x.float().div(127.5).sub(1.0)
            return (self.classifier.penultimate(x).double(),)

    return ClassifierFeatureExtractor


def register() -> None:
    """Register the classifier feature extractor with torch-fidelity (idempotent)."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if FEATURE_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(FEATURE_EXTRACTOR, _extractor_class())


def fid(generated: torch.Tensor, reference: torch.Tensor) -> float:
    """FID between two image sets in [-1, 1] (N, 1, 32, 32), classifier-penultimate features."""
    from torch_fidelity import calculate_metrics

    register()
    metrics = calculate_metrics(
        input1=_Images(to_uint8(generated).cpu()),
        input2=_Images(to_uint8(reference).cpu()),
        fid=True,
        feature_extractor=FEATURE_EXTRACTOR,
        feature_layer_fid=FEATURE,
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
        batch_size=500,
    )
    return float(metrics["frechet_inception_distance"])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets (rows are samples)."""
    from scipy import linalg

    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(sa @ sb)
    return float(mu @ mu + np.trace(sa + sb - 2 * np.real(root)))


@torch.no_grad()
def features(classifier, x: torch.Tensor, batch: int = 500) -> np.ndarray:
    """Penultimate features (float64 numpy) of images in [-1, 1], quantised to uint8 like an image file, computed
    on the classifier's device."""
    x = to_uint8(x).float().div(127.5).sub(1.0).to(module_device(classifier))
    return (
        torch.cat([classifier.penultimate(x[i : i + batch]) for i in range(0, len(x), batch)])
        .double()
        .cpu()
        .numpy()
    )


def fid_change_interval(
    ref: np.ndarray, clean: np.ndarray, pairs: dict, reference: str = "sdo", draws: int = 200, seed: int = 0
) -> dict:
    """FID(adv) - FID(clean) per method with a paired bootstrap over samples (the same resampled rows for
    clean and every method): {method: (change, lo, hi)}, plus {"<method> - <reference>": (diff, lo, hi)} for
    the difference of changes; `pairs` maps method -> its adversarial features (rows aligned with clean)."""
    rng = np.random.default_rng(seed)
    n = len(clean)
    idx = [rng.integers(0, n, n) for _ in range(draws)]
    base = frechet_distance(clean, ref)
    boot_clean = np.array([frechet_distance(clean[i], ref) for i in idx])
    point, boot = {}, {}
    for name, adv in pairs.items():
        boot[name] = np.array([frechet_distance(adv[i], ref) for i in idx]) - boot_clean
        point[name] = frechet_distance(adv, ref) - base
    out = {}
    for name in pairs:
        lo, hi = np.quantile(boot[name], [0.025, 0.975])
        out[name] = (point[name], float(lo), float(hi))
        if reference in pairs and name != reference:
            lo, hi = np.quantile(boot[name] - boot[reference], [0.025, 0.975])
            out[f"{name} - {reference}"] = (point[name] - point[reference], float(lo), float(hi))
    return out
