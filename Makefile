# `make demo` and `make test` each set up .venv on their own first: a fresh machine needs only
# Python 3.11+ and make.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Django 6 needs Python 3.12 or newer, which may be installed by pyenv without being on the PATH:
# its tests run in a second virtualenv.
PYTHON_DJANGO6 ?= $(shell for p in python3.13 python3.12 \
	$(sort $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.1[2-9]*/bin/python)); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
	2>/dev/null && { echo $$p; break; }; done)
VENV_DJANGO6 := .venv-django6
STAMP_DJANGO6 := $(VENV_DJANGO6)/.installed

.PHONY: demo test test-django6 lint unit clean clean-db catalogue

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
	$(MAKE) test-django6

$(STAMP_DJANGO6): pyproject.toml
	@test -n "$(PYTHON_DJANGO6)" || { echo "the Django 6 tests need Python 3.12 or newer"; exit 1; }
	test -x $(VENV_DJANGO6)/bin/python || $(PYTHON_DJANGO6) -m venv $(VENV_DJANGO6)
	$(VENV_DJANGO6)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_DJANGO6)/bin/python -m pip install --quiet -e '.[django]' 'django>=6' pytest pytest-timeout
	touch $(STAMP_DJANGO6)

# The Django integration on Django 6 (its own django.tasks); `make test` runs it after the suite,
# which covers Django 5.2 with the django-tasks backport.
test-django6: $(STAMP_DJANGO6)
	$(VENV_DJANGO6)/bin/python -m pytest -q -rfEs -p no:cacheprovider \
		tests/contrib_django tests/unit/test_django_settings.py

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
	rm -rf $(VENV) $(VENV_DJANGO6) .geotasks .pytest_cache .mypy_cache .ruff_cache
