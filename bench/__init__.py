"""The benchmark harness: declarative case grids, a runner with provenance and resume, tables, figures.

python -m bench run --grid quick --out results      # make benchmark
python -m bench report --out results                 # regenerate tables/figures/README from raw/
"""

from . import presets  # noqa: F401,E402 - registers the adjointdpm and doodl estimator presets
