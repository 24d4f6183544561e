"""Bad input gets a ValueError naming what is wrong and the valid choices; non-finite results get a status."""

import pytest
import torch
from conftest import make_problem

import sdo


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: sdo.samplers.get("ddim", steps=0), "steps must be an integer >= 1"),
        (
            lambda: sdo.estimators.get("sdo", K=3),
            "unknown option(s) ['K'] for estimator 'sdo'; valid: seed, step",
        ),
        (lambda: sdo.estimators.get("truncated", mode="random"), "valid: fixed, uniform"),
        (lambda: sdo.estimators.get("truncated", K=0), "K must be an integer >= 1"),
        (lambda: sdo.estimators.get("checkpoint", segment=0), "segment must be an integer >= 1"),
        (lambda: sdo.estimators.get("sdo", scale_by=2), "valid: 1, 'N'"),
        (lambda: make_problem(wrt="weights"), "valid: latent, intermediate, params, cond"),
        (lambda: make_problem(wrt="cond"), "this model takes no conditioning"),
        (lambda: make_problem(wrt="intermediate"), "needs intermediate_step k in 1..4"),
        (lambda: make_problem(wrt="intermediate", intermediate_step=9), "needs intermediate_step k in 1..4"),
        (lambda: make_problem(wrt="params", params=["^nothing$"]), "match no parameter"),
        (
            lambda: make_problem(latent=torch.zeros(1, 5)),
            "latent has shape (1, 5); this model and batch need (1, 2)",
        ),
        (lambda: make_problem(conditional=True, cond=torch.zeros(1, 3)), "cond has shape (1, 3)"),
        (lambda: make_problem(sampler="flow-euler"), "flow-euler needs a flow (velocity) model"),
        (lambda: sdo.objectives.get("classifier", classifier=None, kind="hinge"), "valid: ce, margin"),
        (lambda: sdo.samplers.get("ddim", steps=2.5), "steps must be an integer >= 1"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, needle):
    with pytest.raises(ValueError) as err:
        call()
    assert needle in str(err.value)


@pytest.mark.parametrize("axis", [sdo.estimators, sdo.samplers, sdo.models, sdo.objectives])
def test_unknown_name_lists_every_valid_name(axis):
    with pytest.raises(ValueError) as err:
        axis.get("nope")
    msg = str(err.value)
    assert msg.startswith("unknown ") and "'nope'; valid " in msg
    assert all(name in msg for name in axis.names())


def test_eta_without_noise_is_an_error():
    problem = make_problem(sampler_options={"eta": 0.5})
    problem.noise = None
    with pytest.raises(ValueError, match="needs the step's noise passed explicitly"):
        sdo.grad(problem, "bptt")


def test_shape_mismatched_target_is_an_error():
    obj = sdo.objectives.get("target-mse", target=torch.zeros(3, 7))
    with pytest.raises(ValueError, match="does not match sample shape"):
        sdo.grad(make_problem(objective=obj), "bptt")


@pytest.mark.parametrize("estimator", ["bptt", "sdo", "checkpoint", "truncated"])
def test_nonfinite_loss_sets_status(estimator):
    obj = sdo.objectives.get("callable", fn=lambda x: (x * float("inf")).sum())
    res = sdo.grad(make_problem(objective=obj), estimator)
    assert res.status == "nonfinite" and not res.ok
    assert torch.isnan(torch.tensor(res.norm()))


def test_nonfinite_gradient_with_finite_loss_sets_status():
    obj = sdo.objectives.get("callable", fn=lambda x: torch.sqrt(x.abs()).sum() * 0 + torch.sqrt(x * 0).sum())
    res = sdo.grad(make_problem(objective=obj), "bptt")
    assert res.loss == 0.0 and res.status == "nonfinite"


def _unet_dir(tmp_path, truncate: bool):
    from diffusers import UNet2DModel

    from sdo.models import configs

    UNet2DModel(**configs.UNET_TINY).save_pretrained(tmp_path / "unet")
    weights = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if truncate else b"not a safetensors file" + data[:64])
    return str(tmp_path)


