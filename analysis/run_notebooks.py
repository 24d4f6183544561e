"""Execute the jupytext notebooks in analysis/notebooks/ and write the executed .ipynb files.

python -m analysis.run_notebooks [--out results/analysis] [names ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).parent / "notebooks"


def execute(source: Path, out_dir: Path) -> Path:
    """Run one percent-format notebook in the repository root; save it executed as out_dir/<name>.ipynb."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(source)
    root = Path(__file__).resolve().parent.parent
    os.environ["SDO_ANALYSIS_OUT"] = str(out_dir)
    NotebookClient(
        nb, kernel_name="python3", timeout=1800, resources={"metadata": {"path": str(root)}}
    ).execute()
    target = out_dir / f"{source.stem}.ipynb"
    nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="results/analysis")
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    args = parser.parse_args(argv)
    available = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
    names = args.names or available
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(f"unknown notebook(s) {unknown}; valid: {', '.join(available)}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"executing {name} ...", flush=True)
        print(f"wrote {execute(NOTEBOOKS / f'{name}.py', out)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
