"""SDO at its memory floor: memory='floor' recomputes the retained step's network call in the backward; the
gradient is plain SDO's, with N + 1 forwards and no network graph held while sampling."""

import pytest
import torch
from conftest import make_problem

import sdo
from sdo.measure import count_flops, live_tensor_bytes
from sdo.theory import unit_flops


@pytest.mark.parametrize(
    "model, wrt, options",
    [
        ("mlp", "latent", {}),
        ("mlp", "intermediate", {}),
        ("mlp", "params", {"step": 2}),
    ],
)
def test_floor_gradient_equals_plain_sdo(model, wrt, options):
    kw = {"intermediate_step": 3} if wrt == "intermediate" else {}
    problem = make_problem(model, steps=4, wrt=wrt, **kw)
    plain = sdo.grad(problem, "sdo", **options)
    floor = sdo.grad(problem, "sdo", memory="floor", **options)
    assert plain.grads.keys() == floor.grads.keys()
    for k in plain.grads:
        assert torch.allclose(
            floor.grads[k], plain.grads[k], rtol=1e-12, atol=1e-12 * plain.grads[k].abs().max()
        )
    assert floor.loss == plain.loss


def test_floor_counts_and_peak():
    """N no-graph forwards, one recomputed forward and one VJP (as predicted, FLOPs too); the live peak stays
    below plain SDO's, which holds step N's graph through the other N - 1 forwards."""
    problem = make_problem("unet-tiny", steps=4, dtype=torch.float32)
    floor = sdo.estimators.get("sdo", memory="floor")
    peaks = {}
    for name, est in (("plain", sdo.estimators.get("sdo")), ("floor", floor)):
        with live_tensor_bytes() as live:
            result = est(problem)
        peaks[name] = live.peak
    nfe = {k: v for k, v in result.stats.items() if k.startswith("nfe_")}
    assert (
        nfe
        == floor.predict(problem).nfe()
        == {
            "nfe_fwd_grad": 0,
            "nfe_fwd_nograd": 4,
            "nfe_fwd_recompute": 1,
            "nfe_bwd": 1,
        }
    )
    assert peaks["floor"] < peaks["plain"]
    flops = count_flops(lambda: floor(problem))
    assert flops == pytest.approx(floor.predict(problem).flops(unit_flops(problem)), rel=0.02)


def test_unknown_memory_mode_is_rejected():
    with pytest.raises(ValueError, match="hold, floor"):
        sdo.estimators.get("sdo", memory="low")
