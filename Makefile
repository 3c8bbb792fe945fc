# Two entry points (see README): `make run` (the main job on SQLite) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= sqlite:///offline-ledger.db

$(BIN)/offline-ledger: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install run test lint bench
install: $(BIN)/offline-ledger

run: install
	$(BIN)/offline-ledger migrate --db $(DB)
	$(BIN)/offline-ledger ingest examples/trading-day.jsonl --db $(DB) --rejects trading-day.rejects.jsonl || [ $$? -eq 1 ]
	$(BIN)/offline-ledger status --db $(DB)
	$(BIN)/offline-ledger import-stripe-report examples/stripe-balance-report.csv --db $(DB)
	$(BIN)/offline-ledger report --db $(DB) --as-of 2026-11-23T00:00:00Z --format html --out reconciliation.html
	$(BIN)/offline-ledger report --db $(DB) --as-of 2026-11-23T00:00:00Z

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks.ingest
