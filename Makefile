# signalhub: make demo · make up · make test · make bench · make lint
# Everything runs from a local virtual environment that `make install` creates and fills.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo up test bench bench-quick lint typecheck samples clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements-opa.txt deploy/s3rver/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The OPA engine wheel claims Python>=3.14 but is a ctypes wrapper that works on 3.11:
	# pinned by hash, installed without its Requires-Python check.
	$(BIN)/pip install --quiet --ignore-requires-python --no-deps --require-hashes -r requirements-opa.txt
	# The durable embedded broker keeps its data in s3rver (a local S3 store, pinned by the lock).
	test -x deploy/s3rver/node_modules/.bin/s3rver || \
		npm ci --prefix deploy/s3rver --no-audit --no-fund --silent
	touch $(STAMP)

demo: install
	$(BIN)/signalhub demo

up: install
	$(BIN)/signalhub up

# .ci/prepare installs or starts what the suite needs (docker-compose, chromium, PostgreSQL),
# or stops at once with the exact command to run, so that no test is skipped for want of it.
test: install
	.ci/prepare
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench

bench-quick: install
	$(BIN)/python -m bench --quick

samples: install
	$(BIN)/python -m connectors.sample_data

lint: install
	$(BIN)/ruff check services tests bench connectors
	$(BIN)/ruff format --check services tests bench connectors
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .signalhub .pytest_cache .mypy_cache .ruff_cache
