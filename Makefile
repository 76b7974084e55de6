# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    the whole stack on embedded defaults
#   make test   the test suite with its coverage floor
#   make bench  the booking benchmark and the load script (minutes; loopback only)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint audit proto bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tlounge dev

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --cov --cov-report=term

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy api workers workflows activities

bench: $(STAMP)
	$(BIN)/python -m tests.bench.booking && $(BIN)/python -m tests.bench.load

# bandit over our code against bandit-waivers.toml, then pip-audit (needs the
# vulnerability service on the network; a dependency it cannot check fails)
audit: $(STAMP)
	$(BIN)/python -m tests.hardening.audit

proto: $(STAMP)
	$(BIN)/python -m proto.build

clean:
	rm -rf $(VENV) .pytest_cache .coverage
