"""``countyhealth status`` on a real run: a held batch, a member that is down, the others loaded."""

from __future__ import annotations

import json
import sqlite3

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from countyhealth import pipeline
from countyhealth.cli import main
from countyhealth.simulate.county import CountyConfig, generate
from countyhealth.warehouse import Warehouse
from county_env import make_env


@pytest.fixture(scope="module")
def template_county(tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "county"
    generate(out, CountyConfig(seed=5, residents=1500, days=3, county_hospitals=1, townships=2,
                               villages_per_township=2))
    return out


@pytest.mark.slow
def test_status_shows_each_member_held_batches_and_failures_with_their_fix(tmp_path, template_county, monkeypatch):
    env = make_env(tmp_path, template_county, monkeypatch)
    try:
        # a township's LIS writes garbage report times: its lab batch is held
        db = sqlite3.connect(env.county / "his" / "W350125102.sqlite")
        db.execute("UPDATE jy_jg SET bgsj = 'N/A' WHERE rowid % 3 != 0")
        db.commit()
        db.close()
        with (env.sources / "his_w350125102.yaml").open("a", encoding="utf-8") as fh:
            fh.write("validation: {min_rows: 10}\n")  # a small test county: hold batches of 10 rows or more
        # the county hospital's 前置库 is unreachable tonight
        monkeypatch.setenv("AIRFLOW_CONN_HIS_H350125001", f"sqlite:///{tmp_path / 'gone' / 'his.sqlite'}")
        summary = pipeline.run(downstream=False)
        assert any(k.startswith("his_h350125001/") for k in summary.failed), summary.failed
        assert summary.held, summary.failed

        result = CliRunner().invoke(main, ["status", "--json"])
        assert result.exit_code == 1, result.output  # something needs attention
        streams = {(s["source_id"], s["stream"]): s for s in json.loads(result.output)["streams"]}
        wh = Warehouse()
        with wh.engine.connect() as conn:
            written = dict(conn.execute(sa.text(
                "SELECT source_id || '/' || stream, sum(rows_written) FROM batch_audit WHERE status = 'loaded' "
                "GROUP BY 1")).fetchall())
        ok = streams[("his_w350125101", "lab_results")]
        assert ok["state"] == "ok" and ok["last_success"] and ok["watermark"] == wh.watermark("his_w350125101",
                                                                                             "lab_results")
        assert ok["last_night"]["written"] == written["his_w350125101/lab_results"] > 0
        assert ok["description"] and ok["facility_code"] == "W350125101"

        held = streams[("his_w350125102", "lab_results")]
        assert held["state"] == "HELD" and held["watermark"] is None
        assert [h["batch_id"] for h in held["held"]] == [h.batch_id for h in summary.held
                                                        if h.source_id == "his_w350125102"]
        assert "report_at" in held["held"][0]["reason"]
        assert f"countyhealth batches release {held['held'][0]['batch_id']}" in held["held"][0]["fix"]

        down = [s for (sid, _), s in streams.items() if sid == "his_h350125001"]
        assert down and all(s["state"] == "FAILED" for s in down)
        assert all("countyhealth sources check his_h350125001" in s["failures"][0]["fix"] for s in down)

        one = CliRunner().invoke(main, ["status", "his_w350125101"])
        assert one.exit_code == 0, one.output
        assert "his_w350125101/lab_results" in one.output and "his_h350125001" not in one.output
        text = CliRunner().invoke(main, ["status"]).output
        assert "HELD " in text and "FAILED " in text and "fix: " in text
        bogus = CliRunner().invoke(main, ["status", "nosuch"])
        assert bogus.exit_code == 2 and "countyhealth sources list" in bogus.output
    finally:
        env.stop()
