"""Airflow DAG ``countyhealth_fhir_export``: an example consumer of the shared-result Assets. It runs
whenever the nightly DAG has refreshed the shared lab results and writes that day's FHIR R4 bundles — the
shape a regional platform or a hospital's CDR would use to pick up 互认 results."""

from countyhealth.orchestration import build_fhir_export_dag

dag = build_fhir_export_dag()
