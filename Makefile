# Two entry points (see README): `make run` (the main job on SQLite) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/offline-ledger: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install run test lint package bench
install: $(BIN)/offline-ledger

run: install
	$(BIN)/offline-ledger demo --out demo --force

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The distributions POS backends install: built from a clean tree, metadata checked by twine,
# the type marker inside the wheel.
package: install
	rm -rf build/dist
	$(BIN)/python -m build --quiet --outdir build/dist . >/dev/null
	$(BIN)/twine check --strict build/dist/*
	$(BIN)/python -m zipfile -l build/dist/*.whl | grep -q 'ledger/py.typed'

test: lint package
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks.ingest
