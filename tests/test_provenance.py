"""Provenance names the installed package's source, whatever the working directory."""

import json
import os
import subprocess
import sys

from sdo import provenance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git_head() -> str:
    return subprocess.run(
        ["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


def test_commit_is_the_package_source_tree_from_another_directory(tmp_path):
    code = "import json, sdo.provenance as p; print(json.dumps(p.provenance(['x'], device='cpu')))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GIT_DIR": "", "GIT_WORK_TREE": ""}
    env = {k: v for k, v in env.items() if v}
    before = _git_head()  # a commit made meanwhile (a shared checkout) changes HEAD: accept either
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    rec = json.loads(out.stdout)
    assert rec["git_commit"] in (before, _git_head()) and rec["sdo_source"] == "git"
    assert isinstance(rec["git_dirty"], bool) and rec["command"].endswith(" x")
    for key in ["torch_version", "diffusers_version", "python_version", "threads", "date", "device_name"]:
        assert rec[key] not in (None, ""), key


def test_a_package_outside_any_git_tree_reports_its_version(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    src = provenance.source(tmp_path)
    assert src["git_commit"] is None and src["sdo_source"] == "installed"
    assert src["sdo_version"] == provenance.package_version() != ""


def test_an_untracked_copy_inside_a_git_tree_is_not_given_that_tree_s_commit(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    pkg = tmp_path / "site-packages" / "sdo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    assert provenance.source(pkg)["git_commit"] is None
