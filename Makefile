# The two fresh-machine commands: `make demo` (the quickstart pipeline) and `make test`.
# Both create .venv and install everything they need on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_HOME ?= embedops-demo

.PHONY: demo test lint bench-static clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[transformers,dev,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/embedops --home $(DEMO_HOME) quickstart

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --timeout 900

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) $(DEMO_HOME) embedops-data
