"""Every rule of every suite: a row that breaks only that rule comes back with exactly that rule id (and its
severity); a clean row passes every rule. A rule added to a suite without a breaking example here fails."""

from __future__ import annotations

import datetime as dt

import pytest

from canonical_rows import BASE, NOW, T, context, table

from countyhealth import model
from countyhealth.validation import validate_dataset
from countyhealth.validation.suites import all_rules

# how to break each rule that is not a plain completeness / value-set rule
SPECIAL = {
    "person.conformance.resident_id": {"id_number": "350125198001011239"},  # wrong check character
    "person.plausibility.resident_id_legacy_15_digit": {"id_number": "350125800101123"},
    "person.plausibility.resident_id_agrees_with_birth_date_and_sex": {"birth_date": dt.date(1979, 12, 3)},
    "person.conformance.health_record_number": {"health_record_number": "3501251010010"},
    "person.conformance.phone": {"phone": "139-1234"},
    "person.conformance.name_characters": {"name": "陈伟2"},
    "person.plausibility.birth_date_not_in_future": {"birth_date": dt.date(2027, 1, 1), "id_number": None},
    "person.plausibility.birth_date_after_1880": {"birth_date": dt.date(1870, 1, 1), "id_number": None},
    "encounter.conformance.diagnosis_code_icd10": {"diagnosis_code": "高血压"},
    "encounter.conformance.other_diagnosis_codes_icd10": {"other_diagnosis_codes": "E11.9,J06"},
    "encounter.plausibility.start_at_not_in_future": {"start_at": NOW + dt.timedelta(days=1), "end_at": None},
    "encounter.plausibility.discharge_after_admission": {"end_at": T - dt.timedelta(days=1)},
    "lab_result.completeness.result_value": {"value_numeric": None, "value_text": None},
    "lab_result.conformance.value_operator": {"value_operator": "~"},
    "lab_result.plausibility.report_at_not_in_future": {"report_at": NOW + dt.timedelta(days=400)},
    "lab_result.plausibility.received_after_collected": {"received_at": T - dt.timedelta(minutes=5)},
    "lab_result.plausibility.tested_after_received": {"tested_at": T + dt.timedelta(minutes=10)},
    "lab_result.plausibility.reported_after_tested": {"tested_at": T + dt.timedelta(hours=4), "received_at": None},
    "lab_result.plausibility.reported_after_collected": {"collected_at": T + dt.timedelta(hours=5),
                                                          "received_at": None, "tested_at": None},
    "lab_result.plausibility.unit_allowed_for_item": {"unit": "mmol/dl"},
    "lab_result.plausibility.physiological_limits": {"value_numeric": 99000.0, "value_text": "99000"},
    "exam_report.completeness.findings_or_impression": {"findings": None, "impression": None},
    "exam_report.plausibility.report_at_not_in_future": {"report_at": NOW + dt.timedelta(days=2)},
    "exam_report.plausibility.reported_after_exam": {"exam_at": T + dt.timedelta(hours=5)},
    "chronic_followup.plausibility.visit_date_not_in_future": {"visit_date": dt.date(2027, 1, 1), "next_visit_date": None},
    "chronic_followup.plausibility.next_visit_after_visit": {"next_visit_date": dt.date(2026, 2, 1)},
    "chronic_followup.plausibility.sbp_physiological": {"sbp": 400},
    "chronic_followup.plausibility.dbp_physiological": {"dbp": 5},
    "chronic_followup.plausibility.sbp_above_dbp": {"sbp": 80, "dbp": 95},
    "chronic_followup.plausibility.heart_rate_physiological": {"heart_rate": 400},
    "chronic_followup.plausibility.weight_kg_physiological": {"weight_kg": 600.0},
    "chronic_followup.plausibility.bmi_physiological": {"bmi": 3.0},
    "chronic_followup.plausibility.hba1c_physiological": {"hba1c": 45.0},
    "chronic_followup.plausibility.fasting_glucose_mmol_physiological": {"fasting_glucose": 126.0},
    "chronic_followup.plausibility.fasting_glucose_mgdl_physiological": {"fasting_glucose": 2.0, "glucose_unit": "mg/dL"},
    "chronic_followup.completeness.glucose_unit": {"glucose_unit": None},
    "contract.plausibility.sign_date_not_in_future": {"sign_date": dt.date(2027, 5, 1)},
    "contract.plausibility.end_not_before_begin": {"end_date": dt.date(2026, 2, 1)},
    "contract.plausibility.termination_date_and_reason": {"termination_date": dt.date(2026, 3, 2)},
    "contract.conformance.termination_reason_code": {"termination_date": dt.date(2026, 3, 2), "termination_reason": "Z"},
    "contract.plausibility.no_overlap_with_loaded_contract": {"contract_number": "XY9"},
}
# rules that judge a row against what earlier nights loaded: the context that makes the breaking row break
CONTEXT = {
    "contract.plausibility.no_overlap_with_loaded_contract": {"loaded_contracts": __import__("pandas").DataFrame(
        [("k2", "OLD1", dt.date(2025, 9, 1), dt.date(2026, 8, 31))], columns=["key", "number", "begin", "end"])},
}
# events before the patient's birth: the same event, for a patient born after it (no other rule sees that)
SPECIAL.update({f"{ds}.plausibility.{col}_after_birth": {"person_source_record_id": "BORN_LATER"}
                for ds, col in [("encounter", "start_at"), ("lab_result", "report_at"), ("exam_report", "report_at"),
                                ("chronic_followup", "visit_date"), ("contract", "sign_date")]})
