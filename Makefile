# The few verbs everyone uses. `make dev` and `make test` work on a fresh machine.
PY ?= python3
STAMP := .make/installed
LINT_STAMP := .make/lint-tools
LINT_CONSTRAINTS := constraints/lint.txt

.PHONY: install dev test test-fast lint bench bench-scale soak mutation screenshots services-up services-down clean \
	compiled clean-compiled pure

$(STAMP): pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	@mkdir -p .make && touch $(STAMP)

install: $(STAMP)

## Run every service in one process on the embedded backend (http://127.0.0.1:8080).
dev: $(STAMP)
	dealreg dev

## The whole suite. Real Kafka and PostgreSQL are started by the test fixtures
## (environment settings, else testcontainers, else deploy/ scripts) unless already up.
## TEST_WORKERS pytest-xdist processes (default 2) share one broker and one PostgreSQL
## server; a module's tests stay on one worker. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(STAMP) pure
	bash deploy/kafka.sh fetch
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

## The console's browser tests, writing their screenshots into docs/images (the README's).
screenshots: $(STAMP)
	DEALREG_SCREENSHOTS=$(CURDIR)/docs/images $(PY) -m pytest -q tests/browser

## Unit tests only: no servers, seconds.
test-fast: $(STAMP) pure
	$(PY) -m pytest tests/unit

## ruff and mypy at the versions pinned in constraints/lint.txt (CI runs this too).
$(LINT_STAMP): $(LINT_CONSTRAINTS)
	$(PY) -m pip install -q -c $(LINT_CONSTRAINTS) ruff mypy
	@mkdir -p .make && touch $(LINT_STAMP)

lint: $(STAMP) $(LINT_STAMP)
	$(PY) -m ruff --version
	$(PY) -m ruff check .
	$(PY) -m mypy --version
	$(PY) -m mypy

## Benchmarks, each under a hard timeout (< 15 min; QUICK=1: < 3 min). Writes
## bench-results/{results.json,targets.md,latency-cdf.png,drain.png}.
bench: $(STAMP)
	$(PY) tests/bench/run.py $(if $(filter-out 0,$(QUICK)),--quick,) $(if $(filter-out 0,$(COMPILED)),--compiled,)

## The opt-in compiled build: `decide` and the account matching it calls (setup.py's
## COMPILED) compiled with mypyc into C extensions next to their .py (git-ignored), which
## Python then imports instead (~1.5x decide, README "Compiled build"). Needs a C compiler
## and the Python headers. `make dev`/`make test` never build it: mutation testing and
## Hypothesis need the .py to be what runs; `make clean-compiled` goes back to pure Python.
compiled: $(STAMP)
	DEALREG_COMPILED=1 $(PY) setup.py -q build_ext --inplace
	@# an extension whose C did not change is not relinked: mark them all as of this build
	find services shared -name '*.so' -exec touch {} +

clean-compiled:
	find services shared -name '*.so' -delete
	rm -rf build *__mypyc.*.so

# The tests, Hypothesis and mutmut run the .py: a compiled build left in place goes first.
pure:
	@if ls *__mypyc.*.so >/dev/null 2>&1; then \
		echo "removing the compiled build (make compiled rebuilds it)"; $(MAKE) -s clean-compiled; fi

## decide's CPU per registration at 1 M active registrations / at 10,000 (issue 16's
## <= 1.5 x), on the realistic workload. Not in `make bench`: the first run builds and keys
## the 1 M workload (cached in bench-results/cache/ for the next); writes
## bench-results/decide-scaling.json.
bench-scale: $(STAMP)
	$(PY) tests/bench/bench_decide.py --scale 10000,1000000

## Faults in a loop under load for DURATION seconds (default 600) on real Kafka and
## PostgreSQL, then the checker; prints the counts, fails on any discrepancy.
DURATION ?= 600
RATE ?= 6
soak: $(STAMP)
	bash deploy/kafka.sh fetch
	$(PY) -m tests.faults.soak --duration $(DURATION) --rate $(RATE)

## Mutation testing of the modules that decide against the fast unit tests (minutes, niced);
## the score and the surviving mutants are printed, `mutmut show NAME` shows one.
mutation: $(STAMP) pure
	rm -rf mutants
	nice -n 10 timeout 1800 $(PY) -m mutmut run --max-children 2 || true
	$(PY) -m mutmut results

services-up:
	bash deploy/services.sh up

services-down:
	bash deploy/services.sh down

clean: clean-compiled
	rm -rf .make dealreg-data bench-results .pytest_cache .mypy_cache .ruff_cache mutants
