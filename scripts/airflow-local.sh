#!/usr/bin/env bash
# `make airflow [PORT=8080]`: Airflow on this checkout — `airflow standalone` (API server + UI, scheduler, DAG
# processor, triggerer) with the project's DAGs, plugins and the simulated county's connections, bound to
# 127.0.0.1 only. When the demo county exists (`make demo`), its public-health platform is started too, so
# the nightly DAG can run from the UI. Ctrl-C stops everything this script started, by process id.
set -euo pipefail
. "$(dirname "$0")/airflow-env.sh"
PORT="${PORT:-8080}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
airflow db migrate >/dev/null
PIDS=()
stop() {
  # each part runs in its own process group (setsid): signal the groups by id, never by name
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap stop EXIT INT TERM
if [ -f "$COUNTY/public_health/platform.sqlite" ]; then
  PH_PORT="${PH_PORT:-$((PORT + 1))}"
  setsid countyhealth simulate serve-public-health --county "$COUNTY" --host 127.0.0.1 --port "$PH_PORT" \
    >"$AIRFLOW_HOME/public-health.log" 2>&1 &
  PIDS+=("$!")
  export AIRFLOW_CONN_PUBLIC_HEALTH="http://${COUNTYHEALTH_PH_APP_KEY:-countyhealth-demo}:${COUNTYHEALTH_PH_APP_SECRET:-demo-secret}@127.0.0.1:$PH_PORT"
  echo "simulated public-health platform: http://127.0.0.1:$PH_PORT (pid ${PIDS[-1]})"
fi
echo "Airflow home: $AIRFLOW_HOME"
echo "UI: http://127.0.0.1:$PORT  (user admin; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
echo "DAGs start paused: unpause countyhealth_nightly in the UI or with 'airflow dags unpause countyhealth_nightly'."
setsid airflow standalone &
PIDS+=("$!")
wait "${PIDS[-1]}"
