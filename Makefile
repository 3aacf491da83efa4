# Lab 12: TensorFlow Overview. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NOTEBOOKS := Exercise1.01/test_stack.ipynb Exercise1.02/mnist.ipynb Activity1.01/hyperparams.ipynb
# make test: tests/ on TEST_WORKERS pytest-xdist workers (a file stays on one worker), then the
# notebooks under nbval in one process, with the 97% acceptance test reading nbval's full-data run.
TEST_WORKERS ?= 2
ACCEPTANCE := tests/test_notebooks.py::test_mnist_notebook_passes_97_percent_on_the_full_data
PYTEST := $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with $(CURDIR)/tests/sanitize.cfg

.PHONY: help setup data chromium run test test-fast test-browser lab tensorboard sweep bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(INSTALLED): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -e '.[cluster]'
	@touch $@

setup: $(INSTALLED) data  ## create .venv, install pinned packages and tflab, prepare MNIST (idempotent)

data: $(INSTALLED)  ## fetch or build the verified MNIST cache (data/mnist.npz)
	$(PY) -m tflab data

chromium:  ## install Debian's Chromium for the browser tests, if missing
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

run: setup  ## train Exercise 1.02 with the lesson defaults and print the test accuracy
	cd Exercise1.02 && ../$(PY) mnist.py
	@echo "See the run in TensorBoard:  make tensorboard   (then open the printed http://localhost URL)"

test: setup chromium  ## the whole suite: unit tests, notebooks under nbval, browser tests
	status=0; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --durations=15 tests --deselect $(ACCEPTANCE) || status=1; \
	$(PYTEST) --durations=5 $(NOTEBOOKS) $(ACCEPTANCE) || status=1; \
	exit $$status

test-fast: setup  ## quick loop: unit tests on small data, no full-data training, no browser
	$(PY) -m pytest tests -m "not slow and not browser"

test-browser: setup chromium  ## only the headless-Chromium tests
	$(PY) -m pytest tests/browser

lab: setup  ## JupyterLab on http://127.0.0.1 with token auth
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --no-browser

tensorboard: setup  ## TensorBoard on localhost over logs/ (next free port if 6006 is busy)
	$(PY) -m tflab board

sweep: setup  ## an example instructor sweep of Activity 1.01 (sweeps/example.yaml) into runs/; re-run to resume
	$(PY) -m tflab sweep --grid sweeps/example.yaml $(SWEEP_ARGS)

bench: setup  ## the training benchmark (benchmarks/results.md)
	$(PY) benchmarks/bench.py

clean:  ## remove logs, runs and test artifacts (keeps .venv and data)
	rm -rf logs/fit logs/hparams runs artifacts .pytest_cache
