# widgetspy: the two commands of the README's quick start.
#   make demo   creates .venv, installs widgetspy, records a real widget session
#   make test   installs what the tests need and runs them all
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test bench venv clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "widgetspy needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.kernel: $(BIN)/python pyproject.toml
	$(PIP) install -e '.[kernel]'
	@touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml
	$(PIP) install -e '.[test]'
	@touch $@ $(VENV)/.kernel

venv: $(VENV)/.kernel

demo: $(VENV)/.kernel
	$(BIN)/widgetspy demo -o recordings/demo.jsonl

test: $(VENV)/.test
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(VENV)/.test
	$(BIN)/python benchmarks/bench_zmq.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
