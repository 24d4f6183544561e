"""The README's examples run as written: every Python block, the `python -m sdo` lines of its shell blocks,
and the extension examples in docs/examples/ (which the README includes verbatim). Slow models and step
counts are replaced by cheap stand-ins of the same shapes; the code itself is not changed."""

import os
import re
import shlex

import pytest
import torch

import sdo
from sdo.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()
EXAMPLES = os.path.join(ROOT, "docs", "examples")
REGISTRIES = [
    sdo.estimators.ESTIMATORS,
    sdo.models.MODELS,
    sdo.samplers.SAMPLERS,
    sdo.objectives.OBJECTIVES,
]


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks in `language`."""
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.fixture
def stand_ins(monkeypatch):
    """ddpm-cifar10 -> unet-tiny at 32x32, a local path -> a tiny model of its kind, N > 20 -> N = 4;
    registrations made by the examples are removed afterwards."""
    model, sampler = sdo.models.get, sdo.samplers.get

    def get_model(name, *args, **kw):
        if name == "ddpm-cifar10":
            return model("unet-tiny", *args, sample_size=32, **kw)
        if isinstance(name, str) and name.startswith("/"):
            return model("ldm-tiny" if "stable-diffusion" in name else "unet-tiny", *args, **kw)
        return model(name, *args, **kw)

    def get_sampler(name, steps=50, **kw):
        return sampler(name, steps=4 if steps > 20 else steps, **kw)

    monkeypatch.setattr(sdo.models, "get", get_model)
    monkeypatch.setattr(sdo.samplers, "get", get_sampler)
    saved = [(r, dict(r._factories), dict(r._defaults)) for r in REGISTRIES]
    yield
    for r, factories, defaults in saved:
        r._factories, r._defaults = factories, defaults


def test_every_example_file_is_in_the_readme_verbatim():
    files = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
    assert len(files) >= 4
    python = blocks("python")
    for name in files:
        text = open(os.path.join(EXAMPLES, name)).read()
        assert text.rstrip("\n") + "\n" in python, name


def test_python_blocks_run(stand_ins, capsys):
    namespace = {"__name__": "__main__"}
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "first-and-last [8, 1] 2" in out and "['mean']" in out
    assert isinstance(namespace["res"], sdo.GradResult) and namespace["res"].ok


def test_sdo_command_lines_run(stand_ins, capsys):
    lines = [ln for b in blocks("bash") for ln in b.splitlines() if ln.startswith("python -m sdo ")]
    assert len(lines) >= 3
    for line in lines:
        argv = shlex.split(line)[3:]
        if "--device" in argv and not torch.cuda.is_available():
            i = argv.index("--device")
            del argv[i : i + 2]
        assert main(argv) == 0, line
    assert capsys.readouterr().out.count("status=ok") >= 2
