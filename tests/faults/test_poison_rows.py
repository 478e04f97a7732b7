"""No poison rows: text a warehouse cannot store (NUL, invalid UTF-8, lone surrogates) is cleaned by the declared
rule (trailing NUL padding dropped) or quarantines its row with the field and reason — on a real PostgreSQL the
batch loads all its other rows (one NUL used to fail the whole COPY)."""

from __future__ import annotations

import sqlite3

import pyarrow as pa
import sqlalchemy as sa

from countyhealth import pipeline
from countyhealth.connectors.base import raw_batch, raw_batch_from_records
from countyhealth.warehouse import Warehouse

VALUES = {"R1": "阴性", "R2": "阴\x00性", "R3": "阳性\x00\x00", "R4": "弱阳\ufffd性", "R5": "+"}


def _his(tmp_path, monkeypatch):
    db = tmp_path / "W1.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE jy_jg (jgid TEXT, bgdh TEXT, hzid TEXT, xmdm TEXT, jg TEXT, gxsj TEXT)")
        con.executemany("INSERT INTO jy_jg VALUES (?, 'B1', 'P1', 'JY091', ?, '2026/03/01 10:00')", VALUES.items())
        # bytes that are not UTF-8 stored as TEXT (a GBK client writing into a UTF-8 database): "阳" then 0xFF
        con.execute("INSERT INTO jy_jg VALUES ('R6', 'B1', 'P1', 'JY091', CAST(X'E998B3FF' AS TEXT), "
                    "'2026/03/01 10:00')")
    folder = tmp_path / "sources"
    folder.mkdir()
    (folder / "his_w1.yaml").write_text("""\
kind: sql
facility_code: W350125101
connection: {conn_id: his_w1}
validation: {max_failing_share: 0.9}
streams:
  lab_results:
    table: jy_jg
    cursor: {column: gxsj, format: "%Y/%m/%d %H:%M"}
    dataset: lab_result
    fields: {source_record_id: jgid, report_number: bgdh, person_source_record_id: hzid, item_code_local: xmdm,
             report_at: {column: gxsj, format: "%Y/%m/%d %H:%M"}, value_text: jg, result_status: {value: final}}
""", encoding="utf-8")
    monkeypatch.setenv("COUNTYHEALTH_SOURCES_DIR", str(folder))
    monkeypatch.setenv("AIRFLOW_CONN_HIS_W1", f"sqlite:///{db}")


def test_a_nul_or_damaged_text_quarantines_its_row_and_the_batch_loads_on_postgresql(tmp_path, monkeypatch, pg_url):
    _his(tmp_path, monkeypatch)
    monkeypatch.setenv("COUNTYHEALTH_WAREHOUSE_URL", pg_url)
    wh = Warehouse(pg_url)
    wh.migrate()
    pipeline.extract("his_w1", "lab_results", wh=wh)
    loads, failed = pipeline.load_pending(wh=wh)
    assert failed == {}
    with wh.engine.connect() as conn:
        loaded = dict(conn.execute(sa.text("SELECT source_record_id, value_text FROM lab_result")).all())
        quarantined = {(r.source_record_id, r.rule_id, r.offending_value) for r in conn.execute(sa.text(
            "SELECT source_record_id, rule_id, offending_value FROM quarantine WHERE rule_id LIKE '%.text.%'"))}
    assert loaded == {"R1": "阴性", "R3": "阳性", "R5": "+"}  # R3: trailing NUL padding dropped by the rule
    assert quarantined == {("R2", "lab_result.conformance.text.value_text", "阴\u2400性"),  # ␀ shown, not stored
                           ("R4", "lab_result.conformance.text.value_text", "弱阳\ufffd性"),
                           ("R6", "lab_result.conformance.text.value_text", "阳\ufffd")}  # invalid UTF-8 in SQLite


def test_a_lone_surrogate_never_fails_the_arrow_boundary():
    batch = raw_batch(["name", "n"], [("张\ud800三", 1), ("\U0001F600", 2)])
    assert batch.column(0).to_pylist() == ["张\ufffd三", "\U0001F600"]
    rec = raw_batch_from_records([{"name": "李\udfff四", "age": 3}])
    assert rec.column(0).to_pylist() == ["李\ufffd四"] and rec.column(1).type == pa.string()
