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
    # 26 sources: 23 HIS × 4 streams, public health 2, contracts 1, registry 1; × (extract, validate) + 7 stages
    assert result["tasks"] == (23 * 4 + 2 + 1 + 1) * 2 + 7


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
    # the monitoring indicators read the shared results: they run after them, before the run report
    assert dag.get_task("indicators").upstream_task_ids == {"shared_results"}
    assert dag.get_task("report").upstream_task_ids == {"indicators"}
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


@pytest.mark.airflow
def test_members_are_named_get_a_cut_off_and_take_turns(tmp_path):
    import datetime as dt

    from countyhealth.orchestration import build_nightly_dag

    text = (ROOT / "sources" / "his_w350125101.yaml").read_text(encoding="utf-8")
    (tmp_path / "his_w350125101.yaml").write_text(text + "\nextract_budget_minutes: 15\n", encoding="utf-8")
    (tmp_path / "public_health.yaml").write_text((ROOT / "sources" / "public_health.yaml").read_text(encoding="utf-8"),
                                                 encoding="utf-8")
    (tmp_path / "_vendors").mkdir()
    for vendor in (ROOT / "sources" / "_vendors").glob("*.yaml"):
        (tmp_path / "_vendors" / vendor.name).write_text(vendor.read_text(encoding="utf-8"), encoding="utf-8")
    dag = build_nightly_dag(tmp_path)
    group = dag.task_group_dict["member_his_w350125101"]
    assert group.label == "永泰县樟城镇卫生院 W350125101"
    ex = dag.get_task("member_his_w350125101.extract_lab_results")
    assert ex.task_display_name == "抽取 extract lab_results · W350125101"
    assert "W350125101" in dag.get_task("member_his_w350125101.validate_lab_results").task_display_name
    # the cut-off: the member's budget bounds each extract, and Airflow does not retry past it
    assert ex.execution_timeout == dt.timedelta(minutes=15) and ex.retries == 0
    assert dag.get_task("member_public_health.extract_followups").execution_timeout == dt.timedelta(minutes=40)
    # every member's first stream outranks any member's second
    first = [dag.get_task(f"member_{m}.extract_{s}") for m, s in (("his_w350125101", "patients"),
                                                                   ("public_health", "health_records"))]
    later = dag.get_task("member_his_w350125101.extract_visits")
    assert {t.weight_rule for t in first + [later]} == {"absolute"}
    assert min(t.priority_weight for t in first) > later.priority_weight


def test_a_hanging_extract_is_stopped_at_the_members_cut_off():
    import datetime as dt
    import time

    from countyhealth.orchestration import MissedCutOff, _within_budget

    # a night that started 59.5 s ago with a 1-minute budget: half a second is left
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=59.5)
    ended = []

    def hang():
        time.sleep(30)
        ended.append(1)

    with pytest.raises(MissedCutOff, match="missed the night's cut-off"):
        _within_budget(hang, night_started=started, budget_minutes=1, what="his_x/lab_results")
    assert ended == []  # stopped before the hang ended (no timed assertion: a busy machine is slow)
    # a stream starting after the cut-off fails at once, without touching the source
    calls = []
    with pytest.raises(MissedCutOff):
        _within_budget(lambda: calls.append(1), night_started=started - dt.timedelta(minutes=5), budget_minutes=1,
                       what="his_x/visits")
    assert calls == []
    assert _within_budget(lambda: "batch", night_started=None, budget_minutes=1, what="x") == "batch"


def test_a_replayed_night_gets_its_budget_from_now_not_from_the_past_night():
    import datetime as dt

    from countyhealth.orchestration import _within_budget

    now = dt.datetime.now(dt.timezone.utc)
    # `airflow dags test` of a night months ago, or a clear-and-rerun the next day: it runs
    assert _within_budget(lambda: "batch", night_started=now - dt.timedelta(days=90), budget_minutes=40,
                          what="his_x/lab_results") == "batch"
    assert _within_budget(lambda: "batch", night_started=now - dt.timedelta(hours=20), budget_minutes=40,
                          what="his_x/lab_results") == "batch"
    # a night dated ahead of the clock (a skewed logical date) is not "already over" either
    assert _within_budget(lambda: "batch", night_started=now + dt.timedelta(hours=3), budget_minutes=40,
                          what="his_x/lab_results") == "batch"


@pytest.mark.airflow
def test_a_run_can_be_limited_to_one_member():
    from countyhealth.orchestration import build_nightly_dag, member_selected

    dag = build_nightly_dag()
    param = dag.params.get_param("members")
    assert param.value == [] and "his_w350125101" in param.schema["items"]["enum"]
    assert member_selected({"members": []}, "his_w350125101") and member_selected({}, "public_health")
    assert member_selected({"members": ["his_w350125101"]}, "his_w350125101")
    assert not member_selected({"members": ["his_w350125101"]}, "public_health")
