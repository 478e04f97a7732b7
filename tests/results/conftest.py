"""A small warehouse with shared results built the way the pipeline builds them: canonical rows loaded,
sources registered, persons linked, EQA loaded, then a refresh."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa

from countyhealth import model, privacy
from countyhealth.warehouse import Warehouse

T0 = dt.datetime(2026, 3, 2, 9, 0)


def lab(rid, item, value, unit, *, source="his_w350125101", facility="W350125101", report="R1", status="final",
        at=T0, text=None, op=None, person="P1", updated=None):
    return {"source_id": source, "source_record_id": rid, "facility_code": facility, "batch_id": "b",
            "source_updated_at": updated or at, "person_source_record_id": person, "report_number": report,
            "report_at": at, "collected_at": at - dt.timedelta(hours=2), "item_code_local": item,
            "item_name_local": item, "value_numeric": value, "value_text": text if text is not None else
            (None if value is None else str(value)), "value_operator": op, "unit": unit, "result_status": status,
            "abnormal_flag": "N"}


def load_county(wh, labs, exams=(), eqa=None):
    wh.migrate()
    now = dt.datetime.now()
    wh.load("lab_result", model.conform("lab_result", pa.Table.from_pylist(labs, schema=model.schema("lab_result"))))
    if exams:
        wh.load("exam_report", model.conform("exam_report", pa.Table.from_pylist(list(exams),
                                                                                 schema=model.schema("exam_report"))))
    persons = [{"source_id": "his_w350125101", "source_record_id": "P1", "facility_code": "W350125101",
                "batch_id": "b", "name": "陈伟", "sex_code": "1", "birth_date": dt.date(1980, 1, 1),
                "id_number": "350125198001011238", "phone": "13912345678"},
               {"source_id": "his_h350125001", "source_record_id": "X9", "facility_code": "H350125001",
                "batch_id": "b", "name": "陈伟", "sex_code": "1", "birth_date": dt.date(1980, 1, 1)}]
    wh.load("person", privacy.protect_person(model.conform(
        "person", pa.Table.from_pylist(persons, schema=model.schema("person")))))
    with wh.begin() as conn:
        for sid, fac, cs in (("his_w350125101", "W350125101", "his_vendor_b"),
                             ("his_h350125001", "H350125001", "his_vendor_a")):
            conn.execute(sa.text("INSERT INTO source_registry VALUES (:s, 'sql', :f, :c, NULL, NULL, :t)"),
                         {"s": sid, "f": fac, "c": cs, "t": now})
            conn.execute(sa.text("INSERT INTO facility (source_id, source_record_id, facility_code, batch_id, name, "
                                 "level) VALUES ('registry', :f, :f, 'b', :n, 'township')"),
                         {"f": fac, "n": {"W350125101": "樟城镇卫生院", "H350125001": "永泰县医院"}[fac]})
        conn.execute(sa.text("INSERT INTO empi_person VALUES ('P0000000001', 'active', NULL, :t, :t), "
                             "('P0000000002', 'merged', 'P0000000001', :t, :t)"), {"t": now})
        for sid, rid in (("his_w350125101", "P1"), ("his_h350125001", "X9")):
            # (person_link, what results read, is a view of the identity stage's identity_record: migration 0011)
            conn.execute(sa.text("INSERT INTO identity_record (source_id, source_record_id, person_id, link_kind, "
                                 "match_probability, linked_at, run_id) VALUES (:s, :r, 'P0000000001', "
                                 "'deterministic', 1.0, :t, 'r')"), {"s": sid, "r": rid, "t": now})
        for fac, item, start, end, passed in eqa or []:
            conn.execute(sa.text("INSERT INTO eqa_certification VALUES (:f, :i, :s, :e, :p, :t)"),
                         {"f": fac, "i": item, "s": start, "e": end, "p": passed, "t": now})
        conn.execute(sa.text(
            "INSERT INTO golden_person (person_id, name, name_source_id, sex_code, birth_date, id_number, id_number_hash, "
            "phone, records, sources, updated_at) VALUES ('P0000000001', '陈伟', 'his_w350125101', '1', :b, :i, :h, :ph, "
            "2, 2, :t)"), {"b": dt.date(1980, 1, 1), "i": privacy.encrypt("350125198001011238"),
                           "h": privacy.keyed_hash("350125198001011238", "id_number"),
                           "ph": privacy.encrypt("13912345678"), "t": now})
    from countyhealth import results

    return results.refresh(wh)


@pytest.fixture
def wh(warehouse_url):
    return Warehouse(warehouse_url)
