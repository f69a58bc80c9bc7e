# Two entry points on a fresh clone: `make demo` (a full migration rehearsal
# against the local sandbox) and `make test` (lint + the whole test suite);
# `make demo-celery` runs the rehearsal on a distributed (Celery) Airflow.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint pytest demo demo-celery services venv pins bench clean

test: lint pytest

venv: $(STAMP)

# Reinstall only when a pin file changed; no network otherwise.
$(STAMP): requirements.txt requirements-dev.txt requirements-peer.txt
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv==0.13.9
	@test -x $(BIN)/python || uv venv --quiet --python $(PYTHON) $(VENV)
	uv pip install --quiet --python $(BIN)/python -r requirements.txt -r requirements-dev.txt
	uv pip install --quiet --python $(BIN)/python --no-deps -r requirements-peer.txt
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check dags plugins sandbox tests bench tools
	$(BIN)/ruff format --check dags plugins sandbox tests bench tools

# The suite runs the distributed demo, which needs PostgreSQL and Redis (Debian packages).
pytest: $(STAMP) services
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python -m tools.demo

# The same rehearsal on a distributed Airflow: CeleryExecutor, PostgreSQL, Redis, a backup-host worker.
demo-celery: $(STAMP) services
	$(BIN)/python -m tools.demo --executor celery

# PostgreSQL and Redis from Debian's packages, installed only when their binaries are missing.
services:
	@bash tools/install_services.sh

bench: $(STAMP)
	$(BIN)/python -m bench.chain_validator

# Regenerate the pins (needs the registry): see README.md.
pins:
	uv pip compile --quiet --python-version 3.11 requirements.in -o requirements.txt
	uv pip compile --quiet --python-version 3.11 requirements-dev.in -o requirements-dev.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
