"""The DAG files import cleanly, without heavy libraries, and build the graph from sources/."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, env_extra: dict | None = None) -> str:
    env = dict(os.environ, AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True,
                          env=env, cwd=ROOT).stdout


@pytest.mark.airflow
def test_dagbag_imports_without_errors_and_without_heavy_imports():
    out = _run(f"""
        import sys, time, json
        import airflow.sdk  # Airflow's own import time is not ours
        from airflow.dag_processing.dagbag import DagBag
        t0 = time.perf_counter()
        bag = DagBag(dag_folder={str(ROOT / 'dags')!r})
        took = time.perf_counter() - t0
        heavy = [m for m in ("great_expectations", "splink", "pandas", "fastapi") if m in sys.modules]
        print(json.dumps({{"errors": {{k: v[:500] for k, v in bag.import_errors.items()}}, "dags": sorted(bag.dag_ids),
                          "seconds": took, "heavy": heavy,
                          "tasks": len(bag.dags["countyhealth_nightly"].tasks)}}))
    """)
    import json

    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert {"countyhealth_nightly", "countyhealth_maintenance", "countyhealth_fhir_export"} <= set(result["dags"])
    # how fast it parses is measured in bench/bench_dag_parse.py, never asserted here (a busy machine is slow)
    assert result["heavy"] == [], f"heavy libraries imported at parse time: {result['heavy']}"
    # 26 sources: 23 HIS × 4 streams, public health 2, contracts 1, registry 1; × (extract, validate) + 6 stages
    assert result["tasks"] == (23 * 4 + 2 + 1 + 1) * 2 + 6


@pytest.mark.airflow
def test_graph_shape_member_groups_lanes_and_assets(tmp_path):
    from countyhealth.orchestration import SHARED_LAB_ASSET, build_nightly_dag

    dag = build_nightly_dag()
    ids = set(dag.task_ids)
    assert "member_his_w350125101.extract_lab_results" in ids and "member_public_health.validate_followups" in ids
    # a member's streams run one after another: patients → visits → ...
    ex_visits = dag.get_task("member_his_w350125101.extract_visits")
    assert "member_his_w350125101.validate_patients" in ex_visits.upstream_task_ids
    assert ex_visits.trigger_rule == "all_done"
    # vendor A hospitals allow two concurrent extracts: two lanes
    a_lab = dag.get_task("member_his_h350125001.extract_lab_results")
    assert a_lab.upstream_task_ids == {"member_his_h350125001.validate_patients"}
    load = dag.get_task("load")
    assert load.trigger_rule == "all_done" and len(load.upstream_task_ids) == 23 * 4 + 4
    assert {o.uri for o in dag.get_task("shared_results").outlets} >= {SHARED_LAB_ASSET}
    assert dag.timetable.__class__.__name__ == "CronDataIntervalTimetable"
    assert dag.max_active_runs == 1


def test_plugins_folder_scan_skips_the_package():
    # Airflow imports every .py under plugins/ as a top-level module; ours would shadow e.g. `typing`
    assert (ROOT / "plugins" / ".airflowignore").read_text().splitlines()[-1].strip() == "countyhealth/"


@pytest.mark.airflow
def test_a_source_can_take_its_extract_slots_from_a_shared_pool(tmp_path):
    from countyhealth.orchestration import build_nightly_dag

    text = (ROOT / "sources" / "public_health.yaml").read_text(encoding="utf-8")
    (tmp_path / "public_health.yaml").write_text(text + "\npool: ph_gateway\n", encoding="utf-8")
    (tmp_path / "contracts.yaml").write_text((ROOT / "sources" / "contracts.yaml").read_text(encoding="utf-8"),
                                             encoding="utf-8")
    dag = build_nightly_dag(tmp_path)
    assert dag.get_task("member_public_health.extract_health_records").pool == "ph_gateway"
    assert dag.get_task("member_public_health.validate_health_records").pool != "ph_gateway"
    assert dag.get_task("member_contracts.extract_contracts").pool == "default_pool"
