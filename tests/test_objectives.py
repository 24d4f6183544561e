"""Objectives: Gram-matrix style loss, classifier cross-entropy and margin, user callables."""

import torch
import torch.nn.functional as F

import sdo
from sdo.objectives import gram


def test_gram_matrix_matches_its_definition():
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    expected = torch.stack([fb.reshape(3, -1) @ fb.reshape(3, -1).T / 60 for fb in f])
    torch.testing.assert_close(gram(f), expected)


def test_style_loss_is_zero_at_the_reference_and_positive_elsewhere():
    ref = torch.rand(1, 3, 8, 8)
    style = sdo.objectives.get("style", reference=ref)
    assert style(ref).item() < 1e-12
    assert style(torch.rand(1, 3, 8, 8)).item() > 0


def test_classifier_losses():
    clf = sdo.objectives.SmallClassifier(in_channels=3, classes=4)
    x = torch.rand(5, 3, 8, 8)
    logits = clf(x)
    ce = sdo.objectives.get("classifier", classifier=clf, target=2)
    torch.testing.assert_close(ce(x), F.cross_entropy(logits, torch.full((5,), 2)))
    margin = sdo.objectives.get("classifier", classifier=clf, target=2, kind="margin", kappa=0.5)
    other = torch.cat([logits[:, :2], logits[:, 3:]], 1).amax(1)
    torch.testing.assert_close(margin(x), torch.clamp(logits[:, 2] - other, min=-0.5).mean())


def test_callable_objective_drives_a_gradient():
    problem = sdo.Problem(
        sdo.models.get("gmm"),
        sdo.samplers.get("ddim", steps=3),
        sdo.objectives.get("callable", fn=lambda x: x.sum()),
        dtype=torch.float64,
    )
    res = sdo.grad(problem, "bptt")
    assert res.ok and res.loss == float(res.x0.sum()) and res.norm() > 0
