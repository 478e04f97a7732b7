"""The warehouse on both engines: migrations, idempotent upserts, watermark atomicity."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa

from countyhealth import model
from countyhealth.warehouse import MigrationError, Warehouse, Watermark, migrations


def lab_rows(n: int, *, start: int = 0, updated: dt.datetime = dt.datetime(2026, 3, 1, 8, 0), value: float = 5.1):
    ids = [f"L{i:06d}" for i in range(start, start + n)]
    return pa.table(
        {
            "source_id": ["his_a_001"] * n,
            "source_record_id": ids,
            "facility_code": ["F001"] * n,
            "batch_id": ["b1"] * n,
            "source_updated_at": pa.array([updated] * n, model.TS),
            "person_source_record_id": [f"P{i % 50}" for i in range(start, start + n)],
            "report_number": [f"R{i}" for i in range(start, start + n)],
            "report_at": pa.array([updated] * n, model.TS),
            "item_code_local": ["GLU"] * n,
            "value_numeric": [value + i / 1000 for i in range(n)],
            "value_text": ["阴性" if i % 7 == 0 else None for i in range(n)],
            "unit": ["mmol/L"] * n,
            "result_status": ["final"] * n,
        }
    )


def test_migrations_from_empty_to_head(warehouse_url):
    wh = Warehouse(warehouse_url)
    assert wh.applied_versions() == {}
    applied = wh.migrate()
    assert applied == [m.version for m in migrations(wh.dialect)]
    assert wh.migrate() == []  # re-running is a no-op
    for dataset in model.DATASET_NAMES:
        assert wh.count(dataset) == 0


def test_changed_migration_is_refused(tmp_path, duckdb_url):
    sql = tmp_path / "sql" / "duckdb"
    sql.mkdir(parents=True)
    (sql / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);")
    wh = Warehouse(duckdb_url)
    wh.migrate(sql_dir=tmp_path / "sql")
    (sql / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER, y INTEGER);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        wh.migrate(sql_dir=tmp_path / "sql")


def test_ddl_mirrors_the_model(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    for dataset in model.DATASET_NAMES:
        with wh.engine.connect() as conn:
            columns = conn.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = :t AND table_schema = current_schema() ORDER BY ordinal_position"
                ),
                {"t": dataset},
            ).scalars().all()
        assert columns == [f.name for f in model.fields(dataset)], dataset


def test_loading_the_same_batch_twice_is_idempotent(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    batch = lab_rows(500)
    first = wh.load("lab_result", batch)
    count1, sum1 = wh.count("lab_result"), wh.checksum("lab_result")
    second = wh.load("lab_result", batch)
    assert (first.rows_in, first.rows_loaded, first.duplicates) == (500, 500, 0)
    assert second.rows_loaded == 500
    assert (first.rows_written, first.rows_unchanged, second.rows_written, second.rows_unchanged) == (500, 0, 0, 500)
    assert wh.count("lab_result") == count1 == 500
    assert wh.checksum("lab_result") == sum1


def test_rows_written_are_told_from_rows_re_read_unchanged(warehouse_url):
    """The overlap re-reads rows every night: the load says how many changed, so "loaded" is not overstated."""
    wh = Warehouse(warehouse_url)
    wh.migrate()
    wh.load("lab_result", lab_rows(100))
    later = dt.datetime(2026, 3, 2, 8, 0)
    night = pa.concat_tables([lab_rows(90),                                     # re-read as they were
                              lab_rows(5, start=90, updated=later, value=6.2),  # corrected since
                              lab_rows(5, start=95, updated=dt.datetime(2026, 2, 1), value=1.0),  # older: not applied
                              lab_rows(20, start=100)])                         # new
    result = wh.load("lab_result", night)
    assert (result.rows_loaded, result.rows_written, result.rows_unchanged) == (120, 25, 95)


def test_both_engines_hold_the_same_content(pg_url, duckdb_url):
    sums = []
    for url in (duckdb_url, pg_url):
        wh = Warehouse(url)
        wh.migrate()
        wh.load("lab_result", lab_rows(200).to_batches(max_chunksize=64))
        sums.append(wh.checksum("lab_result"))
    assert sums[0] == sums[1]


def test_newer_version_wins_and_older_replay_is_ignored(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    old = lab_rows(10, value=5.0, updated=dt.datetime(2026, 3, 1))
    corrected = lab_rows(10, value=9.0, updated=dt.datetime(2026, 3, 5))
    wh.load("lab_result", old)
    wh.load("lab_result", corrected)
    wh.load("lab_result", old)  # replaying the old batch must not undo the correction
    with wh.engine.connect() as conn:
        values = conn.exec_driver_sql("SELECT min(value_numeric), max(value_numeric) FROM lab_result").one()
    assert 9.0 <= values[0] <= values[1] < 9.1


def test_duplicates_within_a_load_are_counted_and_last_wins(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    a = lab_rows(5, value=1.0)
    b = lab_rows(5, value=2.0)  # same keys, same updated_at: the later row wins
    result = wh.load("lab_result", pa.concat_tables([a, b]))
    assert (result.rows_in, result.duplicates, result.rows_loaded) == (10, 5, 5)
    with wh.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT min(value_numeric) FROM lab_result").scalar() >= 2.0


def test_watermark_moves_with_the_rows_or_not_at_all(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    wh.load("lab_result", lab_rows(10), watermark=Watermark("his_a_001", "lab", "2026-03-01T08:00:00", "b1"))
    assert wh.watermark("his_a_001", "lab") == "2026-03-01T08:00:00"

    def failing_batches():
        yield lab_rows(10, start=100).to_batches()[0]
        raise OSError("connection to member server lost mid-extract")

    with pytest.raises(OSError):
        wh.load("lab_result", failing_batches(), watermark=Watermark("his_a_001", "lab", "2026-03-02T08:00:00", "b2"))
    assert wh.watermark("his_a_001", "lab") == "2026-03-01T08:00:00"
    assert wh.count("lab_result") == 10  # none of the failed batch

    # a replay of an older batch never moves the watermark back
    wh.load("lab_result", lab_rows(10), watermark=Watermark("his_a_001", "lab", "2026-02-01T00:00:00", "b0"))
    assert wh.watermark("his_a_001", "lab") == "2026-03-01T08:00:00"


def test_unknown_column_fails_loudly(duckdb_url):
    wh = Warehouse(duckdb_url)
    wh.migrate()
    with pytest.raises(ValueError, match="not in dataset 'lab_result': colour"):
        wh.load("lab_result", lab_rows(2).append_column("colour", pa.array(["red", "blue"])))
