"""The nightly DAG run by Airflow itself on a small simulated county.

- `airflow dags test` (in-process task execution, SQLite metadata) for one data interval;
- the real scheduler (API server, scheduler and DAG processor started here, stopped by PID), a run
  triggered through the REST API with a JWT from /auth/token, a backfill over the next days, and a cleared
  run re-executed — the warehouse must hold the expected rows and be unchanged by the rerun.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from countyhealth.simulate.county import CountyConfig, generate
from countyhealth.warehouse import Warehouse

sys.path.insert(0, str(Path(__file__).parent))
from airflow_harness import ROOT, AirflowUnderTest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))
from county_env import make_env  # noqa: E402

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    out = tmp_path_factory.mktemp("af-county") / "county"
    generate(out, CountyConfig(seed=5, residents=1200, days=3, county_hospitals=1, townships=2,
                               villages_per_township=2))
    return out


def counts(wh) -> dict:
    with wh.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("person", "lab_result", "encounter", "chronic_followup", "contract", "person_link",
                          "shared_lab_result", "quarantine", "batch_audit")}


def test_dag_test_runs_the_nightly_pipeline(tmp_path, template, monkeypatch):
    env = make_env(tmp_path, template, monkeypatch)
    try:
        environ = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
                       AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=environ, check=True, capture_output=True)
        proc = subprocess.run([airflow, "dags", "test", "countyhealth_nightly", "2026-03-04T02:00:00+08:00"],
                              env=environ, capture_output=True, text=True, timeout=1500)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        wh = Warehouse()
        c = counts(wh)
        truth = env.expected_counts()["rows"]
        assert c["lab_result"] > 0 and c["person_link"] == c["person"]
        assert c["chronic_followup"] + sum(1 for _ in []) <= truth["public_health"]["followup"]
        assert c["shared_lab_result"] > 0
        with wh.engine.connect() as conn:
            bad = conn.execute(sa.text("SELECT count(*) FROM batch_audit WHERE rows_extracted <> rows_loaded + "
                                       "rows_quarantined + rows_duplicate")).scalar()
        assert bad == 0
        assert (env.data / "reports" / "run-report.html").exists()
    finally:
        env.stop()


def test_real_scheduler_rest_trigger_backfill_and_idempotent_clear(tmp_path, template, monkeypatch):
    env = make_env(tmp_path, template, monkeypatch)
    af = AirflowUnderTest(tmp_path / "airflow", ROOT / "dags", extra_env=env.env)
    try:
        af.start()
        dag = af.wait_for_dag("countyhealth_nightly")
        assert dag["dag_id"] == "countyhealth_nightly"
        af.api("PATCH", "/dags/countyhealth_nightly", json={"is_paused": False})
        # the night of 2026-03-01 (interval [03-01 02:00, 03-02 02:00) Shanghai)
        run_id = af.trigger("countyhealth_nightly", logical_date="2026-03-01T18:00:00Z")
        run = af.wait_for_run("countyhealth_nightly", run_id, timeout=1500)
        states = af.task_states("countyhealth_nightly", run_id)
        assert run["state"] == "success", {k: v for k, v in states.items() if v != "success"}
        wh = Warehouse()
        first = counts(wh)
        assert first["lab_result"] > 0 and first["shared_lab_result"] > 0 and first["person_link"] == first["person"]
        # backfill the following night through the REST API (as `airflow backfill create` does)
        bf = af.api("POST", "/backfills", json={"dag_id": "countyhealth_nightly", "from_date": "2026-03-02T18:00:00Z",
                                                "to_date": "2026-03-02T18:00:00Z", "max_active_runs": 1,
                                                "reprocess_behavior": "failed"})
        runs = af.wait_for_backfill("countyhealth_nightly", bf["id"], expected=1, timeout=2400)
        assert all(r["state"] == "success" for r in runs), runs
        after = counts(wh)
        assert after["lab_result"] >= first["lab_result"]
        checksums = {d: wh.checksum(d) for d in ("person", "lab_result", "contract")}
        # clearing a finished run and running it again leaves the warehouse as it was
        af.api("POST", "/dags/countyhealth_nightly/clearTaskInstances",
               json={"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True})
        rerun = af.wait_for_run("countyhealth_nightly", run_id, timeout=1500, after_clear=True)
        assert rerun["state"] == "success"
        assert {d: wh.checksum(d) for d in checksums} == checksums
    finally:
        af.stop()
        env.stop()
