"""Execute the jupytext notebooks in analysis/notebooks/ and write the executed .ipynb files with inline PNGs.

python -m analysis.run_notebooks [--out results/analysis] [--quick | --full] [names ...]

Each executed notebook starts with a provenance cell (commit, versions, device, threads, date, command).
`--quick` sets SDO_ANALYSIS_QUICK=1, which every notebook reads to use tiny settings (the test suite's smoke run);
`--full` sets SDO_ANALYSIS_FULL=1, the heavier settings of the notebooks that have them (see each first cell).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parent.parent
KERNEL_ENV = {
    "TQDM_DISABLE": "1",  # progress bars belong in terminals, not in executed notebooks
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
    "HF_HUB_OFFLINE": "1",
}


def provenance_cell(command: str):
    """A code cell that prints where the notebook's results come from."""
    import nbformat

    source = (
        "# provenance of this executed notebook\n"
        "import json\n\n"
        "from sdo.provenance import provenance\n\n"
        f"print(json.dumps({{**provenance(), 'command': {command!r}}}, indent=1, default=str))"
    )
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["provenance"]})


def available() -> list[str]:
    """Notebook names (the jupytext sources' stems)."""
    return sorted(p.stem for p in NOTEBOOKS.glob("*.py"))


def execute(
    source: Path,
    out_dir: Path,
    quick: bool = False,
    command: str = "",
    cell_timeout: int = 3600,
    full: bool = False,
) -> Path:
    """Run one percent-format notebook in the repository root (a cell running longer than `cell_timeout`
    seconds fails); save it executed as out_dir/<name>.ipynb."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(source)
    nb.cells.insert(0, provenance_cell(command or f"python -m analysis.run_notebooks {source.stem}"))
    env = {
        **KERNEL_ENV,
        "SDO_ANALYSIS_OUT": str(out_dir),
        "SDO_ANALYSIS_QUICK": "1" if quick else "0",
        "SDO_ANALYSIS_FULL": "1" if full else "0",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb, kernel_name="python3", timeout=cell_timeout, resources={"metadata": {"path": str(ROOT)}}
        ).execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    target = out_dir / f"{source.stem}.ipynb"
    nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.run_notebooks", description=__doc__)
    parser.add_argument("--out", default="results/analysis")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny settings (seconds per notebook)")
    size.add_argument(
        "--full", action="store_true", help="the heavier settings (tens of minutes per notebook)"
    )
    parser.add_argument(
        "--cell-timeout", type=int, default=3600, help="seconds a cell may run before it fails (default 3600)"
    )
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        raise SystemExit(f"unknown notebook(s) {unknown}; valid: {', '.join(available())}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m analysis.run_notebooks " + shlex.join(sys.argv[1:] if argv is None else argv)
    for name in names:
        print(f"executing {name} ...", flush=True)
        start = time.perf_counter()
        target = execute(NOTEBOOKS / f"{name}.py", out, args.quick, command, args.cell_timeout, args.full)
        print(f"wrote {target} in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
