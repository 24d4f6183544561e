# sdo — every target sets up .venv itself on a fresh machine (torch from this machine's disk first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: all venv test lint pytest benchmark benchmark-accuracy benchmark-table3 benchmark-full models tasks analysis lab clean

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
BENCH_ACCURACY_OUT ?= results/accuracy
BENCH_TABLE3_OUT ?= results/table3

benchmark: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(PY) -m pytest bench -q -p no:cacheprovider --benchmark-json=$(BENCH_OUT)/pytest-benchmark.json $(BENCH_PYTEST_ARGS)
	$(PY) -m bench run --grid $(BENCH_GRID) --out $(BENCH_OUT) $(BENCH_ARGS)

# Trained models: accuracy (cosine, relative error, norm ratio) vs float64 BPTT at N = 10..200 (resumable).
benchmark-accuracy: $(STAMP)
	$(PY) -m bench run --grid accuracy --out $(BENCH_ACCURACY_OUT) $(BENCH_ARGS)

# The paper's Table 3 on CPU: SDO vs the AdjointDPM / DOODL presets and the suite's configurations.
benchmark-table3: $(STAMP)
	$(PY) -m bench run --grid table3 --out $(BENCH_TABLE3_OUT) $(BENCH_ARGS)

benchmark-full: $(STAMP)
	$(PY) -m bench run --grid full --device cuda --out $(BENCH_FULL_OUT) $(BENCH_FULL_ARGS)

# Retrains the shipped Fashion-MNIST models (seeded; about 1.5 h on 2 shared CPU cores) and rewrites their cards.
models: $(STAMP)
	$(PY) -m sdo.train classifier --epochs 4 --batch 128 --lr 0.002 --seed 0
	$(PY) -m sdo.train ddpm --steps 5000 --batch 32 --lr 1e-3 --ema 0.999 --seed 0
	$(PY) -m sdo.train card classifier
	$(PY) -m sdo.train card ddpm --samples 1000 --ddim-steps 25
	$(PY) -m sdo.train classifier --model fmnist-classifier-eval --epochs 10 --batch 128 --lr 0.002 --seed 1
	$(PY) -m sdo.train card fmnist-classifier-eval
	$(PY) -m sdo.train classifier --model digits-classifier --epochs 40 --batch 64 --lr 0.003 --seed 0
	$(PY) -m sdo.train ddpm --model digits-ddpm
	$(PY) -m sdo.train card digits-ddpm --samples 1000 --ddim-steps 50

# The paper's experiments with intervals (results/tasks/README.md: claim | ours | verdict). Resumable: every
# finished chunk is kept in results/tasks/chunks/ and the same command computes only what is missing;
# TASKS_MINUTES=150 starts no new chunk after 150 minutes (the tables then say how much they rest on).
TASKS_MODEL ?= fmnist-ddpm-v2
TASKS_MINUTES ?=
TASKS_ARGS ?=
tasks: $(STAMP)
	$(PY) -m sdo.tasks all --model $(TASKS_MODEL) --out results/tasks \
		$(if $(TASKS_MINUTES),--max-minutes $(TASKS_MINUTES)) $(TASKS_ARGS)

# Every task end to end in tiny settings (a smoke run; its numbers mean nothing and are not committed).
TASKS_QUICK_MODEL ?= fmnist-ddpm
TASKS_QUICK_OUT ?= /tmp/sdo-tasks-quick
tasks-quick: $(STAMP)
	$(PY) -m sdo.tasks all --quick --model $(TASKS_QUICK_MODEL) --out $(TASKS_QUICK_OUT)

ANALYSIS_ARGS ?=
analysis: $(STAMP)
	$(PY) -m analysis.run_notebooks --out results/analysis $(ANALYSIS_ARGS)

# JupyterLab on the notebooks (jupytext .py sources open as notebooks: right-click > Open With > Notebook).
LAB_ARGS ?=
lab: $(STAMP)
	$(PY) -m jupyter lab --notebook-dir=analysis/notebooks $(LAB_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
