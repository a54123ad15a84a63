# Two commands a user needs: `make run` and `make test`. Both bootstrap .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
PY_VERSION  := $(shell cat .python-version)
PY_MINOR    := $(basename $(PY_VERSION))
PYTEST_ARGS ?=
QUICK       ?=

.PHONY: help setup test run bench lint clean

help:
	@echo "make run    - set up .venv if needed, then run the example pipeline (python local_runner.py)"
	@echo "make test   - set up .venv if needed, then run the whole test suite"
	@echo "make setup  - create .venv (Python $(PY_MINOR)) and install the project under constraints.txt"
	@echo "make bench  - run the benchmarks in benchmarks/ (QUICK=1 for a short spot check)"
	@echo "make lint   - ruff over the project"

setup: $(STAMP)

# The stamp makes a second `make setup` free: pip only runs again when the dependency
# declarations change.
$(STAMP): pyproject.toml constraints.txt .python-version
	@set -e; \
	if [ ! -x "$(PY)" ] || ! "$(PY)" -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "$(PY_MINOR)".split("."))))'; then \
	  base=$$( (command -v pyenv >/dev/null && pyenv which python$(PY_MINOR) 2>/dev/null) || command -v python$(PY_MINOR) || true); \
	  if [ -z "$$base" ]; then \
	    echo "Python $(PY_MINOR) was not found: install it (e.g. 'pyenv install $(PY_VERSION)' or your OS package python$(PY_MINOR)-venv) and run make again." >&2; \
	    exit 1; \
	  fi; \
	  echo ">> creating $(VENV) with $$base"; \
	  rm -rf $(VENV); "$$base" -m venv $(VENV); \
	fi; \
	echo ">> installing the project and its pinned dependencies (first time: 3-5 minutes, about 3.3 GB)"; \
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip==24.2' 'setuptools==75.1.0' 'wheel==0.44.0'; \
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[tfx,dev]'; \
	$(PY) -m pip check; \
	touch $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

run: setup
	$(PY) local_runner.py

bench: setup
	$(PY) -m benchmarks.run_all $(if $(QUICK),--quick,)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) tfx_output .pytest_cache .hypothesis build *.egg-info
