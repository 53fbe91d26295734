# Two commands set everything up on a fresh machine:
#   make demo   - create .venv, install cxmon, replay the built-in demo and print its alerts
#   make test   - install cxmon with test dependencies and run lint + the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP := $(VENV)/.installed-test-$(HASH)
RUN_STAMP := $(VENV)/.installed-run-$(HASH)

.PHONY: demo demo-live test lint install system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

install: $(RUN_STAMP)

demo: $(RUN_STAMP)
	$(BIN)/cxmon demo --once

demo-live: $(RUN_STAMP)
	$(BIN)/cxmon demo

system-deps:
	./scripts/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --doctest-modules --ignore=monitor/migrations monitor detectors alerts sources dashboards tests

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
