# diag-harness: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DIAG_DIR := $(CURDIR)/.diag
export DAGSTER_HOME ?= $(DIAG_DIR)/dagster_home
export DIAG_STORAGE_DIR ?= $(DIAG_DIR)/artifacts

.PHONY: install demo test test-fast test-faults ui lint format clean

install: $(VENV)/.installed

# The harness, and the example team package whose audit CI runs (examples/forward_returns).
$(VENV)/.installed: pyproject.toml examples/forward_returns/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e examples/forward_returns
	touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.local.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m diag_assets.demo

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

test-faults: install
	$(BIN)/python -m pytest -m faults

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(DIAG_DIR)
