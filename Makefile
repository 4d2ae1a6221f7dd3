# Two-command quick start: `make demo` and `make test`. Both create .venv if it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-fast test-portable test-gcs benchmarks clean real-data

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

# Every workload on Beam's PortableRunner (job service + external worker pool on 127.0.0.1,
# separate SDK worker processes), outputs compared with the local runner's. Each of the two test
# workers starts its own servers.
test-portable: setup
	$(BIN)/python -m pytest -q -n 2 tests/portable

# Every workload reading and writing gs:// on a local GCS emulator, on both runners.
test-gcs: setup
	$(BIN)/python -m pytest -q -n 2 tests/gcs

clean:
	rm -rf $(VENV) out .pytest_cache

real-data: setup
	$(BIN)/python -m tessera.training.buildings.real_data --output data/real
