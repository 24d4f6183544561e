"""`make analysis` smoke run: every notebook executes on tiny settings, every figure cell carries an inline PNG,
nothing is written to stderr, and the first cell records provenance."""

import json

import pytest

from analysis.run_notebooks import NOTEBOOKS, available, main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    out = tmp_path_factory.mktemp("notebooks")
    assert main(["--quick", "--out", str(out)]) == 0
    return {name: json.loads((out / f"{name}.ipynb").read_text()) for name in available()}


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.py")))
def test_notebook_runs_with_images_and_no_warnings(executed, name):
    cells = [c for c in executed[name]["cells"] if c["cell_type"] == "code"]
    assert "provenance" in cells[0]["metadata"]["tags"]
    assert '"git_commit"' in "".join(cells[0]["outputs"][0]["text"])
    for cell in cells:
        outputs = cell.get("outputs", [])
        assert not [o for o in outputs if o["output_type"] == "error"], cell["source"][:200]
        stderr = [o for o in outputs if o.get("name") == "stderr"]
        assert not stderr, "".join(stderr[0]["text"])[:500]
        if "figure" in cell["metadata"].get("tags", []):
            assert any("image/png" in o.get("data", {}) for o in outputs), cell["source"][:200]
    assert any("figure" in c["metadata"].get("tags", []) for c in cells)


@pytest.mark.parametrize("argv", [["--quick", "--full"], ["no-such-notebook"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code != 0
    said = str(err.value.code) + capsys.readouterr().err
    assert "not allowed with" in said or "valid: " in said
