"""`countyhealth sources check|new|list|fields` on a simulated county's real sources."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from countyhealth.connectors.commands import sources
from countyhealth.simulate.county import CountyConfig, generate

sys.path.insert(0, str(Path(__file__).parents[1]))
from county_env import make_env  # noqa: E402


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmd-county") / "county"
    generate(out, CountyConfig(seed=3, residents=800, days=1, county_hospitals=1, townships=1, villages_per_township=2))
    return out


def test_check_connects_counts_and_shows_masked_samples(tmp_path, template, monkeypatch):
    env = make_env(tmp_path, template, monkeypatch)
    try:
        result = CliRunner().invoke(sources, ["check", "public_health", "--rows", "5"])
        assert result.exit_code == 0, result.output
        out = result.output
        assert "config valid" in out and "health_records:" in out and "rows" in out
        assert "→ person" in out and "id_number=" in out
        for line in out.splitlines():  # no full ID number or mobile in what a clerk sees on screen
            for token in line.replace(",", " ").split():
                value = token.split("=", 1)[-1]
                assert not (len(value) == 18 and value[:17].isdigit()), line
                assert not (len(value) == 11 and value.isdigit() and value.startswith("1")), line
        his = CliRunner().invoke(sources, ["check", "his_w350125101"])
        assert his.exit_code == 0 and "lab_results:" in his.output, his.output
    finally:
        env.stop()


def test_a_cursor_the_rows_do_not_carry_fails_check_and_extraction(tmp_path, template, monkeypatch):
    from countyhealth import pipeline
    from countyhealth.connectors.base import ExtractError
    from countyhealth.warehouse import Warehouse

    env = make_env(tmp_path, template, monkeypatch)
    try:
        text = (env.sources / "public_health.yaml").read_text(encoding="utf-8")
        (env.sources / "ph_typo.yaml").write_text(text.replace("column: updated_at", "column: update_time"),
                                                  encoding="utf-8")
        result = CliRunner().invoke(sources, ["check", "ph_typo", "--rows", "2"])
        assert result.exit_code == 1
        assert "cursor column 'update_time' is not in the rows the source returns" in result.output
        wh = Warehouse()
        wh.migrate()
        with pytest.raises(ExtractError, match=r"streams.followups.cursor.column: 'update_time' is not in the rows"):
            pipeline.extract("ph_typo", "followups", wh=wh)
    finally:
        env.stop()


@pytest.mark.slow
def test_check_validate_runs_the_suites_on_a_sample_and_names_each_fix(tmp_path, template, monkeypatch):
    env = make_env(tmp_path, template, monkeypatch)
    try:
        # a new township centre's file written from memory: births without their format, sex codes without a map
        (env.sources / "his_new.yaml").write_text(
            "extends: _vendors/his_vendor_b.yaml\nfacility_code: W350125101\nconnection: {conn_id: his_w350125101}\n"
            "streams:\n  patients:\n    fields:\n      birth_date: csrq\n      sex_code: xb\n", encoding="utf-8")
        result = CliRunner().invoke(sources, ["check", "his_new", "--validate", "--sample", "50", "--rows", "1"])
        out = result.output
        assert result.exit_code == 1, out
        patients = int(re.search(r"patients: (\d+) rows", out).group(1))
        assert f"validated {patients} sample row(s) with the person suite: {patients} would be quarantined" in out
        assert f"person.conformance.parse.birth_date: {patients} row(s)" in out
        assert 'add a date format: `birth_date: {column: csrq, format: "%Y%m%d"}`' in out
        assert "person.conformance.sex_code_code" in out and "add a value map: `sex_code: {column: xb, map: {" in out
        assert "the codes of sex are 0, 1, 2, 9" in out
        good = CliRunner().invoke(sources, ["check", "his_w350125101", "--validate", "--sample", "50"])
        assert good.exit_code == 0, good.output
        assert re.search(r"validated \d+ sample row\(s\) with the lab_result suite: 0 would be quarantined", good.output)
    finally:
        env.stop()


def test_check_reports_an_unreachable_source_and_exits_non_zero(tmp_path, template, monkeypatch):
    env = make_env(tmp_path, template, monkeypatch)
    env.stop()  # the platform is down
    monkeypatch.setenv("AIRFLOW_CONN_PUBLIC_HEALTH", "http://k:s@127.0.0.1:9")  # nothing listens there
    result = CliRunner().invoke(sources, ["check", "public_health"])
    assert result.exit_code == 1 and "cannot reach the source" in result.output


def test_new_scaffolds_a_file_check_accepts(tmp_path, monkeypatch):
    monkeypatch.setenv("COUNTYHEALTH_SOURCES_DIR", str(tmp_path))
    result = CliRunner().invoke(sources, ["new", "lis_maternal", "--kind", "rest", "--dataset", "lab_result",
                                          "--facility-code", "H350125003"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "lis_maternal.yaml").read_text()
    assert "kind: rest" in text and "REQUIRED" in text and "report_at" in text
    again = CliRunner().invoke(sources, ["new", "lis_maternal", "--kind", "rest"])
    assert again.exit_code != 0 and "exists already" in again.output
    both = CliRunner().invoke(sources, ["new", "qianyue_api", "--kind", "rest", "--dataset", "contract", "--dataset",
                                        "person"])
    assert both.exit_code == 0 and "- dataset: person" in (tmp_path / "qianyue_api.yaml").read_text()
    bad = CliRunner().invoke(sources, ["new", "Bad-Name", "--kind", "sql"])
    assert bad.exit_code != 0
    (tmp_path / "lis_maternal.yaml").write_text(text.replace("SOURCE_COLUMN", "x"))
    check = CliRunner().invoke(sources, ["check", "lis_maternal", "--offline"])
    assert check.exit_code == 0 and "config valid" in check.output


def test_list_and_fields():
    listed = CliRunner().invoke(sources, ["list"])
    assert listed.exit_code == 0 and "his_w350125101" in listed.output and "→ contract, person" in listed.output
    fields = CliRunner().invoke(sources, ["fields", "lab_result"])
    assert "* report_number" in fields.output and "DE01.00.018.00" in fields.output
