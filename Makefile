# One place for the project's commands. `make demo` and `make test` bootstrap their own
# virtual environment (.venv) on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

## demo: ingest the bundled sample papers, then rank, render and deliver digests for the
## example profiles (the sample's last day is 2026-07-01): .eml, .md and feeds under out/
demo: $(VENV)/.installed
	$(BIN)/digest ingest sample
	$(BIN)/digest run --date 2026-07-01

## lint: ruff and mypy (strict) over the package, tests and benchmarks
lint: $(VENV)/.installed
	$(BIN)/ruff check digest tests bench scripts
	$(BIN)/mypy

## test: lint, then the whole test suite (what CI runs)
test: lint
	$(BIN)/pytest -q

## bench: the benchmark suite (docs/benchmarks.md): every stage in a fresh process, each figure
## beside a baseline measured in the same run; prints a table, writes bench/results.json.
## Needs ../shared/data; ~40 min on 2 shared cores. `$(BIN)/python -m bench --quick`: 3-5 min.
bench: $(VENV)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
