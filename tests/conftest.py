"""Shared fixtures: a real PostgreSQL (session-wide, a fresh database per test) and isolated data dirs."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pg import TempPostgres  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def postgres_server():
    """One throw-away cluster for the session. With CI=true a cluster that cannot start fails the run."""
    try:
        server = TempPostgres().start()
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"PostgreSQL could not start in CI: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable here: {exc} (run `make test` to install it)")
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """A fresh, empty database on the session's PostgreSQL."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request, tmp_path) -> str:
    """Run a test on both warehouse engines."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """No test writes into the checkout's data/ or picks up a developer's warehouse URL."""
    monkeypatch.setenv("COUNTYHEALTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("COUNTYHEALTH_WAREHOUSE_URL", raising=False)
