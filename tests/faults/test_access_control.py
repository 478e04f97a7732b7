"""Access control on PostgreSQL, with real roles on the real cluster: a member facility's analyst reads its own
facility's encounters (and their diagnoses) and everyone's shared results, and nothing else; the pipeline role
writes, the read-API role reads."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa

from countyhealth.warehouse import Warehouse

pytestmark = pytest.mark.postgres


def _connect_as(pg_url: str, role: str):
    url = sa.engine.make_url(pg_url)
    return psycopg.connect(host=url.host, port=url.port, dbname=url.database, user=role, autocommit=True)


def test_an_analyst_reads_its_facilitys_encounters_and_all_shared_results_only(pg_url):
    wh = Warehouse(pg_url)
    wh.migrate()
    analyst, other, pipeline, reader = (f"{kind}_{uuid.uuid4().hex[:8]}" for kind in
                                        ("analyst", "other_analyst", "etl", "api"))
    with wh.engine.begin() as conn:
        for sid, rid, fac, dx in (("his_w1", "E1", "W350125101", "I10"), ("his_w1", "E2", "W350125101", "E11.9"),
                                  ("his_h1", "E3", "H350125001", "J18.9")):
            conn.execute(sa.text("INSERT INTO encounter (source_id, source_record_id, facility_code, batch_id, "
                                 "diagnosis_code) VALUES (:s, :r, :f, 'b', :d)"), {"s": sid, "r": rid, "f": fac, "d": dx})
        for sid, rid, fac in (("his_w1", "L1", "W350125101"), ("his_h1", "L2", "H350125001")):
            conn.execute(sa.text("INSERT INTO shared_lab_result (person_id, source_id, source_record_id, "
                                 "facility_code, on_list, is_final, quality_ok, refreshed_at) "
                                 "VALUES ('P1', :s, :r, :f, true, true, true, now())"), {"s": sid, "r": rid, "f": fac})
        conn.execute(sa.text("INSERT INTO person (source_id, source_record_id, batch_id, name) "
                             "VALUES ('his_w1', 'P1', 'b', '张三')"))
        conn.exec_driver_sql(f"CREATE ROLE {analyst} LOGIN IN ROLE countyhealth_analyst")
        conn.exec_driver_sql(f"CREATE ROLE {other} LOGIN IN ROLE countyhealth_analyst")  # tied to no facility
        conn.exec_driver_sql(f"CREATE ROLE {pipeline} LOGIN IN ROLE countyhealth_pipeline")
        conn.exec_driver_sql(f"CREATE ROLE {reader} LOGIN IN ROLE countyhealth_reader")
        conn.execute(sa.text("INSERT INTO analyst_facility VALUES (:r, 'W350125101')"), {"r": analyst})
    try:
        with _connect_as(pg_url, analyst) as c:
            assert sorted(c.execute("SELECT source_record_id, diagnosis_code FROM encounter").fetchall()) == [
                ("E1", "I10"), ("E2", "E11.9")]
            assert sorted(r[0] for r in c.execute("SELECT source_record_id FROM shared_lab_result")) == ["L1", "L2"]
            for table in ("person", "lab_result", "quarantine", "analyst_facility", "identity_record", "golden_person"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute(f"SELECT count(*) FROM {table}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("UPDATE encounter SET diagnosis_code = 'X' WHERE source_record_id = 'E1'")
        with _connect_as(pg_url, other) as c:
            assert c.execute("SELECT count(*) FROM encounter").fetchone() == (0,)
        with _connect_as(pg_url, reader) as c:
            assert c.execute("SELECT count(*) FROM encounter").fetchone() == (3,)
            assert c.execute("SELECT count(*) FROM person").fetchone() == (1,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("DELETE FROM person")
        with _connect_as(pg_url, pipeline) as c:
            c.execute("UPDATE encounter SET diagnosis_code = 'I11' WHERE source_record_id = 'E3'")
            assert c.execute("SELECT count(*) FROM encounter").fetchone() == (3,)
            c.execute("INSERT INTO quarantine (batch_id, dataset, row_number, rule_id, source_id, quarantined_at) "
                      "VALUES ('b', 'encounter', 1, 'r', 's', now())")
    finally:
        with wh.engine.begin() as conn:
            for role in (analyst, other, pipeline, reader):
                conn.exec_driver_sql(f"DROP OWNED BY {role}")
                conn.exec_driver_sql(f"DROP ROLE {role}")