# rules that need a second row to break (e.g. an overlapping contract for the same resident)
PAIRED = {
    "contract.plausibility.no_overlapping_active_contracts": {"contract_number": "XY2", "begin_date": dt.date(2026, 6, 1),
                                                              "end_date": dt.date(2027, 5, 31)},
}


RULES = all_rules()


def breaker(rule) -> dict:
    name = rule.rule_id.split(".", 2)[2]
    if rule.rule_id in SPECIAL:
        return SPECIAL[rule.rule_id]
    if rule.category == "completeness" and rule.expectation_type == "expect_column_values_to_not_be_null":
        return {rule.column: None}
    if rule.expectation_type == "expect_column_values_to_be_in_set" and name.endswith("_code"):
        return {rule.column: "ZZ"}
    return {}


@pytest.mark.parametrize("dataset", model.DATASET_NAMES)
def test_a_clean_row_passes_every_rule(dataset):
    out = validate_dataset(dataset, table(dataset, [BASE[dataset]]), context())
    assert out.issues.to_pylist() == [] and out.clean.num_rows == 1 and not out.held


@pytest.mark.parametrize("rule", RULES, ids=[r.rule_id for r in RULES])
def test_each_rule_catches_the_row_that_breaks_it(rule):
    base = dict(BASE[rule.dataset])
    if rule.rule_id in PAIRED:
        rows = [base, {**base, **PAIRED[rule.rule_id]}]
        bad = {101}  # the later of the two
    else:
        change = breaker(rule)
        assert change, f"no breaking example for {rule.rule_id}: add one to SPECIAL in this test"
        other = {"resident_key": "k2"} if rule.dataset == "contract" else {}  # another resident: no overlap
        rows = [base, {**base, **other, **change}]
        bad = {101}
    out = validate_dataset(rule.dataset, table(rule.dataset, rows), context(**CONTEXT.get(rule.rule_id, {})))
    hits = {(i["_row"], i["rule_id"]) for i in out.issues.to_pylist()}
    # the breaking row(s) come back with exactly this rule, and nothing else fires
    assert hits == {(r, rule.rule_id) for r in bad}, out.issues.to_pylist()
    severities = {i["severity"] for i in out.issues.to_pylist() if i["rule_id"] == rule.rule_id}
    assert severities == {rule.severity}
    if rule.severity == "error":
        assert set(out.clean.column("_row").to_pylist()) == {100, 101} - bad
    else:
        assert out.clean.num_rows == 2  # a finding: the row still loads
