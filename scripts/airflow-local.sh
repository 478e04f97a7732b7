#!/usr/bin/env bash
# `make airflow`: Airflow on this checkout — `airflow standalone` (API server + UI, scheduler, DAG processor,
# triggerer) with the project's DAGs, plugins and the simulated county's connections. Ctrl-C stops it; the
# trap also stops every child standalone started (it can leave the scheduler running otherwise).
set -euo pipefail
. "$(dirname "$0")/airflow-env.sh"
airflow db migrate >/dev/null
echo "Airflow home: $AIRFLOW_HOME"
echo "UI: http://localhost:8080  (user admin; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
echo "DAGs start paused: unpause countyhealth_nightly in the UI or with 'airflow dags unpause countyhealth_nightly'."
trap 'pkill -TERM -P $$ || true; sleep 2; pkill -KILL -f "$AIRFLOW_HOME" || true' EXIT INT TERM
airflow standalone
