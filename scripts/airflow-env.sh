#!/usr/bin/env bash
# Environment for running Airflow locally on this checkout (sourced by `make airflow` and the demo).
# Metadata in SQLite under data/airflow; the project's DAGs and plugins; low parallelism for 2 cores;
# the simulated county's connections when it exists (data/county/connections.env).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.venv/bin:$PATH"          # standalone starts its parts as `airflow ...` subprocesses
export COUNTYHEALTH_HOME="$ROOT"
export COUNTYHEALTH_DATA_DIR="${COUNTYHEALTH_DATA_DIR:-$ROOT/data}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$COUNTYHEALTH_DATA_DIR/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
mkdir -p "$AIRFLOW_HOME"
COUNTY="${COUNTYHEALTH_COUNTY_DIR:-$COUNTYHEALTH_DATA_DIR/county}"
if [ -f "$COUNTY/connections.env" ]; then
  set -a; . "$COUNTY/connections.env"; set +a
fi
