"""The suites stay in step with the canonical model and the code sets, and docs/validation.md shows them."""

from __future__ import annotations

import json

import pytest

from countyhealth import codes, model, settings
from countyhealth.validation import BIRTH_DATE, OVERLAPPED_CONTRACT, suites

# filled by the pipeline itself, never by a source: no completeness rule needed
PIPELINE_FILLED = {"source_id", "batch_id"}


@pytest.mark.parametrize("dataset", model.DATASET_NAMES)
def test_every_required_field_has_a_completeness_rule(dataset):
    rules = {r.rule_id: r for r in suites.load_rules(dataset)}
    for name in set(model.required_fields(dataset)) - PIPELINE_FILLED:
        rule = rules.get(f"{dataset}.completeness.{name}")
        assert rule is not None, f"expectations/{dataset}.json: no completeness rule for required field {name}"
        assert (rule.expectation_type, rule.kwargs.get("column"), rule.severity) == \
            ("expect_column_values_to_not_be_null", name, "error")
        assert "row_condition" not in rule.kwargs


@pytest.mark.parametrize("dataset", model.DATASET_NAMES)
def test_every_coded_field_has_its_value_set(dataset):
    rules = {r.rule_id: r for r in suites.load_rules(dataset)}
    for f in model.fields(dataset):
        if not f.code_set:
            continue
        rule = rules.get(f"{dataset}.conformance.{f.name}_code")
        assert rule is not None, f"expectations/{dataset}.json: no value-set rule for {f.name} ({f.code_set})"
        assert rule.expectation_type == "expect_column_values_to_be_in_set" and rule.kwargs["column"] == f.name
        assert sorted(rule.kwargs["value_set"]) == sorted(codes.ALL[f.code_set]), \
            f"{rule.rule_id}: value set differs from codes.{f.code_set}"


@pytest.mark.parametrize("dataset", model.DATASET_NAMES)
def test_rules_name_real_columns_and_are_well_formed(dataset):
    derived = {BIRTH_DATE} | ({OVERLAPPED_CONTRACT} if dataset == "contract" else set())
    names = set(model.schema(dataset).names) | derived
    data = json.loads(suites.suite_path(dataset).read_text(encoding="utf-8"))
    assert data["name"] == dataset
    for rule in suites.load_rules(dataset):
        kw = rule.kwargs
        used = [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])]
        assert {c for c in used if c} <= names, f"{rule.rule_id} names a column {dataset} does not have"
        assert rule.column in names and rule.doc.strip(), rule.rule_id
        assert rule.rule_id.split(".")[2].isidentifier()


def test_every_expectation_type_exists_in_gx():
    from countyhealth.validation import expectations as custom
    from great_expectations.expectations.registry import get_expectation_impl

    used = {r.expectation_type for r in suites.all_rules()}
    for name in used:
        assert get_expectation_impl(name) is not None
    custom_names = {c.expectation_type for c in custom.CUSTOM}
    assert custom_names <= used, f"custom expectations no suite uses: {custom_names - used}"


def test_malformed_suites_are_refused_naming_file_and_rule(tmp_path):
    folder = tmp_path / "expectations"
    folder.mkdir()
    good = json.loads(suites.suite_path("facility").read_text(encoding="utf-8"))
    bad = json.loads(json.dumps(good))
    bad["expectations"][1]["meta"]["rule_id"] = bad["expectations"][0]["meta"]["rule_id"]
    (folder / "facility.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(suites.SuiteError, match=r"facility\.json: expectation 1 .*used twice"):
        suites.load_rules("facility", folder)
    bad = json.loads(json.dumps(good))
    bad["expectations"][0]["meta"]["rule_id"] = "person.completeness.x"
    (folder / "facility.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(suites.SuiteError, match="must start with 'facility.completeness.'"):
        suites.load_rules("facility", folder)
    with pytest.raises(suites.SuiteError, match="person.json is missing"):
        suites.load_rules("person", folder)


def test_docs_show_the_current_rule_catalogue():
    assert suites.sync_catalogue(write=False), (
        "docs/validation.md does not show the rules in expectations/*.json: run "
        "`python -m countyhealth.validation.suites --write-docs`")
    text = suites.docs_path().read_text(encoding="utf-8")
    for rule in suites.all_rules():
        assert f"`{rule.rule_id}`" in text


def test_catalogue_sync_rewrites_a_stale_table(tmp_path):
    doc = tmp_path / "validation.md"
    doc.write_text(f"# x\n{suites.CATALOGUE_START}\nSTALE TABLE\n{suites.CATALOGUE_END}\nafter\n", encoding="utf-8")
    assert not suites.sync_catalogue(write=True, path=doc)
    assert suites.sync_catalogue(write=False, path=doc)
    text = doc.read_text(encoding="utf-8")
    assert "STALE TABLE" not in text and text.endswith("after\n") and "`lab_result.plausibility.physiological_limits`" in text


def test_suites_live_in_the_project_home():
    assert suites.suite_path("person") == settings.project_home() / "expectations" / "person.json"
