# sdo — every target sets up .venv itself on a fresh machine (torch from this machine's disk first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: all venv test lint pytest benchmark benchmark-full models tasks analysis lab clean

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c constraints.txt -e ".[bench,tasks,dev,analysis]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check sdo bench analysis tests
	$(PY) -m ruff format --check sdo bench analysis tests

pytest: $(STAMP)
	$(PY) -m pytest tests

test: lint pytest

BENCH_OUT ?= results
BENCH_GRID ?= quick
BENCH_ARGS ?=
BENCH_PYTEST_ARGS ?=
BENCH_FULL_OUT ?= results/full
BENCH_FULL_ARGS ?=

benchmark: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(PY) -m pytest bench -q -p no:cacheprovider --benchmark-json=$(BENCH_OUT)/pytest-benchmark.json $(BENCH_PYTEST_ARGS)
	$(PY) -m bench run --grid $(BENCH_GRID) --out $(BENCH_OUT) $(BENCH_ARGS)

benchmark-full: $(STAMP)
	$(PY) -m bench run --grid full --device cuda --out $(BENCH_FULL_OUT) $(BENCH_FULL_ARGS)

# Retrains the shipped Fashion-MNIST models (seeded; about 1.5 h on 2 shared CPU cores) and rewrites their cards.
models: $(STAMP)
	$(PY) -m sdo.train classifier --epochs 4 --batch 128 --lr 0.002 --seed 0
	$(PY) -m sdo.train ddpm --steps 5000 --batch 32 --lr 1e-3 --ema 0.999 --seed 0
	$(PY) -m sdo.train card classifier
	$(PY) -m sdo.train card ddpm --samples 1000 --ddim-steps 25

tasks: $(STAMP)
	$(PY) -m sdo.tasks all --out results/tasks

ANALYSIS_ARGS ?=
analysis: $(STAMP)
	$(PY) -m analysis.run_notebooks --out results/analysis $(ANALYSIS_ARGS)

# JupyterLab on the notebooks (jupytext .py sources open as notebooks: right-click > Open With > Notebook).
LAB_ARGS ?=
lab: $(STAMP)
	$(PY) -m jupyter lab --notebook-dir=analysis/notebooks $(LAB_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
