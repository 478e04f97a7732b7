# countyhealth — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

PORT ?= 8080

.PHONY: demo test test-fast install postgres java chromium airflow bench clean

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "countyhealth needs Python 3.11 (found %s)" % sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

postgres:
	bash scripts/ensure-postgres.sh

java:
	bash scripts/ensure-java.sh

chromium:
	bash scripts/ensure-chromium.sh

## Run the whole pipeline on a freshly simulated county, on the embedded DuckDB warehouse.
demo: install
	$(BIN)/countyhealth demo

## Install what the tests need (venv, packages, PostgreSQL, a Java runtime for Spark, Chromium) and run the whole suite.
test: install postgres java chromium
	$(BIN)/python -m pytest

## Start Airflow locally on 127.0.0.1 (`make airflow PORT=8081`; default 8080) with the project's DAGs and the
## demo county's simulated platform; `make demo` first creates a county to load. Ctrl-C stops it by pid.
airflow: install
	PORT=$(PORT) bash scripts/airflow-local.sh

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf data .pytest_cache
