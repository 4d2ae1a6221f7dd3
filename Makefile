# Two-command quick start: `make demo` and `make test`. Both create .venv if it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-fast benchmarks clean real-data

setup: $(STAMP)

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/python -m tessera.pipelines.demo --output $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

test-fast: setup
	$(BIN)/python -m pytest -q -x tests -m "not slow"

clean:
	rm -rf $(VENV) out .pytest_cache

real-data: setup
	$(BIN)/python -m tessera.training.buildings.real_data --output data/real
