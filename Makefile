# flowlib build and CI plumbing (GNU make).
#
#   make demo       create .venv if needed and run examples/demo.py
#   make test       lint, typecheck, pytest and the docs build: what CI runs
#   make lint       ruff check + ruff format --check
#   make typecheck  mypy (configured in pyproject.toml)
#   make docs       Sphinx HTML with warnings as errors
#   make clean      remove build outputs and caches (keeps .venv)
#   make distclean  clean, and remove .venv too
#
# Only python3 and access to PyPI are needed. The venv is rebuilt only when
# pyproject.toml changes (a stamp file inside .venv records the last install).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALL_STAMP := $(VENV)/.flowlib-install.stamp
DOCS_STAMP := $(VENV)/.flowlib-docs.stamp
PIP := $(BIN)/python -m pip --disable-pip-version-check

# Lint only the directories that exist (ruff fails on a missing path).
LINT_PATHS := $(wildcard flowlib tests benchmarks examples docs/conf.py)

SERVICES_UP := tests/services/up.sh
SERVICES_DOWN := tests/services/down.sh

.PHONY: help venv demo lint typecheck pytest docs docs-deps test services clean distclean

help:
	@sed -n '3,10p' Makefile | sed 's/^# \{0,1\}//'

venv: $(INSTALL_STAMP)

$(INSTALL_STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	    echo "creating $(VENV) with $(PYTHON)"; \
	    if ! $(PYTHON) -m venv $(VENV); then \
	        rm -rf $(VENV); \
	        echo "error: '$(PYTHON) -m venv' failed. On Debian/Ubuntu install the" \
	             "venv module first: apt-get install python3-venv" >&2; \
	        exit 1; \
	    fi; \
	fi
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	@touch $@

# myst-parser renders the Markdown pages (docs/performance.md) next to the
# reStructuredText ones.
docs-deps: $(DOCS_STAMP)

$(DOCS_STAMP): $(INSTALL_STAMP)
	$(PIP) install --quiet 'sphinx>=7' 'myst-parser>=2'
	@touch $@

demo: venv
	$(BIN)/python examples/demo.py

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: venv
	$(BIN)/mypy

# Optional hooks: later work adds real services (schedulers, sshd, databases)
# started by tests/services/up.sh and stopped by tests/services/down.sh.
# The tests run whether or not the hooks exist; down.sh runs even when tests fail.
pytest: venv
	@if [ -f $(SERVICES_UP) ]; then echo "starting test services: $(SERVICES_UP)"; bash $(SERVICES_UP); fi
	@status=0; $(BIN)/pytest -q || status=$$?; \
	if [ -f $(SERVICES_DOWN) ]; then bash $(SERVICES_DOWN) || true; fi; \
	exit $$status

docs: docs-deps
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

test: venv lint typecheck pytest docs

clean:
	rm -rf docs/_build build dist .pytest_cache .mypy_cache .ruff_cache runinfo
	find . \( -path ./$(VENV) -o -path ./.git \) -prune -o -name __pycache__ -type d -print0 \
	    | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV)