@pytest.mark.parametrize("truncate", [True, False])
def test_truncated_or_corrupt_weights_are_a_value_error(tmp_path, truncate):
    with pytest.raises(ValueError, match="cannot load the UNet2DModel in .*unet: "):
        sdo.models.get(_unet_dir(tmp_path, truncate))


def _nonscalar():
    return sdo.objectives.get("callable", fn=lambda x: x * 2)


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: sdo.models.get("/no/such/dir"), "model path '/no/such/dir' does not exist"),
        (lambda: sdo.models.get("./no-such-dir"), "model path './no-such-dir' does not exist"),
        (lambda: make_problem(device="gpu"), "unknown device 'gpu'; valid: cpu, cuda, cuda:k, mps"),
        (lambda: make_problem(device="npu:0"), "unknown device 'npu:0'"),
        (
            lambda: make_problem(wrt="params", model="mlp", params="net.(["),
            "invalid params regular expression",
        ),
        (lambda: make_problem(dtype="float33"), "unknown dtype 'float33'; valid: float32, float64"),
        (lambda: sdo.objectives.get("target-mse", target=[0.0, 1.0]), "target must be a torch.Tensor"),
        (lambda: sdo.grad(make_problem(objective=_nonscalar()), "bptt"), "must return a scalar tensor"),
        (
            lambda: sdo.estimators.get("sdo", step="x"),
            "option step='x' of estimator 'sdo' must be int or None",
        ),
        (lambda: sdo.estimators.get("truncated", K=2.0), "option K=2.0 of estimator 'truncated' must be int"),
        (lambda: sdo.estimators.get("draft", detach="yes"), "must be bool"),
        (lambda: make_problem(steps=1001), "1001"),
        (lambda: sdo.grad(make_problem(), "draft"), "'draft' does not support wrt='latent' with a window"),
        (lambda: sdo.grad(make_problem(), "sdo", step=2), "keeps the graph of the first differentiated step"),
    ],
)
def test_more_bad_input_is_a_clear_value_error(call, needle):
    with pytest.raises(ValueError) as err:
        call()
    assert needle in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available; use cpu"):
        make_problem(device="cuda")


def test_ddim_grid_at_every_training_timestep_is_accepted_and_distinct():
    problem = make_problem(model="gmm", steps=1000)
    ts = [problem.solver.timestep(i) for i in range(1000, 0, -1)]
    assert ts == sorted(set(ts), reverse=True) and min(ts) >= 0


def test_a_string_params_is_one_pattern():
    problem = make_problem(model="mlp", wrt="params", params="net.0")
    assert problem.parameter_names() == ["net.0.weight", "net.0.bias"]


def test_dtype_by_name_equals_the_torch_dtype():
    a, b = make_problem(dtype="float64"), make_problem(dtype=torch.float64)
    assert a.dtype == torch.float64 and a.latent.dtype == torch.float64
    torch.testing.assert_close(sdo.grad(a, "bptt").grads["latent"], sdo.grad(b, "bptt").grads["latent"])


def test_a_problem_never_converts_the_callers_model():
    model = sdo.models.get("mlp")
    p64 = make_problem(model=model, dtype=torch.float64)
    assert p64.model is not model and next(model.parameters()).dtype == torch.float32
    p32 = make_problem(model=model, dtype=torch.float32)
    assert p32.model is model  # already in dtype on device: shared, as the docstring says
    g32 = sdo.grad(p32, "bptt").grads["latent"]
    torch.testing.assert_close(sdo.grad(p64, "bptt").grads["latent"].float(), g32, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["draft", "alignprop", "truncated", "sdo"])
def test_stats_report_the_registered_name_asked_for(name):
    problem = make_problem(model="mlp", wrt="params")
    assert sdo.grad(problem, name).stats["estimator"] == name


def test_draft_whose_window_reaches_the_latent_is_bptt_and_sdo_accepts_the_first_step():
    problem = make_problem(steps=3)
    exact = sdo.grad(problem, "bptt").grads["latent"]
    torch.testing.assert_close(sdo.grad(problem, "draft", K=3).grads["latent"], exact)
    torch.testing.assert_close(
        sdo.grad(problem, "sdo", step=3).grads["latent"], sdo.grad(problem, "sdo").grads["latent"]
    )
