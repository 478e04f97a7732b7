"""Idempotent quarantine and findings: landing the same rows again (the watermarks lost, every stream read from the
start once more) leaves the quarantine and finding tables exactly as one landing did."""

from __future__ import annotations

import collections

import pytest
import sqlalchemy as sa

from countyhealth import pipeline
from countyhealth.simulate.county import CountyConfig, generate
from countyhealth.warehouse import Warehouse
from county_env import make_env

KEY = "source_id, dataset, source_record_id, rule_id, offending_value, column_name, category"


def _issues(wh) -> dict[str, collections.Counter]:
    with wh.engine.connect() as conn:
        return {t: collections.Counter(tuple(r) for r in conn.execute(sa.text(f"SELECT {KEY} FROM {t}")))
                for t in ("quarantine", "finding")}


@pytest.fixture(scope="module")
def small_county(tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "county"
    generate(out, CountyConfig(seed=7, residents=300, days=2, county_hospitals=1, townships=1,
                               villages_per_township=1))
    return out


@pytest.mark.slow
def test_relanding_the_same_rows_leaves_quarantine_and_findings_as_one_landing_did(tmp_path, small_county,
                                                                                    monkeypatch):
    env = make_env(tmp_path, small_county, monkeypatch)
    try:
        wh = Warehouse()
        pipeline.run(downstream=False)
        once = _issues(wh)
        assert sum(once["quarantine"].values()) > 0 and sum(once["finding"].values()) > 0
        with wh.engine.begin() as conn:  # as if the watermarks were lost: every row is extracted and landed again
            conn.execute(sa.text("DELETE FROM watermark"))
        again = pipeline.run(downstream=False)
        assert again.loaded  # new batches did land and load
        assert _issues(wh) == once
    finally:
        env.stop()


def test_a_relanded_issue_is_dropped_on_both_engines(warehouse_url):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    row = dict(dataset="lab_result", rule_id="lab_result.conformance.parse.value_numeric", source_id="his_x",
               category="conformance", column_name="value_numeric", offending_value="1e309", row_json="{}")
    with wh.engine.begin() as conn:
        for batch, record, n in [("b1", "R1", 0), ("b1", None, 1), ("b2", "R1", 5), ("b2", None, 6), ("b2", "R2", 7)]:
            conn.execute(sa.text("INSERT INTO quarantine (batch_id, dataset, row_number, rule_id, source_id, category, "
                                 "column_name, offending_value, row_json, source_record_id, quarantined_at) VALUES "
                                 "(:b, :dataset, :n, :rule_id, :source_id, :category, :column_name, :offending_value, "
                                 ":row_json, :r, now())"), dict(row, b=batch, r=record, n=n))
        pipeline._drop_relanded_issues(conn, "quarantine", "b2")
        left = sorted(tuple(r) for r in conn.execute(sa.text(
            "SELECT batch_id, coalesce(source_record_id, '-') FROM quarantine")))
    assert left == [("b1", "-"), ("b1", "R1"), ("b2", "R2")]
