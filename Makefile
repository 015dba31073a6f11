# The two fresh-machine commands: `make demo` (the quickstart pipeline) and `make test`.
# Both create .venv and install everything they need on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_HOME ?= embedops-demo

.PHONY: demo test readme soak lint clean bench-static bench-gpu bench-vectors bench-encode bench-distill \
	bench-store bench-index bench-search bench-serve bench-rollout browser bench-console

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[transformers,dev,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/embedops --home $(DEMO_HOME) quickstart

test: $(STAMP) browser
	$(PY) -m pytest -q -n 2 --dist loadgroup --timeout 900

# Every bash and python block of README.md, in order, in an empty folder (part of `make test`);
# -s prints the time each block took.
readme: $(STAMP)
	$(PY) -m pytest -q -s --timeout 1800 tests/integration/test_readme.py

# The torture suite at length: many random kill -9 points per command (`make test` runs one of
# each in tests/torture). SOAK_KILLS sets how many.
SOAK_KILLS ?= 25
soak: $(STAMP)
	EMBEDOPS_TORTURE_KILLS=$(SOAK_KILLS) $(PY) -m pytest -q -n 2 --timeout 3600 tests/torture

# Debian's chromium, which the console's browser tests drive through Playwright (it never
# downloads a browser of its own). A no-op where it is installed; where it cannot be installed
# (no apt, not root) the browser tests skip with a message saying so.
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends chromium; } || \
		echo "chromium could not be installed: the console's browser tests will skip"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy --strict src/embedops/engine src/embedops/lifecycle src/embedops/monitor \
		src/embedops/serve src/embedops/cli

# Benchmarks: embedops and its anchor side by side, ratios printed; they read ../shared/data.
# Figures go to docs/benchmarks.md. The first runs cache MiniLM vectors under bench/out/.
bench-static: $(STAMP)
	$(PY) bench/train_static.py --runs cbow,defaults

bench-gpu: $(STAMP)
	$(PY) bench/train_gpu.py --device auto

bench-vectors: $(STAMP)
	$(PY) bench/vectors.py

bench-encode: $(STAMP)
	$(PY) bench/encode.py

bench-distill: $(STAMP)
	$(PY) bench/distill.py

bench-store: $(STAMP)
	$(PY) bench/store_catalog.py

bench-index: $(STAMP)
	$(PY) bench/index_speed.py

bench-search: $(STAMP)
	$(PY) bench/search_quality.py --docs 20k

bench-serve: $(STAMP)
	$(PY) bench/serve.py

bench-rollout: $(STAMP)
	$(PY) bench/rollout.py

bench-console: $(STAMP)
	$(PY) bench/console.py

clean:
	rm -rf $(VENV) $(DEMO_HOME) embedops-data
