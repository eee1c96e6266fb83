# widgetspy: the two commands of the README's quick start.
#   make demo   creates .venv, installs widgetspy, records a real widget session
#   make test   installs what the tests need (Debian's chromium too, as root) and runs them all
#   make test-browser   only the real-browser tests (JupyterLab / Notebook 7 in headless chromium)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test test-browser chromium bench bench-ws venv clean

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

# The browser tests drive Debian's chromium through playwright (never `playwright install`).
# Installed when missing and we are root; otherwise those tests skip and say why.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	      echo "widgetspy: could not install chromium: the browser tests will be skipped"; \
	  else \
	    echo "widgetspy: no /usr/bin/chromium and not root: the browser tests will be skipped"; \
	  fi; \
	fi

# the sample sessions in recordings/ (real widgets, real kernel; see recordings/README.md)
recordings: $(VENV)/.kernel
	$(BIN)/python recordings/make_recordings.py

test: $(VENV)/.test chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-browser: $(VENV)/.test chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider -m browser $(PYTEST_ARGS)

bench: $(VENV)/.test
	$(BIN)/python benchmarks/bench_zmq.py $(BENCH_ARGS)

bench-ws: $(VENV)/.test
	$(BIN)/python benchmarks/bench_ws.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
