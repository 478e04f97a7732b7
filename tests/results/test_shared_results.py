"""Eligibility (互认) from configuration, harmonised codes and units, corrections, coverage — on both engines."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from countyhealth import reference, results
from countyhealth.standardise import lab as lab_std

from conftest import T0, lab, load_county

Y2026 = (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
EQA = [("W350125101", "HR-GLU", *Y2026, True), ("W350125101", "HR-K", *Y2026, True),
       ("W350125101", "HR-HBA1C", *Y2026, True), ("W350125101", "HR-TC", dt.date(2025, 1, 1), dt.date(2025, 12, 31), True),
       ("W350125101", "HR-ALT", *Y2026, False), ("H350125001", "HR-GLU", *Y2026, True)]


def rows_by_id(wh, as_of):
    with wh.engine.connect() as conn:
        return {r["source_record_id"]: r for r in results.eligible(conn, "P0000000001", as_of)}


def test_eligibility_edge_cases(wh):
    load_county(wh, [
        lab("L1", "JY011", 126.0, "mg/dL"),  # glucose, mg/dL → mmol/L, EQA passed, 30 days
        lab("L2", "JY041", 4.1, "mmol/L"),  # potassium: 7-day window
        lab("L3", "JY051", 200.0, "mg/dL"),  # cholesterol: EQA only for 2025, report in 2026
        lab("L4", "JY021", 40.0, "U/L"),  # ALT: EQA failed
        lab("L5", "JY901", 12.0, "mm/h"),  # ESR: local code not mapped
        lab("L6", "JY081", 11.0, "s"),  # PT: mapped but not on the county's list
        lab("L7", "JY012", 6.5, "%", status="preliminary", report="R2"),  # HbA1c, not final
        lab("L8", "A1101", 5.5, "mmol/L", source="his_h350125001", facility="H350125001", person="X9", report="R9"),
    ], eqa=EQA)
    day3 = rows_by_id(wh, dt.date(2026, 3, 5))
    assert day3["L1"]["mark"] == "HR" and day3["L1"]["reason"] is None
    assert day3["L1"]["value_canonical"] == pytest.approx(126.0 * 0.05551) and day3["L1"]["unit_canonical"] == "mmol/L"
    assert day3["L1"]["loinc"] == "1558-6" and day3["L1"]["item_code"] == "HR-GLU"
    assert day3["L2"]["mark"] == "HR"
    assert day3["L3"]["mark"] is None and "室间质评" in day3["L3"]["reason"]
    assert day3["L4"]["mark"] is None and "EQA" in day3["L4"]["reason"]
    assert day3["L5"]["mark"] is None and "not mapped" in day3["L5"]["reason"]
    assert day3["L6"]["mark"] is None and "recognised-item list" in day3["L6"]["reason"]
    assert day3["L7"]["mark"] is None and "not a final report" in day3["L7"]["reason"]
    assert day3["L8"]["mark"] == "HR"  # the county hospital's result, same person via the EMPI
    day10 = rows_by_id(wh, dt.date(2026, 3, 10))
    assert day10["L2"]["mark"] is None and "7-day validity window" in day10["L2"]["reason"]  # expired
    assert day10["L1"]["mark"] == "HR"  # glucose keeps 30 days
    assert rows_by_id(wh, dt.date(2026, 4, 5))["L1"]["mark"] is None


def test_a_correction_supersedes_and_never_duplicates(wh):
    load_county(wh, [
        lab("L1", "JY041", 6.9, "mmol/L", report="R1"),
        # the vendor re-sent the corrected result under a new record id, two days later
        lab("L1b", "JY041", 4.2, "mmol/L", report="R1", status="corrected", updated=T0 + dt.timedelta(days=2)),
    ], eqa=EQA)
    rows = rows_by_id(wh, dt.date(2026, 3, 3))
    assert set(rows) == {"L1b"} and rows["L1b"]["value_canonical"] == 4.2 and rows["L1b"]["mark"] == "HR"
    with wh.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM shared_lab_result")).scalar() == 1


def test_censored_and_qualitative_values_and_merged_person_ids(wh):
    load_county(wh, [lab("L1", "JY061", 0.5, "mg/L", op="<", text="<0.5"),
                     lab("L2", "JY091", None, None, text="阴性")], eqa=EQA)
    rows = rows_by_id(wh, dt.date(2026, 3, 3))
    assert rows["L1"]["value_operator"] == "<" and rows["L2"]["value_text"] == "阴性"
    from countyhealth import identity

    assert identity.resolve(wh, "P0000000002") == "P0000000001"


def test_coverage_lists_unmapped_codes_most_frequent_first(wh):
    load_county(wh, [lab(f"E{i}", "JY901", 10.0, "mm/h", report=f"R{i}") for i in range(3)]
                + [lab("X1", "JY999", 1.0, "x")] + [lab("G1", "JY011", 100.0, "mg/dL")], eqa=EQA)
    from countyhealth.results.coverage import unmapped

    rows = unmapped(wh)
    assert [(r["local_code"], r["results"]) for r in rows] == [("JY901", 3), ("JY999", 1)]
    assert rows[0]["code_system"] == "his_vendor_b" and rows[0]["facility_code"] == "W350125101"


@pytest.mark.parametrize("code,value,unit,expected", [
    ("HR-GLU", 90, "mg/dL", 4.9959), ("HR-GLU", 5.0, "mmol/l", 5.0), ("HR-CREA", 1.0, "mg/dL", 88.4),
    ("HR-TBIL", 1.0, "mg/dL", 17.1), ("HR-HGB", 13.5, "g/dL", 135.0), ("HR-CA", 10.0, "mg/dL", 2.495),
    ("HR-UA", 5.0, "mg/dL", 297.4), ("HR-CREA", 80, "μmol/L", 80.0), ("HR-WBC", 6.1, "10^9/L", 6.1),
])
def test_unit_conversions(code, value, unit, expected):
    item = reference.lab_items()[code]
    got, canonical = lab_std.to_canonical(item, value, unit)
    assert got == pytest.approx(expected, rel=1e-3) and canonical == item.canonical_unit


def test_a_unit_not_allowed_is_refused_with_the_allowed_ones():
    with pytest.raises(lab_std.UnitNotAllowed, match="allowed: mmol/L, mg/dL"):
        lab_std.to_canonical(reference.lab_items()["HR-GLU"], 5.0, "g/L")
