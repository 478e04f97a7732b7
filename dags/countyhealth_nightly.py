"""Airflow DAG ``countyhealth_nightly``: every member's extracts → validation → warehouse → EMPI → shared
results (互认) → run report. Built from sources/*.yaml: adding a source is adding a YAML."""

from countyhealth.orchestration import build_nightly_dag

dag = build_nightly_dag()
