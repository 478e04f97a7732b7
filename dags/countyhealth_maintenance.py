"""Airflow DAG ``countyhealth_maintenance``: apply review-queue decisions, expire old landing batches,
VACUUM/ANALYZE the warehouse."""

from countyhealth.orchestration import build_maintenance_dag

dag = build_maintenance_dag()
