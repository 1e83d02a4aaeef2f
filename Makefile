# The two set-up commands of the README: `make demo` (main job) and `make test` (the suite).
# Each creates its own virtual environment and installs what it needs.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-slow venv bytecode browser lint bench clean

# uv installs the ~90 packages in parallel: 17 s instead of pip's 46 s on a fresh machine, which is most of
# the first minute of `make demo`; pip stays the fallback should uv be unavailable.
# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (as on these
# machines) Python never writes them either, so every process compiled scikit-learn, SciPy, faust ... from
# source: 15 s of CPU before a worker even started, instead of 5 (the suite starts dozens of processes).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1" \
	  && $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[test]" \
	  || $(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# Our own modules, for the same reason; only what changed since the last run is compiled again (~1 s).
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q streams models classifier config >/dev/null

venv: $(STAMP)

## main job: embedded broker, worker, web console and a scripted week of demo tickets
demo: $(STAMP) bytecode
	$(BIN)/hotline demo

## headless Chromium (Debian's package) for the browser tests, and a CJK font for readable screenshots;
## Playwright drives /usr/bin/chromium and never downloads a browser of its own
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
	fc-list :lang=zh 2>/dev/null | grep -q . || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei)

## the test suite (unit, integration on the embedded broker + SQLite/PostgreSQL, e2e in Chromium);
## the fault, scale-out and bad-input campaigns (marked `slow`, several minutes) are in test-slow.
## Two processes, each test file in one of them (its module fixtures stay whole), each process with its own
## embedded broker: the tests wait on starting and rebalancing workers a third of the time, so two use the
## machine's two cores (13.9 -> 9.0 minutes). The timing-heavy fault campaigns of test-slow stay in one.
test: $(STAMP) bytecode browser
	$(BIN)/ruff check streams models classifier config tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 -m "not slow" -n 2 --dist loadfile

## faults (broker absent, PostgreSQL cut, SQLite locked, corrupt model ...), scale-out, bad-input campaign
test-slow: $(STAMP) bytecode
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 -m slow

lint: $(STAMP)
	$(BIN)/ruff check streams models classifier config tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/worker_startup.py

clean:
	rm -rf $(VENV) var
