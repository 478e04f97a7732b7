"""validate_dataset's outcome: clean rows, merged prior issues, masking, warnings, the circuit breaker,
chunking, and the lab plausibility rules (units, censored values, unmapped codes)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from canonical_rows import BASE, ID, NOW, context, table

from countyhealth import privacy
from countyhealth.validation import ValidationError, birth_dates_of, validate_dataset
from countyhealth.validation.issues import ISSUE_SCHEMA, issues_table

LAB = BASE["lab_result"]


def rules_by_row(out) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for i in out.issues.to_pylist():
        found.setdefault(i["_row"], set()).add(i["rule_id"])
    return found


def test_clean_rows_keep_the_input_schema_and_row_numbers():
    t = table("lab_result", [LAB, {**LAB, "unit": "furlongs"}, LAB])
    out = validate_dataset("lab_result", t, context())
    assert out.clean.schema == t.schema
    assert out.clean.column("_row").to_pylist() == [100, 102]
    assert (out.rows_in, out.rows_quarantined, out.rows_flagged) == (3, 1, 0)
    assert out.rule_counts == {"lab_result.plausibility.unit_allowed_for_item": 1}
    assert out.issues.schema == ISSUE_SCHEMA
    assert (out.source_id, out.batch_id) == ("src", "b")


def test_prior_issues_from_mapping_are_merged_and_quarantine_their_rows():
    t = table("lab_result", [LAB, {**LAB, "report_at": None}, LAB])
    prior = issues_table([(102, "lab_result.conformance.parse.collected_at", "conformance", "error", "collected_at",
                           "2026-13-45"),
                          (100, "lab_result.conformance.parse.abnormal_flag", "conformance", "warning",
                           "abnormal_flag", "偏高?")])
    out = validate_dataset("lab_result", t, context(), prior_issues=prior)
    assert rules_by_row(out) == {100: {"lab_result.conformance.parse.abnormal_flag"},
                                 101: {"lab_result.completeness.report_at"},
                                 102: {"lab_result.conformance.parse.collected_at"}}
    assert out.clean.column("_row").to_pylist() == [100]  # a warning from mapping: the row still loads
    assert (out.rows_quarantined, out.rows_flagged) == (2, 1)
    assert out.rule_counts["lab_result.conformance.parse.collected_at"] == 1


def test_prior_issue_values_are_masked_too():
    prior = issues_table([(100, "person.conformance.parse.id_type_code", "conformance", "error", "id_type_code",
                           f"身份证 {ID}"), (100, "person.conformance.parse.phone", "conformance", "error", "phone",
                                             "13912345678")])
    out = validate_dataset("person", table("person", [BASE["person"]]), context(), prior_issues=prior)
    values = {i["column"]: i["value"] for i in out.issues.to_pylist()}
    assert values == {"id_type_code": f"身份证 {privacy.mask_id(ID)}", "phone": privacy.mask_phone("13912345678")}


def test_id_numbers_and_phones_are_masked_in_issue_values():
    bad_id = "350125198001011239"
    rows = [{**BASE["person"], "id_number": bad_id},
            {**BASE["person"], "phone": "1391234567"},  # 10 digits: not a phone number
            {**BASE["person"], "name": f"陈伟{ID}"}]  # an ID number typed into the name field
    out = validate_dataset("person", table("person", rows), context())
    values = {i["rule_id"]: i["value"] for i in out.issues.to_pylist()}
    assert values["person.conformance.resident_id"] == privacy.mask_id(bad_id)
    assert values["person.conformance.phone"] == privacy.mask_phone("1391234567")
    assert values["person.conformance.name_characters"] == "陈伟" + privacy.mask_id(ID)
    text = str(out.issues.to_pylist())
    assert bad_id not in text and ID not in text and "1391234567" not in text


def test_resident_id_findings_are_warnings_and_the_row_loads():
    rows = [{**BASE["person"], "id_number": "350125800101123"},  # valid 15-digit: flagged
            {**BASE["person"], "birth_date": dt.date(1980, 2, 14)},  # lunar birthday: ID says 1980-01-01
            {**BASE["person"], "sex_code": "2"},  # ID sequence is odd (male)
            {**BASE["person"], "id_type_code": "03", "id_number": "E12345678"},  # a passport: not judged as an ID
            {**BASE["person"], "id_number": "35012519800101123x"}]  # lower-case x, wrong check char
    out = validate_dataset("person", table("person", rows), context())
    assert rules_by_row(out) == {100: {"person.plausibility.resident_id_legacy_15_digit"},
                                 101: {"person.plausibility.resident_id_agrees_with_birth_date_and_sex"},
                                 102: {"person.plausibility.resident_id_agrees_with_birth_date_and_sex"},
                                 104: {"person.conformance.resident_id"}}
    assert out.clean.num_rows == 5 and out.rows_quarantined == 0 and out.rows_flagged == 4


def test_the_circuit_breaker_holds_when_the_failing_share_passes_the_threshold():
    rows = [LAB] * 7 + [{**LAB, "result_status": "done"}] * 3  # 30 % fail
    out = validate_dataset("lab_result", table("lab_result", rows), context())
    assert out.failing_share == pytest.approx(0.3) and out.threshold == 0.2 and out.held
    out = validate_dataset("lab_result", table("lab_result", rows), context(max_failing_share=0.3))
    assert not out.held  # "passes" the threshold means more than it
    empty = validate_dataset("lab_result", table("lab_result", []), context())
    assert (empty.rows_in, empty.failing_share, empty.held) == (0, 0.0, False)


def test_chunks_give_the_same_issues_as_one_pass():
    rows = [LAB, {**LAB, "unit": "mmol/dl"}, LAB, {**LAB, "value_numeric": -4.0}, {**LAB, "result_status": None},
            LAB, {**LAB, "report_at": NOW + dt.timedelta(days=1)}]
    t = table("lab_result", rows)
    whole = validate_dataset("lab_result", t, context())
    chunked = validate_dataset("lab_result", t, context(chunk_rows=2))
    def key(out):
        return sorted(tuple(i.values()) for i in out.issues.to_pylist())

    assert len(key(whole)) == 4 and key(chunked) == key(whole)
    assert chunked.clean.column("_row").to_pylist() == whole.clean.column("_row").to_pylist() == [100, 102, 105]


def test_overlapping_contracts_are_found_across_rows_and_terminated_ones_do_not_count():
    c = BASE["contract"]
    rows = [c, {**c, "contract_number": "XY2", "begin_date": dt.date(2027, 3, 1), "end_date": dt.date(2028, 2, 28)},
            {**c, "contract_number": "XY3", "resident_key": "k2"},
            {**c, "contract_number": "XY4", "resident_key": "k2", "status": "terminated",
             "termination_date": dt.date(2026, 3, 5), "termination_reason": "4"},
            {**c, "contract_number": "XY5", "resident_key": "k3"},
            {**c, "contract_number": "XY6", "resident_key": "k3", "begin_date": dt.date(2027, 2, 28),
             "end_date": dt.date(2028, 2, 27)}]  # begins on the day the first ends: overlap by one day
    out = validate_dataset("contract", table("contract", rows), context())
    # of an overlapping pair the later contract is the error; the resident's first one (XY5) loads
    assert rules_by_row(out) == {105: {"contract.plausibility.no_overlapping_active_contracts"}}


def test_a_contract_overlapping_one_loaded_on_an_earlier_night_is_quarantined():
    import pandas as pd

    c = BASE["contract"]
    loaded = pd.DataFrame([("k1", "OLD1", dt.date(2025, 9, 1), dt.date(2026, 8, 31)),   # active: overlaps XY1
                           ("k2", "OLD2", dt.date(2025, 1, 1), dt.date(2025, 12, 31)),   # ended before XY2 began
                           ("k3", "XY3", dt.date(2025, 3, 1), dt.date(2026, 2, 28))],    # XY3's own older state
                          columns=["key", "number", "begin", "end"])
    rows = [c, {**c, "contract_number": "XY2", "resident_key": "k2"},
            {**c, "contract_number": "XY3", "resident_key": "k3", "event": "renew"},
            {**c, "contract_number": "XY4", "resident_key": "k1", "status": "terminated",
             "termination_date": dt.date(2026, 3, 5), "termination_reason": "4"},
            {**c, "contract_number": "XY5", "resident_key": None}]
    out = validate_dataset("contract", table("contract", rows), context(loaded_contracts=loaded))
    assert rules_by_row(out) == {100: {"contract.plausibility.no_overlap_with_loaded_contract"}}
    issue = next(i for i in out.issues.to_pylist() if i["_row"] == 100)
    assert issue["column"] == "contract_number" and issue["value"] == "XY1"
    # without the warehouse's contracts the rule has nothing to judge
    assert validate_dataset("contract", table("contract", rows), context()).issues.num_rows == 0


@pytest.mark.parametrize("change, rule", [
    ({"value_operator": "<", "value_numeric": 0.1, "value_text": "<0.1", "item_code_local": "JY001",
      "unit": "10^9/L"}, None),  # censored and within limits; unit spelled differently
    ({"value_operator": ">", "value_numeric": 12000.0, "item_code_local": "JY021", "unit": "U/L"},
     "lab_result.plausibility.physiological_limits"),  # censored but beyond the limit
    ({"item_code_local": "JY041", "value_numeric": 7.1, "unit": "mmol/l"}, None),  # hyperkalaemia is pathology
    ({"item_code_local": "JY041", "value_numeric": 71.0, "unit": "mmol/L"}, "lab_result.plausibility.physiological_limits"),
    ({"value_numeric": 1500.0, "unit": "mg/dL"}, "lab_result.plausibility.physiological_limits"),  # 83 mmol/L
    ({"value_numeric": 5.5, "unit": "mmol/L"}, None),  # glucose in its canonical unit
    ({"value_numeric": 5.5, "unit": None}, "lab_result.plausibility.unit_allowed_for_item"),
    ({"item_code_local": "JY999", "value_numeric": 1e9, "unit": "parsec"}, None),  # unmapped: coverage report's job
    ({"item_code_local": "NOPE", "value_numeric": -5.0, "unit": "x"}, None),  # unknown local code likewise
    ({"item_code_local": "JY091", "value_numeric": None, "value_text": "阴性", "unit": None}, None),  # qualitative
])
def test_lab_plausibility_converts_units_and_uses_wide_limits(change, rule):
    out = validate_dataset("lab_result", table("lab_result", [{**LAB, **change}]), context())
    assert rules_by_row(out) == ({100: {rule}} if rule else {})


def test_lab_codes_are_looked_up_in_the_sources_code_system():
    t = table("lab_result", [{**LAB, "value_numeric": 99000.0}])
    assert validate_dataset("lab_result", t, context(code_system="his_vendor_b")).rows_quarantined == 1
    assert validate_dataset("lab_result", t, context(code_system="his_vendor_x")).rows_quarantined == 0
    assert validate_dataset("lab_result", t, context(code_system=None)).rows_quarantined == 0


def test_not_in_the_future_uses_the_load_time_not_the_clock():
    row = {**BASE["encounter"], "start_at": dt.datetime(2026, 3, 11, 8, 0), "end_at": None}
    t = table("encounter", [row])
    assert validate_dataset("encounter", t, context()).rule_counts == {"encounter.plausibility.start_at_not_in_future": 1}
    later = context(load_time=dt.datetime(2026, 3, 12))
    assert validate_dataset("encounter", t, later).rule_counts == {}


def test_birth_dates_come_from_person_rows_and_unknown_patients_are_not_judged():
    people = table("person", [BASE["person"], {**BASE["person"], "birth_date": None}])
    births = birth_dates_of(people)
    assert births == {"r0": dt.date(1980, 1, 1)}
    enc = BASE["encounter"]
    t = table("encounter", [{**enc, "person_source_record_id": "r0", "start_at": dt.datetime(1979, 5, 1)},
                            {**enc, "person_source_record_id": "r1", "start_at": dt.datetime(1979, 5, 1),
                             "end_at": None},
                            {**enc, "person_source_record_id": "r0"}])
    out = validate_dataset("encounter", t, context(birth_dates=births))
    assert rules_by_row(out) == {100: {"encounter.plausibility.start_at_after_birth"}}
    assert validate_dataset("encounter", t, context(birth_dates=None)).rows_quarantined == 0


def test_rows_missing_canonical_columns_are_refused_with_the_fix():
    t = table("lab_result", [LAB]).drop_columns(["unit", "result_status"])
    with pytest.raises(ValueError, match="unit, result_status.*model.conform"):
        validate_dataset("lab_result", t, context())
    with pytest.raises(ValueError, match="_row"):
        validate_dataset("lab_result", table("lab_result", [LAB]).drop_columns(["_row"]), context())


def test_a_rule_that_cannot_run_is_an_error_naming_it(tmp_path, monkeypatch):
    import json
    import shutil

    from countyhealth import settings

    suites_dir = tmp_path / "home" / "expectations"
    shutil.copytree(settings.expectations_dir(), suites_dir)
    data = json.loads((suites_dir / "facility.json").read_text(encoding="utf-8"))
    data["expectations"].append({"type": "expect_column_values_to_match_regex",
                                 "kwargs": {"column": "name", "regex": "("},  # not a regex
                                 "meta": {"rule_id": "facility.conformance.broken", "category": "conformance",
                                          "severity": "error", "column": "name", "doc": "broken on purpose"}})
    (suites_dir / "facility.json").write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setattr(settings, "expectations_dir", lambda: suites_dir)
    with pytest.raises(ValidationError, match=r"facility\.conformance\.broken.*source src"):
        validate_dataset("facility", table("facility", [BASE["facility"]]), context())


def test_value_text_of_dates_and_numbers():
    rows = [{**BASE["chronic_followup"], "sbp": 400}, {**BASE["chronic_followup"], "visit_date": dt.date(2027, 1, 1),
                                                       "next_visit_date": None}]
    out = validate_dataset("chronic_followup", table("chronic_followup", rows), context())
    values = {i["rule_id"]: i["value"] for i in out.issues.to_pylist()}
    assert values == {"chronic_followup.plausibility.sbp_physiological": "400",
                      "chronic_followup.plausibility.visit_date_not_in_future": "2027-01-01"}
    assert pa.types.is_string(out.issues.schema.field("value").type)


def test_rules_on_empty_columns_are_skipped_but_missing_values_still_fail():
    from countyhealth.validation import suites

    rules = {r.rule_id: r for r in suites.load_rules("lab_result")}
    empty_cols = {"value_numeric", "value_text", "unit", "item_code_local", "received_at"}
    assert suites.vacuous(rules["lab_result.plausibility.physiological_limits"], empty_cols)
    assert suites.vacuous(rules["lab_result.plausibility.received_after_collected"], {"received_at"})
    assert not suites.vacuous(rules["lab_result.completeness.item_code_local"], empty_cols)
    assert not suites.vacuous(rules["lab_result.completeness.result_value"], empty_cols)
    assert not suites.vacuous(rules["lab_result.plausibility.physiological_limits"], {"unit"})
    # end to end: a source that sends no values at all gets every row quarantined for it, nothing else
    rows = [{**LAB, "value_numeric": None, "value_text": None, "unit": None}] * 3
    out = validate_dataset("lab_result", table("lab_result", rows), context())
    assert out.rule_counts == {"lab_result.completeness.result_value": 3}
    # and a source without units gets its quantitative values refused
    out = validate_dataset("lab_result", table("lab_result", [{**LAB, "unit": None}] * 2), context())
    assert out.rule_counts == {"lab_result.plausibility.unit_allowed_for_item": 2}


def test_an_empty_table_needs_no_gx_and_keeps_the_schema():
    t = table("lab_result", [])
    out = validate_dataset("lab_result", t, context())
    assert out.clean.schema == t.schema and out.issues.num_rows == 0 and not out.held
