# One command each: the virtual environment in .venv is created or reused as needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080
STATE ?= state/demo

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@echo "make: setting up $(VENV) with the gateway and its dependencies (a few minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[test,lint]' -e 'clients/python[polars,pandas,receipts]'
	touch $(STAMP)
	@echo "make: $(VENV) is ready"

demo: $(STAMP)
	@echo "make: starting the demo gateway from $(STATE) (the first start generates the demo county)"
	$(BIN)/gateway serve --demo --host 127.0.0.1 --port $(PORT) --state-dir $(STATE)

test: $(STAMP)
	$(BIN)/python -m pytest

# The long statistical, load, soak and browser tests (marked slow), left out of `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check gateway tests clients examples
	$(BIN)/mypy
	$(BIN)/mypy clients/python/src/gateway_client examples

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache
