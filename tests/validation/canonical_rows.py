"""Canonical rows that pass every rule, and helpers to build a batch of them (shared by the validation tests)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from countyhealth import model
from countyhealth.validation import ValidationContext

NOW = dt.datetime(2026, 3, 10, 12, 0)
T = dt.datetime(2026, 3, 1, 9, 0)
ID = "350125198001011238"  # valid: born 1980-01-01, male

BASE = {
    "facility": {"name": "永泰县医院", "level": "county"},
    "person": {"name": "陈伟", "sex_code": "1", "birth_date": dt.date(1980, 1, 1), "id_type_code": "01",
               "id_number": ID, "health_record_number": "35012510100100001", "phone": "13912345678"},
    "encounter": {"person_source_record_id": "P1", "encounter_type": "outpatient", "start_at": T,
                  "end_at": T + dt.timedelta(days=3), "diagnosis_code": "I10", "other_diagnosis_codes": "E11.9;J06.9"},
    "lab_result": {"person_source_record_id": "P1", "report_number": "R1", "report_at": T + dt.timedelta(hours=3),
                   "collected_at": T, "received_at": T + dt.timedelta(minutes=20),
                   "tested_at": T + dt.timedelta(hours=1), "item_code_local": "JY011", "value_numeric": 99.0,
                   "value_text": "99.00", "unit": "mg/dL", "abnormal_flag": "N", "result_status": "final"},
    "exam_report": {"person_source_record_id": "P1", "report_number": "E1", "report_at": T + dt.timedelta(hours=2),
                    "exam_at": T, "exam_category": "CT", "findings": "未见异常", "impression": "未见明显异常",
                    "result_status": "final"},
    "chronic_followup": {"person_source_record_id": "D1", "condition": "diabetes", "visit_date": dt.date(2026, 3, 1),
                         "visit_mode": "1", "sbp": 138, "dbp": 86, "heart_rate": 72, "weight_kg": 63.5, "bmi": 24.2,
                         "fasting_glucose": 7.2, "glucose_unit": "mmol/L", "hba1c": 7.1, "salt_intake": "2",
                         "adherence": "1", "classification": "1", "next_visit_date": dt.date(2026, 6, 1)},
    "contract": {"person_source_record_id": "Q1", "contract_number": "XY1", "event": "sign", "team_code": "T10101",
                 "package_type": "03", "sign_date": dt.date(2026, 3, 1), "begin_date": dt.date(2026, 3, 1),
                 "end_date": dt.date(2027, 2, 28), "status": "signed", "resident_key": "k1"},
}

BIRTH_DATES = {"P1": dt.date(1980, 1, 1), "D1": dt.date(1950, 5, 2), "Q1": dt.date(1962, 7, 30),
               "BORN_LATER": dt.date(2026, 3, 5)}


def table(dataset: str, rows: list[dict], first_row: int = 100) -> pa.Table:
    """Canonical rows (lineage filled in) with ``_row`` = first_row, first_row + 1, …"""
    full = []
    for i, row in enumerate(rows):
        full.append({"source_id": "src", "source_record_id": f"r{i}", "facility_code": "W350125101", "batch_id": "b",
                     **row})
    return model.conform(dataset, pa.Table.from_pylist(full, schema=model.schema(dataset))).append_column(
        "_row", pa.array([first_row + i for i in range(len(rows))], pa.int64()))


def context(**kw) -> ValidationContext:
    args = dict(source_id="src", batch_id="b", load_time=NOW, code_system="his_vendor_b", birth_dates=BIRTH_DATES)
    return ValidationContext(**{**args, **kw})
