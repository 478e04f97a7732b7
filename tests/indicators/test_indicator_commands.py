"""``countyhealth indicators list | show | export | refresh`` on a hand-built warehouse; a user's mistake is
one line naming the fix and exit status 2."""

from __future__ import annotations

import csv
import datetime as dt

import pytest
from click.testing import CliRunner

from countyhealth import indicators
from countyhealth.cli import main
from countyhealth.warehouse import Warehouse
from indicator_world import World

D, T = dt.date, dt.datetime


@pytest.fixture
def built(duckdb_url, monkeypatch):
    monkeypatch.setenv("COUNTYHEALTH_WAREHOUSE_URL", duckdb_url)
    wh = Warehouse(duckdb_url)
    w = World()
    a = w.person("PA", birth=D(1950, 1, 1), home="W1")
    w.visit(a, "W1", T(2026, 3, 2, 9))
    w.visit(a, "H1", T(2026, 3, 3, 9))
    w.visit(a, "C1", T(2026, 4, 3, 9))
    w.shared_result("lab", a, "H1", "HR-GLU", T(2026, 3, 2, 9), validity_days=30)
    w.shared_result("lab", a, "W1", "HR-GLU", T(2026, 3, 10, 9), validity_days=30)
    w.build(wh)
    wh.engine.dispose()
    return duckdb_url


def _one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_refresh_list_show_and_export(built, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["indicators", "refresh"])
    assert r.exit_code == 0 and "months 2026-03..2026-04" in r.output, r.output
    r = runner.invoke(main, ["indicators", "list"])
    assert r.exit_code == 0, r.output
    for name in indicators.INDICATORS:
        assert name in r.output
    assert "基层诊疗率" in r.output and "2026-03..2026-04" in r.output
    r = runner.invoke(main, ["indicators", "show", "primary_care_visit_share", "--month", "2026-03"])
    assert r.exit_code == 0, r.output
    county = next(line for line in r.output.splitlines() if line.startswith("county"))
    assert county.split()[-3:] == ["1", "2", "50.0%"]
    r = runner.invoke(main, ["indicators", "show", "primary_care_visit_share"])  # the latest month: April
    assert "2026-04" in r.output.splitlines()[0] and "100.0%" in r.output
    r = runner.invoke(main, ["indicators", "show", "recognition_avoidable_repeats", "--month", "2026-03",
                             "--facility", "W1"])
    assert r.exit_code == 0, r.output
    assert all(line.split()[1] == "W1" for line in r.output.splitlines()[3:]) and "5.00" in r.output
    out = tmp_path / "indicators.csv"
    r = runner.invoke(main, ["indicators", "export", "--format", "csv", "--out", str(out)])
    assert r.exit_code == 0, r.output
    with out.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    primary = [x for x in rows if x["indicator"] == "primary_care_visit_share" and x["scope"] == "county"]
    assert [(x["month_start"], x["numerator"], x["denominator"]) for x in primary] == [
        ("2026-03-01", "1", "2"), ("2026-04-01", "1", "1")]
    r = runner.invoke(main, ["indicators", "export", "--indicator", "fd_signing_coverage"])
    assert r.exit_code == 0 and r.output.splitlines()[0].startswith("indicator,month_start,scope")
    assert {line.split(",")[0] for line in r.output.splitlines()[1:]} == {"fd_signing_coverage"}


@pytest.mark.parametrize("args, needles", [
    (["show", "nosuch"], ["no indicator 'nosuch'", "indicators list"]),
    (["show", "htn_bp_control", "--month", "March"], ["YYYY-MM", "--month 2026-03"]),
    (["show", "primary_care_visit_share", "--month", "2020-01"], ["no value for 2020-01", "indicators list"]),
    (["show", "primary_care_visit_share", "--month", "2026-03", "--facility", "X9"], ["for X9", "W350125101"]),
    (["export", "--indicator", "nosuch"], ["no indicator 'nosuch'"]),
])
def test_a_users_mistake_is_one_line(built, args, needles):
    assert CliRunner().invoke(main, ["indicators", "refresh"]).exit_code == 0
    _one_line_error(CliRunner().invoke(main, ["indicators", *args]), *needles)


def test_before_any_refresh_the_fix_is_named(duckdb_url, monkeypatch):
    monkeypatch.setenv("COUNTYHEALTH_WAREHOUSE_URL", duckdb_url)
    _one_line_error(CliRunner().invoke(main, ["indicators", "list"]), "countyhealth warehouse migrate",
                    "countyhealth indicators refresh")
    assert CliRunner().invoke(main, ["warehouse", "migrate"]).exit_code == 0
    _one_line_error(CliRunner().invoke(main, ["indicators", "show", "htn_bp_control"]), "no rows yet",
                    "countyhealth indicators refresh")
