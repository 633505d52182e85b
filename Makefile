# `make demo` and `make test` each set up .venv on their own first: a fresh machine needs only
# Python 3.11+ and make.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit integration acceptance clean clean-db catalogue

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "geotasks needs Python 3.11 or newer"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/geotasks demo

test: lint
	$(BIN)/python -m pytest -q -rfEs

lint: $(STAMP)
	$(BIN)/ruff check geotasks tests benchmarks
	$(BIN)/ruff format --check geotasks tests benchmarks
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# The built-in actors' specs, which clients read before any worker has published them; a test
# fails when they drift from geotasks/actors.py.
catalogue: $(STAMP)
	$(BIN)/python -c 'import json; from geotasks.actors import builtin_specs; \
		print(json.dumps(builtin_specs(), indent=2, ensure_ascii=False))' > geotasks/builtin_actors.json

# Template databases the test suite left on the server (runs that were killed, other schema
# versions); those a running test session uses are kept. A run drops its own when it ends.
clean-db: $(STAMP)
	$(BIN)/python -m tests.templates

clean:
	rm -rf $(VENV) .geotasks .pytest_cache .mypy_cache .ruff_cache
