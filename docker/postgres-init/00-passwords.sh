#!/bin/bash
# Runs 01-databases.sql with the passwords from the environment (never written into a file in the image).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" -v warehouse_password="$WAREHOUSE_DB_PASSWORD" \
  -f /docker-entrypoint-initdb.d/01-databases.sql.in
