"""Raw → canonical mapping: types, formats, value maps, transforms; bad values become issues, not crashes."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from countyhealth.connectors.mapping import MappingError, map_dataset, map_stream
from countyhealth.connectors.typing import SqlSource

VENDOR_B_LAB = {
    "kind": "sql", "facility_code": "W350125101", "connection": {"conn_id": "x"},
    "streams": {"labs": {
        "table": "jy_jg", "primary_key": "jgid",
        "cursor": {"column": "gxsj", "format": "%Y/%m/%d %H:%M"},
        "dataset": "lab_result",
        "fields": {
            "report_number": "bgdh", "person_source_record_id": "hzid", "facility_code": "jgdm",
            "item_code_local": "xmdm",
            "value_numeric": {"column": "jg", "transform": ["numeric_part"]},
            "value_operator": {"column": "jg", "transform": ["comparator"]},
            "value_text": "jg",
            "abnormal_flag": {"column": "ycbz", "transform": ["abnormal_arrow"]},
            "report_at": {"column": "bgsj", "format": "%Y/%m/%d %H:%M"},
            "result_status": {"column": "zt", "map": {"审核": "final", "更正": "corrected"}},
        }}},
}


def source(cfg=VENDOR_B_LAB):
    s = SqlSource.model_validate(cfg)
    s.source_id, s.path = "his_w350125101", "sources/his_w350125101.yaml"
    return s


def raw(**cols):
    n = len(next(iter(cols.values())))
    return pa.table({**{k: pa.array(v, pa.string()) for k, v in cols.items()},
                     "_row": pa.array(range(100, 100 + n), pa.int64())})


def lab_raw(**override):
    base = dict(jgid=["R1", "R2", "R3", "R4"], bgdh=["B1"] * 4, hzid=["P1"] * 4, jgdm=["W350125101"] * 4,
                xmdm=["JY011", "JY061", "JY091", "JY071"], jg=["126.00", "<0.5", "阴性", ">1000"],
                ycbz=["↑", "", None, "↓"], bgsj=["2026/03/01 10:05"] * 4, zt=["审核", "审核", "更正", "审核"],
                gxsj=["2026/03/01 10:06"] * 4)
    base.update(override)
    return raw(**base)


def test_maps_types_transforms_and_defaults():
    src = source()
    out = map_dataset(lab_raw(), src.streams["labs"].maps[0], src, src.streams["labs"], batch_id="b1")
    t = out.table.to_pydict()
    assert out.issues.num_rows == 0
    assert t["source_id"] == ["his_w350125101"] * 4 and t["batch_id"] == ["b1"] * 4
    assert t["source_record_id"] == ["R1", "R2", "R3", "R4"]  # from primary_key
    assert t["value_numeric"] == [126.0, 0.5, None, 1000.0]
    assert t["value_operator"] == [None, "<", None, ">"]
    assert t["value_text"] == ["126.00", "<0.5", "阴性", ">1000"]
    assert t["abnormal_flag"] == ["H", None, None, "L"]
    assert t["result_status"] == ["final", "final", "corrected", "final"]
    assert t["report_at"][0] == dt.datetime(2026, 3, 1, 10, 5)
    assert t["source_updated_at"][0] == dt.datetime(2026, 3, 1, 10, 6)  # from the cursor
    assert t["_row"] == [100, 101, 102, 103]  # positions in the landed batch survive


def test_unparsable_and_unmapped_values_become_issues_with_stable_rule_ids():
    src = source()
    data = lab_raw(bgsj=["2026/03/01 10:05", "2026-13-45", None, "yesterday"], zt=["审核", "已作废?", "审核", "审核"])
    out = map_dataset(data, src.streams["labs"].maps[0], src, src.streams["labs"], batch_id="b1")
    issues = sorted((r["_row"], r["rule_id"], r["value"]) for r in out.issues.to_pylist())
    assert issues == [
        (101, "lab_result.conformance.parse.report_at", "2026-13-45"),
        (101, "lab_result.conformance.value_map.result_status", "已作废?"),
        (103, "lab_result.conformance.parse.report_at", "yesterday"),
    ]
    assert out.table.column("report_at").to_pylist()[1] is None  # null, and the issue quarantines the row
    assert {r["severity"] for r in out.issues.to_pylist()} == {"error"}


def test_numbers_parse_exactly_or_quarantine_never_coerced():
    src = source()
    good = ["５.２", "≥1000", "12.3↑", " <0.1 ", "8.5 H", "-0.25", "阴性", "1:320", "2+"]
    bad = ["1e309", "NaN", "5.2; DROP TABLE lab_result", "5.2 6.1", "0x1F", "inf", "12..3", "1,234"]
    values = good + bad
    n = len(values)
    data = lab_raw(jgid=[f"R{i}" for i in range(n)], bgdh=["B1"] * n, hzid=["P1"] * n, jgdm=["W350125101"] * n,
                   xmdm=["JY011"] * n, jg=values, ycbz=[None] * n, bgsj=["2026/03/01 10:05"] * n, zt=["审核"] * n,
                   gxsj=["2026/03/01 10:06"] * n)
    out = map_dataset(data, src.streams["labs"].maps[0], src, src.streams["labs"], batch_id="b1")
    got = out.table.column("value_numeric").to_pylist()
    assert got[:len(good)] == [5.2, 1000.0, 12.3, 0.1, 8.5, -0.25, None, None, None]
    assert got[len(good):] == [None] * len(bad)
    flagged = {r["value"] for r in out.issues.to_pylist() if r["rule_id"] == "lab_result.conformance.parse.value_numeric"}
    assert flagged == set(bad)  # each quarantined with its value named; none coerced into 1.0 or 5.2
    assert out.table.column("value_operator").to_pylist()[:4] == [None, ">=", None, "<"]


def test_id_numbers_and_phones_are_masked_in_issues():
    cfg = {"kind": "sql", "facility_code": "H1", "connection": {"conn_id": "x"}, "streams": {"p": {
        "table": "t", "dataset": "person", "fields": {
            "source_record_id": "id", "name": "name", "birth_date": "birth",
            "id_number": {"column": "sfzh", "map": {}, "unmapped": "error"},
            "phone": {"column": "tel", "map": {}, "unmapped": "error"}}}}}
    src = source(cfg)
    data = raw(id=["1"], name=["张三"], birth=["1980-01-01"], sfzh=["350125198001011234"], tel=["13912345678"])
    out = map_dataset(data, src.streams["p"].maps[0], src, src.streams["p"], batch_id="b")
    values = {r["column"]: r["value"] for r in out.issues.to_pylist()}
    assert values == {"id_number": "350**************4", "phone": "139******78"}


def test_templates_constants_booleans_integers_and_where():
    cfg = {"kind": "sql", "facility_code": "H1", "connection": {"conn_id": "x"}, "streams": {"f": {
        "table": "t", "maps": [{
            "dataset": "chronic_followup", "where": {"kind": ["htn", "dm"]}, "fields": {
                "source_record_id": {"template": "{org}-{id}"}, "person_source_record_id": "dabh",
                "condition": {"column": "kind", "map": {"htn": "hypertension", "dm": "diabetes"}},
                "visit_date": {"column": "d", "format": ["%Y%m%d", "%Y-%m-%d"]},
                "sbp": "sbp", "referral": "ref", "visit_mode": {"value": "1"}}}]}}}
    src = source(cfg)
    data = raw(org=["A", "A", "A", "A"], id=["1", "2", "3", "4"], dabh=["D"] * 4, kind=["htn", "dm", "other", "htn"],
               d=["20260301", "2026-03-02", "20260303", "3/4/2026"], sbp=["150", "150.0", "x", "99999999999"],
               ref=["是", "0", "1", "maybe"])
    out = map_stream(data, src, src.streams["f"], batch_id="b")[0]
    t = out.table.to_pydict()
    assert out.rows_excluded == 1 and t["source_record_id"] == ["A-1", "A-2", "A-4"]
    assert t["condition"] == ["hypertension", "diabetes", "hypertension"]
    assert t["visit_date"] == [dt.date(2026, 3, 1), dt.date(2026, 3, 2), None]
    assert t["sbp"] == [150, 150, None] and t["referral"] == [True, False, None]
    assert t["visit_mode"] == ["1"] * 3
    rules = sorted((r["_row"], r["rule_id"]) for r in out.issues.to_pylist())
    assert rules == [(103, "chronic_followup.conformance.parse.referral"),
                     (103, "chronic_followup.conformance.parse.sbp"),
                     (103, "chronic_followup.conformance.parse.visit_date")]


def test_a_mapped_column_missing_from_the_source_is_a_config_error():
    src = source()
    data = lab_raw()
    data = data.drop_columns(["xmdm"])
    with pytest.raises(MappingError, match="column 'xmdm' is not in the source data"):
        map_dataset(data, src.streams["labs"].maps[0], src, src.streams["labs"], batch_id="b")
    # REST pages may omit keys nobody filled: not strict there
    out = map_dataset(data, src.streams["labs"].maps[0], src, src.streams["labs"], batch_id="b", strict_columns=False)
    assert out.table.column("item_code_local").null_count == 4
