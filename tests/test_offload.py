"""bptt-offload: BPTT with saved activations in host memory gives BPTT's gradient."""

import pytest
import torch
from conftest import make_problem

import sdo
from sdo.estimators.offload import ALWAYS_CPU_NOTE, CPU_NOTE


@pytest.mark.parametrize("wrt,kw", [("latent", {}), ("params", {}), ("cond", {"conditional": True})])
@pytest.mark.parametrize("mode", ["auto", "always"])
def test_equals_bptt_bitwise(wrt, kw, mode):
    problem = make_problem(steps=5, wrt=wrt, **kw)
    ref, res = sdo.grad(problem, "bptt"), sdo.grad(problem, "bptt-offload", mode=mode)
    assert res.ok and set(res.grads) == set(ref.grads)
    for k in ref.grads:
        assert torch.equal(res.grads[k], ref.grads[k]), k
    assert res.stats["nfe_fwd_grad"] == ref.stats["nfe_fwd_grad"] == 5
    assert res.stats["nfe_bwd"] == 5


def test_mlp_equals_bptt_and_rows_say_cpu():
    problem = make_problem("mlp", steps=4)
    ref = sdo.grad(problem, "bptt")
    auto, always = sdo.grad(problem, "bptt-offload"), sdo.grad(problem, "bptt-offload", mode="always")
    assert torch.equal(auto.flat(), ref.flat()) and torch.equal(always.flat(), ref.flat())
    assert auto.stats["offload"] == CPU_NOTE
    assert always.stats["offload"] == ALWAYS_CPU_NOTE


def test_saved_tensors_leave_through_the_hook():
    """mode='always' really routes saved tensors through save_on_cpu's pack hook."""
    packed = []
    original = torch.autograd.graph.save_on_cpu.__init__

    def spy(self, pin_memory=False, device_type="cuda"):
        original(self, pin_memory, device_type)
        pack = self.pack_hook
        self.pack_hook = lambda t: packed.append(1) or pack(t)

    problem = make_problem(steps=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.autograd.graph.save_on_cpu, "__init__", spy)
        sdo.grad(problem, "bptt-offload", mode="always")
        assert packed
        packed.clear()
        sdo.grad(problem, "bptt-offload")
        assert not packed  # auto on CPU: plain BPTT


def test_bad_mode():
    with pytest.raises(ValueError, match="valid: auto, always"):
        sdo.estimators.get("bptt-offload", mode="gpu")
