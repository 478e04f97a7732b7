"""The HTML run report, on both warehouse engines: content, charts, self-containment and privacy."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from countyhealth import failures, model, privacy
from countyhealth.validation import report
from countyhealth.warehouse import Warehouse

NOW = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
DAY1, DAY2 = NOW - dt.timedelta(days=2), NOW - dt.timedelta(days=1)
RAW_ID = "350125198001011238"
RAW_PHONE = "13912345678"
FAC_A, FAC_B, FAC_C = "W350125101", "W350125102", "H350125001"


def _canonical(dataset: str, rows: list[dict]) -> pa.Table:
    return model.conform(dataset, pa.Table.from_pylist(rows, schema=model.schema(dataset)))


def _audit(conn, batch_id, dataset, status, extracted, loaded, quarantined, duplicate=0, flagged=0, when=DAY2,
           source="his_w350125101", stream="lab", message=None, share=None):
    conn.execute(sa.text(
        "INSERT INTO batch_audit (batch_id, dataset, source_id, stream, status, rows_extracted, rows_loaded, "
        "rows_quarantined, rows_duplicate, rows_flagged, failing_share, threshold, validated_at, loaded_at, message) "
        "VALUES (:b, :d, :s, :t, :st, :e, :l, :q, :dup, :f, :fs, 0.2, :va, :la, :m)"),
        {"b": batch_id, "d": dataset, "s": source, "t": stream, "st": status, "e": extracted, "l": loaded,
         "q": quarantined, "dup": duplicate, "f": flagged, "fs": share if share is not None else quarantined / extracted,
         "va": when - dt.timedelta(minutes=5), "la": None if status == "held" else when, "m": message})


def _issue(conn, table, batch_id, dataset, row, rule, facility, value, when, source="his_w350125101"):
    at = "quarantined_at" if table == "quarantine" else "found_at"
    extra = ", row_json" if table == "quarantine" else ""
    conn.execute(sa.text(
        f"INSERT INTO {table} (batch_id, dataset, row_number, rule_id, source_id, facility_code, source_record_id, "
        f"category, column_name, offending_value{extra}, {at}) VALUES (:b, :d, :r, :rule, :s, :f, :rec, :c, :col, :v"
        + (", :js" if extra else "") + ", :at)"),
        {"b": batch_id, "d": dataset, "r": row, "rule": rule, "s": source, "f": facility, "rec": f"rec{row}",
         "c": rule.split(".")[1], "col": "x", "v": value, "js": '{"x": 1}', "at": when})


@pytest.fixture
def warehouse(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    facilities = _canonical("facility", [
        {"source_id": "registry", "source_record_id": c, "facility_code": c, "batch_id": "reg", "name": n, "level": lv}
        for c, n, lv in [(FAC_A, "东城乡卫生院", "township"), (FAC_B, "西山乡卫生院", "township"),
                         (FAC_C, "永泰县医院", "county")]])
    wh.load("facility", facilities)
    lab = [{"source_id": "his_w350125101", "source_record_id": f"L{i}", "facility_code": fac, "batch_id": batch,
            "person_source_record_id": "P1", "report_number": f"R{i}", "report_at": DAY1, "item_code_local": "JY011",
            "result_status": "final"}
           for i, (fac, batch) in enumerate([(FAC_A, "b1")] * 3 + [(FAC_B, "b1")] * 2 + [(FAC_A, "b3")] * 4)]
    wh.load("lab_result", _canonical("lab_result", lab))
    enc = [{"source_id": "his_h350125001", "source_record_id": f"E{i}", "facility_code": FAC_C, "batch_id": "b4",
            "person_source_record_id": "P9", "encounter_type": "outpatient", "start_at": DAY1} for i in range(6)]
    wh.load("encounter", _canonical("encounter", enc))
    with wh.engine.begin() as conn:
        _audit(conn, "b1", "lab_result", "loaded", 8, 5, 3, when=DAY1)
        _audit(conn, "b3", "lab_result", "loaded", 5, 4, 0, duplicate=1, flagged=1, when=DAY2)
        _audit(conn, "b4", "encounter", "loaded", 6, 6, 0, when=DAY2, source="his_h350125001", stream="visits")
        _audit(conn, "b5", "encounter", "loaded", 9, 6, 1, when=DAY2, source="his_h350125001", stream="visits")
        _audit(conn, "b2", "lab_result", "held", 10, 0, 6, when=DAY2, source="his_w350125102",
               message=f"held: 60.0% of rows failed validation (threshold 20%); top rules: lab_result.plausibility."
                       f"physiological_limits (6) — patient {RAW_ID}")  # a raw ID where none belongs: scrubbed
        _audit(conn, "b0", "lab_result", "loaded", 4, 4, 0, when=NOW - dt.timedelta(days=90))  # outside the window
        for row in (1, 2, 3):
            _issue(conn, "quarantine", "b1", "lab_result", row, "lab_result.plausibility.physiological_limits", FAC_A,
                   "99000.0", DAY1)
        _issue(conn, "quarantine", "b1", "lab_result", 3, "lab_result.plausibility.unit_allowed_for_item", FAC_A,
               "furlong", DAY1)  # the same row failing a second rule: still one defective row
        _issue(conn, "quarantine", "b5", "encounter", 7, "encounter.conformance.parse.start_at", FAC_C, RAW_PHONE, DAY2,
               source="his_h350125001")
        _issue(conn, "finding", "b3", "lab_result", 2, "lab_result.plausibility.unit_allowed_for_item", FAC_A,
               privacy.mask_id(RAW_ID), DAY2)
    failures.record(stage="extract", reason=f"connection refused by 10.0.0.5 (contact {RAW_PHONE})",
                            source_id="his_w350125103", stream="lab", facility_code="W350125103")
    return wh


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_report_shows_summary_reconciliation_rows_rules_facilities_and_held_batches(warehouse, tmp_path):
    out = report.write_report(warehouse, tmp_path / "r.html", days=30)
    html = out.read_text(encoding="utf-8")
    text = _text(html)
    # run summary: 4 loaded batches in the window (b0 is older), 1 held, 1 failure with its plain reason
    assert re.search(r"<b>4</b>batches loaded", html) and re.search(r"<b>1</b>batches held", html)
    assert re.search(r"<b>1</b>failures", html) and "connection refused by 10.0.0.5" in text
    assert "b0" not in re.findall(r"<td>(b\d)</td>", html)
    # reconciliation per batch: b5 (9 ≠ 6 + 1 + 0) is called out
    assert len(re.findall(r'class="ok">exact', html)) == 3 and html.count("MISMATCH") == 1
    assert re.search(r"<b>1</b>reconciliation mismatches", html)
    # rows per facility and dataset, named from the facility registry
    assert "东城乡卫生院 (W350125101)" in html and "永泰县医院 (H350125001)" in html
    # columns encounter, lab_result, total: 3 lab rows from b1 + 4 from b3
    assert "东城乡卫生院 (W350125101)</td><td class=n>0</td><td class=n>7</td><td class=n>7</td>" in html
    assert "永泰县医院 (H350125001)</td><td class=n>6</td><td class=n>0</td><td class=n>6</td>" in html
    # failing share by rule over time: physiological limits failed 3 of 8 + 5 lab rows that day (b1 alone: 8)
    assert "<polyline" in html and "lab_result.plausibility.physiological_limits" in html
    assert "37.50%" in html  # 3 quarantined ÷ 8 lab rows extracted on DAY1
    assert "could not be read or mapped" in html  # a mapping rule is explained too
    assert "99000.0" in html and "furlong" in html  # recent offending values per rule
    # the later stages' tables exist after the migrations: their counts show (zero here)
    assert re.search(r"<b>0</b>persons \(EMPI\)", html) and re.search(r"<b>0</b>shared results", html)
    # facilities with most defects: W350125101 first (3 distinct rows), then H350125001 (1)
    section = html.split("Facilities with most defects")[1]
    assert section.index("W350125101") < section.index("H350125001")
    assert re.search(r"W350125101\)</td><td class=n>3</td><td class=n>1</td>", section)
    # held batches and what to do
    held = html.split("<h2>Held batches</h2>")[1].split("<h2>")[0]
    assert "b2" in held and "60.0%" in held
    assert "countyhealth batches release b2 --reason" in held and "countyhealth batches revalidate b2 --load" in held


def test_report_is_self_contained_and_holds_no_id_numbers_or_phones(warehouse, tmp_path):
    html = report.write_report(warehouse, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert html.count("<svg") >= 3
    import xml.etree.ElementTree as ET

    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        ET.fromstring(svg)  # well-formed: a browser draws it as meant
    assert RAW_ID not in html and RAW_PHONE not in html
    assert privacy.mask_id(RAW_ID) in html and privacy.mask_phone(RAW_PHONE) in html  # shown, masked
    assert not re.search(r"(?<!\d)\d{17}[\dXx](?!\d)|(?<!\d)1[3-9]\d{9}(?!\d)", html)


def test_report_command_writes_the_file_and_explains_an_empty_warehouse(warehouse, tmp_path):
    url = warehouse.engine.url.render_as_string(hide_password=False)
    out = tmp_path / "cli" / "report.html"
    result = CliRunner().invoke(report.report_command, ["--url", url, "--out", str(out), "--days", "7"])
    assert result.exit_code == 0, result.output
    assert out.exists() and "last 7 days" in out.read_text(encoding="utf-8")
    empty = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    result = CliRunner().invoke(report.report_command, ["--url", empty, "--out", str(tmp_path / "x.html")])
    assert result.exit_code != 0 and "countyhealth warehouse migrate" in result.output


def test_report_of_a_quiet_warehouse_says_so(duckdb_url, tmp_path):
    wh = Warehouse(duckdb_url)
    wh.migrate()
    html = report.write_report(wh, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No batch was loaded or validated in this window." in html and "No batch is held." in html
    assert "Nothing was quarantined in this window." in html


def test_default_location_is_the_reports_dir(duckdb_url):
    from countyhealth import settings

    wh = Warehouse(duckdb_url)
    wh.migrate()
    assert report.write_report(wh) == settings.reports_dir() / "run-report.html"
