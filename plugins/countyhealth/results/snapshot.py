"""A read-only copy of what the read API serves, for DuckDB warehouses.

DuckDB lets one process open a database file read-write and then no other process may open it at all, so an
API holding the warehouse would stop the nightly load. Instead each refresh writes ``results.duckdb``
beside the warehouse — the shared tables, golden records, person redirects and facility names, with a
``person_id`` index — under a temporary name and renames it into place (atomic on one filesystem). The API
opens the current file read-only and reopens when a newer one appears; a reader that has the old file open
keeps reading it until it finishes. On PostgreSQL the API reads the warehouse directly.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from countyhealth import privacy, settings

TABLES = {
    "shared_lab_result": "person_id",
    "shared_exam_report": "person_id",
    "golden_person": "person_id",
    "empi_person": "person_id",
}


def path() -> Path:
    return settings.data_dir() / "results" / "results.duckdb"


def publish(wh) -> Path:
    final = path()
    privacy.private_data_dir()
    privacy.private_dir(final.parent)
    tmp = final.with_name(f".results-{uuid.uuid4().hex[:8]}.duckdb")
    import duckdb

    from countyhealth.warehouse import retry_on_lock

    source = wh.engine.url.database
    wh.engine.dispose()  # a night's held connections (other DuckDB settings) must close before a plain one opens
    raw = retry_on_lock(lambda: duckdb.connect(source))  # a plain autocommit connection: ATTACH/DETACH allowed
    try:
        raw.execute(f"ATTACH '{tmp}' AS snap").fetchall()
        try:
            for table, key in TABLES.items():
                raw.execute(f"CREATE TABLE snap.{table} AS SELECT * FROM {table} ORDER BY {key}").fetchall()
                raw.execute(f"CREATE INDEX ix_{table}_{key} ON snap.{table} ({key})").fetchall()
            raw.execute("CREATE TABLE snap.facility AS SELECT facility_code, min(name) AS name, min(level) AS level "
                        "FROM facility GROUP BY facility_code").fetchall()
        finally:
            raw.execute("DETACH snap").fetchall()
    finally:
        raw.close()
    os.chmod(tmp, 0o600)  # every resident's results: readable by the results API's account only
    os.replace(tmp, final)
    for wal in final.parent.glob(".results-*.duckdb.wal"):
        wal.unlink(missing_ok=True)
    return final
