# Two commands a user needs: `make run` and `make test`. Both bootstrap .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
PY_VERSION  := $(shell cat .python-version)
PY_MINOR    := $(basename $(PY_VERSION))
PYTEST_ARGS ?=
# The main suite runs on every core (pytest-xdist), each test file on one worker so that its
# module fixtures (a pipeline run, a worker pool) run once; the 25 slowest tests are listed at
# the end, so what each costs is in every CI log.
TEST_WORKERS ?= auto
MAIN_PYTEST := -n $(TEST_WORKERS) --dist loadfile --durations=25
QUICK       ?=
# The second environment: the newest TensorFlow + Keras 3, no TFX, no Beam (constraints-latest.txt).
LATEST_VENV  := .venv-latest
LATEST_PY    := $(LATEST_VENV)/bin/python
LATEST_STAMP := $(LATEST_VENV)/.installed
LATEST       ?= 1
# What a training job installs (the base package) is tested there too: tests/base/ needs neither
# TFX nor Beam.
BASE_TESTS   := tests/base
DOCS_BUILD   := NO_MKDOCS_2_WARNING=1 $(LATEST_VENV)/bin/mkdocs build --strict --quiet
# The offline benchmark's peer (albumentations + OpenCV): in .venv for `make bench` only, never
# a dependency of the package.
PEER_REQS    := benchmarks/requirements-peer.txt
PEER_STAMP   := $(VENV)/.installed-peer

.PHONY: help setup setup-latest test run bench lint docs clean

help:
	@echo "make run    - set up .venv if needed, then run the example pipeline (python local_runner.py)"
	@echo "make test   - set up .venv (and .venv-latest) if needed, then run the whole test suite"
	@echo "              in the TFX 1.16 stack, and the base-package tests on the newest TensorFlow,"
	@echo "              and builds the docs (LATEST=0 skips the second environment and the docs)"
	@echo "make setup  - create .venv (Python $(PY_MINOR)) and install the project under constraints.txt"
	@echo "make docs   - build the documentation site (mkdocs build --strict, in .venv-latest) into site/"
	@echo "make bench  - run the benchmarks in benchmarks/ (QUICK=1 for a short spot check); installs"
	@echo "              the offline benchmark's peer (albumentations, OpenCV) into .venv first"
	@echo "make lint   - ruff over the project"

setup: $(STAMP)

setup-latest: $(LATEST_STAMP)

# Finds Python $(PY_MINOR) through pyenv or PATH and (re)creates the venv $(1) when it is missing
# or of another version.
define make_venv
	base=$$( (command -v pyenv >/dev/null && pyenv which python$(PY_MINOR) 2>/dev/null) || command -v python$(PY_MINOR) || true); \
	if [ -z "$$base" ]; then \
	  echo "Python $(PY_MINOR) was not found: install it (e.g. 'pyenv install $(PY_VERSION)' or your OS package python$(PY_MINOR)-venv) and run make again." >&2; \
	  exit 1; \
	fi; \
	if [ ! -x "$(1)/bin/python" ] || ! "$(1)/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "$(PY_MINOR)".split("."))))'; then \
	  echo ">> creating $(1) with $$base"; \
	  rm -rf $(1); "$$base" -m venv $(1); \
	fi
endef

# The stamps make a second `make setup` free: pip only runs again when the dependency
# declarations change.
$(STAMP): pyproject.toml constraints.txt .python-version
	@set -e; \
	$(call make_venv,$(VENV)); \
	echo ">> installing the project and its pinned dependencies (first time: 3-5 minutes, about 3.3 GB)"; \
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip==24.2' 'setuptools==75.1.0' 'wheel==0.44.0'; \
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[tfx,dev]'; \
	$(PY) -m pip check; \
	touch $(STAMP)

$(LATEST_STAMP): pyproject.toml constraints-latest.txt .python-version
	@set -e; \
	$(call make_venv,$(LATEST_VENV)); \
	echo ">> installing the base package on the newest TensorFlow (first time: 1-2 minutes, about 2.3 GB)"; \
	$(LATEST_PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip==24.2' 'setuptools==75.1.0' 'wheel==0.44.0'; \
	$(LATEST_PY) -m pip install --quiet --disable-pip-version-check -c constraints-latest.txt -e . \
	  tensorflow pytest pytest-timeout hypothesis scikit-learn pillow \
	  mkdocs mkdocs-material 'mkdocstrings[python]'; \
	$(LATEST_PY) -m pip check; \
	touch $(LATEST_STAMP)

# The peer is installed under constraints.txt, so it can move none of the project's pins, and
# again whenever .venv was (re)installed or the peer's pins change.
$(PEER_STAMP): $(STAMP) $(PEER_REQS)
	@set -e; \
	echo ">> installing the offline benchmark's peer ($(PEER_REQS): albumentations, OpenCV)"; \
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -r $(PEER_REQS); \
	$(PY) -m pip check; \
	touch $(PEER_STAMP)

# The second environment's tests and the docs build run beside the main suite (own temporary
# folder, no shared pytest cache), and their output is printed after it. Either failing fails
# `make test`.
test: setup $(if $(filter 1,$(LATEST)),setup-latest,)
	$(VENV)/bin/lint-imports
ifeq ($(LATEST),1)
	@second_log=$$(mktemp); second_tmp=$$(mktemp -d); \
	echo ">> the base package on $$($(LATEST_PY) -c 'import tensorflow as tf, keras; print("TensorFlow", tf.__version__, "and Keras", keras.__version__)'), without TFX or Beam, runs beside the main suite (its output follows it)"; \
	( $(LATEST_PY) -m pytest -p no:cacheprovider --basetemp="$$second_tmp" $(PYTEST_ARGS) $(BASE_TESTS) \
	  && $(DOCS_BUILD) ) > "$$second_log" 2>&1 & second=$$!; \
	trap 'kill $$second 2>/dev/null; rm -rf "$$second_log" "$$second_tmp"' EXIT; \
	trap 'exit 130' INT TERM; \
	$(PY) -m pytest $(MAIN_PYTEST) $(PYTEST_ARGS); main_code=$$?; \
	wait $$second; second_code=$$?; \
	echo ">> the base package on the newest TensorFlow, and the docs build:"; cat "$$second_log"; \
	test $$main_code -eq 0 && test $$second_code -eq 0
else
	$(PY) -m pytest $(MAIN_PYTEST) $(PYTEST_ARGS)
endif

run: setup
	$(PY) local_runner.py

bench: setup $(PEER_STAMP)
	$(PY) -m benchmarks.run_all $(if $(QUICK),--quick,)

# The docs site (mkdocs.yml, docs/): --strict turns every warning (a broken link, an API page
# whose object or docstring is missing, a version placeholder docs/hooks.py cannot fill) into a
# failure. Needs no network: no fonts fetched, no plugin that downloads. pymdown-extensions is
# pinned below 12 (constraints-latest.txt): mkdocstrings-python 2.0.9 fails with 12.3.
docs: setup-latest
	$(DOCS_BUILD)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(LATEST_VENV) site tfx_output .pytest_cache .hypothesis build *.egg-info
