"""docker/: no Docker engine here, so the files are checked for structure and consistency with the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())


def test_compose_has_the_airflow_3_services_and_our_api():
    services = compose()["services"]
    assert {"postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker", "results-api"} <= set(services)
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["postgres"]["image"].startswith("postgres:16")
    for name in ("postgres", "redis", "airflow-apiserver", "airflow-scheduler"):
        assert "healthcheck" in services[name], name


def test_every_airflow_container_shares_the_countyhealth_environment():
    services = compose()["services"]
    for name, svc in services.items():
        if not name.startswith("airflow-") and name != "results-api":
            continue
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        # Airflow 3 workers reach task state through the API server
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["COUNTYHEALTH_WAREHOUSE_URL"].startswith("postgresql+psycopg://"), name
        assert "COUNTYHEALTH_SECRET_KEY" in env, name
        assert env["COUNTYHEALTH_API_STORE_URL"].startswith("postgresql+psycopg://"), name  # tokens shared
        # Airflow 3 components sign and check each other's JWTs and share encrypted connections: one
        # secret for all, from .env, or tasks fail with "Signature verification failed"
        for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
            assert env[key].startswith("${"), (name, key)


def test_no_secret_is_written_into_the_files():
    text = (DOCKER / "docker-compose.yaml").read_text()
    for m in re.finditer(r"^\s*[A-Z_]*(PASSWORD|SECRET|SECRET_KEY|FERNET_KEY)[\"']?:\s*(\S+)", text, re.M):
        assert m.group(2).startswith("${"), m.group(0)
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert value in ("", "change-me") or (key == "AIRFLOW_UID" and value.isdigit()), key


def test_dockerfile_builds_on_the_pinned_airflow_and_installs_the_package():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG AIRFLOW_VERSION=3\.3\.2$", text, re.M)
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in text
    assert "pip install --no-cache-dir" in text and "-e /opt/countyhealth" in text
    copied = set(re.findall(r"^COPY --chown=\S+ (\S+)", text, re.M))
    for folder in ("plugins", "dags", "sources", "sql", "expectations", "config"):
        assert folder in copied and (ROOT / folder).is_dir(), folder
    assert "AIRFLOW__CORE__PLUGINS_FOLDER=/opt/countyhealth/plugins" in text


def test_postgres_init_creates_both_databases_without_literal_passwords():
    sh = (DOCKER / "postgres-init" / "00-passwords.sh").read_text()
    sql = (DOCKER / "postgres-init" / "01-databases.sql.in").read_text()
    assert "CREATE DATABASE airflow" in sql and "CREATE DATABASE warehouse" in sql
    assert ":'airflow_password'" in sql and "$AIRFLOW_DB_PASSWORD" in sh
    assert (DOCKER / "postgres-init" / "00-passwords.sh").stat().st_mode & 0o111


def test_the_image_has_a_documented_place_for_connector_plug_in_packages():
    import subprocess
    import sys

    text = (DOCKER / "Dockerfile").read_text()
    copy = re.search(r"^COPY .*docker/connector-plugins\.txt docker/plugins/ (\S+)$", text, re.M)
    assert copy, "the Dockerfile copies docker/connector-plugins.txt and docker/plugins/ into the image"
    dest = copy.group(1).rstrip("/")
    run = text[copy.end():].split("\nRUN ", 1)[1].split("\n\n")[0]
    assert f"--find-links {dest}" in run and f"-r {dest}/connector-plugins.txt" in run
    assert text.index("-e /opt/countyhealth") < copy.start()  # after the package: its entry points register
    assert "docker/connector-plugins.txt" in (ROOT / "docs" / "connectors.md").read_text(encoding="utf-8")
    # the requirements file as shipped is one pip reads (comments only: nothing extra to install)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet",
                           "--find-links", str(DOCKER / "plugins"), "-r", str(DOCKER / "connector-plugins.txt")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_production_auth_logs_uid_and_health_checks_on_every_service():
    doc = compose()
    services = doc["services"]
    anchor = doc["x-countyhealth"]
    assert anchor["environment"]["AIRFLOW__CORE__AUTH_MANAGER"].endswith("fab_auth_manager.FabAuthManager")
    assert "apache-airflow-providers-fab" in (DOCKER / "Dockerfile").read_text()
    assert "airflow users create --role Admin" in services["airflow-init"]["command"][1]
    assert anchor["user"] == "${AIRFLOW_UID:-50000}:0"
    assert "airflow-logs:/opt/airflow/logs" in anchor["volumes"] and "airflow-logs" in doc["volumes"]
    for name, svc in services.items():
        if name == "airflow-init":  # runs once and exits
            continue
        check = svc.get("healthcheck", {}).get("test")
        assert check and check[0] in ("CMD", "CMD-SHELL"), name
    assert "TriggererJob" in services["airflow-triggerer"]["healthcheck"]["test"][1]
    assert "DagProcessorJob" in services["airflow-dag-processor"]["healthcheck"]["test"][1]
    assert "inspect ping" in services["airflow-worker"]["healthcheck"]["test"][1]
    assert services["results-api"]["healthcheck"]["test"][-1].endswith(":8800/health")


def test_every_secret_is_guarded_so_compose_refuses_to_start_without_it():
    text = (DOCKER / "docker-compose.yaml").read_text()
    used = re.findall(r"(?<!\$)\$\{([A-Z_]*(?:PASSWORD|SECRET|SECRET_KEY|FERNET_KEY))(:\?[^}]*)?\}", text)
    assert used
    for name, guard in used:
        assert guard.startswith(":?set "), f"${{{name}}} has no :? guard"
