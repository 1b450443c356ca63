# One command each: the virtual environment in .venv is created or reused as needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080
STATE ?= state/demo

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lint]' -e 'clients/python[polars,pandas,receipts]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gateway serve --demo --host 127.0.0.1 --port $(PORT) --state-dir $(STATE)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check gateway tests clients examples
	$(BIN)/mypy
	$(BIN)/mypy clients/python/src/gateway_client examples

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache
