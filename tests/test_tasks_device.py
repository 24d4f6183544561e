"""The tasks' device: it reaches the models, latents and conditioning, is recorded in every chunk and output,
wall times wait for it, unknown or unavailable devices are refused, and chunks are stored on the CPU."""

import copy
import json

import pytest
import torch
from torch import nn

import sdo
from sdo.tasks import __main__ as cli
from sdo.tasks.adversarial import AdversarialConfig, run_adversarial
from sdo.tasks.chunks import ChunkRunner, save_chunk
from sdo.tasks.common import Stopwatch, TaskModels
from sdo.tasks.devices import task_device
from sdo.tasks.report import write_readme
from sdo.tasks.sampling import class_cond, latents

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class Stub(nn.Module):
    """A classifier on 8x8 images that prefers class 0 and depends smoothly on x."""

    def penultimate(self, x):
        return x.flatten(1)

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10, dtype=x.dtype, device=x.device)
        logits[:, 0] = 5.0
        return logits + 0.1 * torch.tanh(x.flatten(1)[:, :10])


@pytest.fixture(scope="module")
def digits():
    return sdo.models.get("digits-ddpm", conditional=True)


def test_latents_are_drawn_on_the_cpu_and_placed_on_the_models_device(digits):
    expected = torch.randn((3, *digits.sample_shape), generator=torch.Generator().manual_seed(5))
    assert torch.equal(latents(digits, 3, 5), expected)
    on_meta = copy.deepcopy(digits).to("meta")  # a device other than the CPU, without a GPU
    assert latents(on_meta, 3, 5).device.type == "meta"
    assert class_cond(on_meta, torch.tensor([1, 2])).device.type == "meta"


def test_the_cli_device_reaches_the_models_and_the_runner(monkeypatch, tmp_path):
    seen = {}

    def run(*args):
        seen["run"] = args
        return {}

    monkeypatch.setattr(cli, "load_models", lambda *args: seen.setdefault("models", args))
    monkeypatch.setattr(cli, "run", run)
    assert cli.main(["style", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert seen["models"][-1] == torch.device("cpu") and seen["run"][-1].device == torch.device("cpu")


def test_a_cpu_run_records_its_device_in_chunks_json_and_readme(digits, tmp_path):
    tm = TaskModels(digits, Stub(), Stub(), "digits")
    cfg = AdversarialConfig(n=3, steps=3, opt_steps=1, seeds=(0,), batch=3, fid_reference=0, pool_factor=10)
    run_adversarial(cfg, ["sdo"], tmp_path, tm, ChunkRunner(tmp_path, device="cpu"))
    for path in (tmp_path / "chunks").rglob("*.pt"):
        assert torch.load(path, weights_only=True)["provenance"]["device"] == "cpu"
    notes = json.loads((tmp_path / "adversarial-gd.json").read_text())
    assert notes["provenance"]["device"] == "cpu"
    assert [d.split(" ")[0] for d in notes["coverage"]["chunk_devices"]] == ["cpu"]
    write_readme(tmp_path)
    assert "; computed on cpu (" in (tmp_path / "README.md").read_text()


def test_chunks_from_another_device_are_loaded_and_named(tmp_path):
    prov = dict(device="cuda:0", device_name="NVIDIA H100 80GB HBM3")
    save_chunk(tmp_path, "demo/a", dict(n=1), dict(x=torch.ones(2)), prov)
    runner = ChunkRunner(tmp_path, device="cpu")
    assert torch.equal(runner.get("demo/a", dict(n=1), lambda: dict(x=torch.zeros(2)))["x"], torch.ones(2))
    assert runner.coverage(["demo/a"])["chunk_devices"] == ["cuda:0 (NVIDIA H100 80GB HBM3)"]


def test_the_stopwatch_waits_for_the_device(monkeypatch):
    calls = []
    monkeypatch.setattr(sdo.tasks.common, "synchronize", calls.append)
    with Stopwatch("cuda:1") as clock:
        assert calls == ["cuda:1"]
    assert calls == ["cuda:1", "cuda:1"] and clock.seconds >= 0


@pytest.mark.parametrize("device", ["foo", "mps", "cuda:x"])
def test_an_unknown_device_is_refused_with_the_valid_choices(device):
    with pytest.raises(ValueError, match=r"unsupported device .*valid: cpu, cuda, cuda:k"):
        cli.main(["adversarial", "--quick", "--device", device])


@no_cuda
def test_cuda_without_cuda_is_refused_clearly():
    with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available; use cpu"):
        cli.main(["adversarial", "--quick", "--device", "cuda"])
    assert task_device("cpu") == torch.device("cpu")


def tensors(value):
    """Every tensor in a chunk result (through dicts, lists and tuples)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors(v)]
    return []


@needs_cuda
def test_a_cuda_run_stores_its_chunks_on_the_cpu(tmp_path):
    args = ["adversarial", "--quick", "--model", "fmnist-ddpm", "--out", str(tmp_path), "--update", "gd"]
    assert cli.main(args + ["--estimators", "sdo", "--set", "adversarial.steps=4", "--device", "cuda"]) == 0
    chunks = [torch.load(p, weights_only=True) for p in (tmp_path / "chunks").rglob("*.pt")]
    assert chunks and all(c["provenance"]["device"].startswith("cuda") for c in chunks)
    assert all(t.device.type == "cpu" for c in chunks for t in tensors(c["result"]))
    assert json.loads((tmp_path / "adversarial-gd.json").read_text())["provenance"]["device"].startswith(
        "cuda"
    )
