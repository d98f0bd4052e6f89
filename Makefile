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

## bench: the benchmark scripts (figures printed, written to bench/results/); each needs
## ../shared/data. bench/rank.py (~6 min) and bench/eval.py (~7 min) are the long ones.
bench: $(VENV)/.installed
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/smtp.py
	$(BIN)/python bench/rank.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
