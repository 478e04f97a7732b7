"""The Airflow DAGs, built from ``sources/`` at parse time. The files in ``dags/`` only call these builders.

Nightly (``countyhealth_nightly``), at 02:00 Asia/Shanghai over the previous day's data interval:

- one task group per member source (``member_<source_id>``): for each stream ``extract_<stream>`` →
  ``validate_<stream>``. A member's streams run one after another (``max_active_extracts`` lanes at most),
  so a small township server is never hit by all its streams at once; members run side by side. One
  member's outage fails only its own tasks: every later stage runs with ``all_done`` on what succeeded,
  and the failed stream catches up from its watermark next night.
- the night has a cut-off per member (``extract_budget_minutes`` in its YAML, default 40): its extracts
  must finish that long after the night started or are stopped and recorded (no Airflow retries on an
  extract; the connector retries inside the budget), so a down or hanging member delays load and the
  shared stages by at most its budget. Groups and tasks are shown with the member's name and code;
  ``priority_weight`` by queue position gives every member its first stream before anyone's second.
- ``migrate_warehouse`` first (pending migrations; extracts read their watermarks from the warehouse);
- ``load`` (the single warehouse writer: rows, quarantine, audit and watermark per batch in one
  transaction) → ``identity`` (EMPI) → ``shared_results`` (互认; outlets: the shared-result Assets other
  DAGs can schedule on) → ``indicators`` (the monitoring indicators, docs/indicators.md) → ``report`` →
  ``check_members``, which ends the run red, naming each failed or held member, after everything that could be
  done was done.

Why task groups rather than pools for member isolation: a pool passed through ``expand_kwargs`` is ignored
(apache/airflow#33657) and a task naming a pool that doesn't exist never runs; task groups built from the
YAML need nothing created in the metadata DB. The warehouse's single writer is kept by the DAG's shape,
``max_active_runs=1`` and :func:`countyhealth.warehouse.retry_on_lock` (another DAG writing waits).

Heavy libraries (Great Expectations, Splink, pandas) are imported inside the tasks, never here.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

log = logging.getLogger(__name__)

TIMEZONE = "Asia/Shanghai"
NIGHTLY_DAG_ID = "countyhealth_nightly"
MAINTENANCE_DAG_ID = "countyhealth_maintenance"
SHARED_LAB_ASSET = "countyhealth://warehouse/shared_lab_result"
SHARED_EXAM_ASSET = "countyhealth://warehouse/shared_exam_report"
INDICATOR_ASSET = "countyhealth://warehouse/indicator_value"


def landing_asset_uri(source_id: str, stream: str) -> str:
    return f"countyhealth://landing/{source_id}/{stream}"


def warehouse_asset_uri(dataset: str) -> str:
    return f"countyhealth://warehouse/{dataset}"


def _local(value) -> dt.datetime | None:
    """An aware Airflow datetime → naive Asia/Shanghai time, as member systems write their clocks."""
    if value is None:
        return None
    import pendulum

    return pendulum.instance(value).in_timezone(TIMEZONE).naive()


def on_task_failure(context) -> None:
    """A plain summary for the log and the run report: which member, which stage, why."""
    from countyhealth import failures, privacy

    ti = context.get("task_instance") or context.get("ti")
    task_id = getattr(ti, "task_id", "?")
    exc = context.get("exception")
    reason = f"{type(exc).__name__}: {privacy.scrub(str(exc))}" if exc else "failed"
    group, _, stage = task_id.partition(".")
    source_id = group.removeprefix("member_") if group.startswith("member_") else None
    stream = stage.split("_", 1)[1] if source_id and "_" in stage else None
    stage_name = stage.split("_", 1)[0] if source_id else task_id
    dag_run = context.get("dag_run")
    run_id = getattr(dag_run, "run_id", None)
    log.error("countyhealth: %s failed at %s%s: %s", source_id or "the pipeline", stage_name,
              f" ({stream})" if stream else "", reason)
    failures.record(stage=stage_name, reason=reason, run_id=run_id, dag_id=getattr(ti, "dag_id", None),
                    task_id=task_id, source_id=source_id, stream=stream)


# How long after its cut-off a night still counts as live: the nightly window itself (a run that starts late
# because the scheduler was down still has its cut-off); anything older is an operator's rerun.
REPLAY_MARGIN = dt.timedelta(hours=6)


class MissedCutOff(TimeoutError):
    """A member's extract ran past its budget (``extract_budget_minutes``): stopped, recorded, caught up later."""


def _within_budget(fn, *, night_started: dt.datetime | None, budget_minutes: int, what: str):
    """Run ``fn()`` but stop it when the member's budget, counted from the night's start, is spent.

    Airflow's ``execution_timeout`` is fixed per task; a member's streams run one after another, so each
    extract gets only what is left of the member's budget (an alarm in the task process, as Airflow's own
    timeout does). A stream that starts after the cut-off fails at once.

    The budget guards the live night only. A run whose start is far behind (``airflow dags test`` of a past
    night, a task cleared and rerun the next morning) or ahead of the clock is a replay: its budget counts
    from now, the task's own start, so a rerun never fails at once for a night that is long over."""
    import signal

    now = dt.datetime.now(dt.timezone.utc)
    started = night_started or now
    if started > now or now - started > dt.timedelta(minutes=budget_minutes) + REPLAY_MARGIN:
        log.info("countyhealth: %s is a replay of a past night; its %d-min budget counts from now", what,
                 budget_minutes)
        started = now
    deadline = started + dt.timedelta(minutes=budget_minutes)
    left = (deadline - now).total_seconds()
    message = (f"{what} missed the night's cut-off ({budget_minutes} min after the night started): it catches up "
               "from its watermark next night, or now with `countyhealth pipeline extract` + `pipeline load`")
    if left <= 0:
        raise MissedCutOff(message)
    import threading

    if threading.current_thread() is not threading.main_thread():
        return fn()  # signals reach only the main thread; the task's execution_timeout still bounds it

    def _alarm(signum, frame):
        raise MissedCutOff(message)

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, left)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def quiet_great_expectations() -> None:
    """GX logs each data source, asset and suite it registers at INFO (~200 lines a validate task); keep its
    warnings and errors only."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def member_selected(params: dict, source_id: str) -> bool:
    """Whether a run's ``members`` param (empty: every member) includes this source."""
    members = params.get("members") or []
    return not members or source_id in members


def _alert():
    """The webhook notifier (企业微信/钉钉 robot, ``COUNTYHEALTH_ALERT_WEBHOOK``); silent when none is set."""
    from countyhealth.notify import CountyAlertNotifier

    return CountyAlertNotifier()


def _default_args() -> dict:
    return {
        "owner": "county-it",
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(hours=1),
        "execution_timeout": dt.timedelta(hours=2),
        "on_failure_callback": [on_task_failure, _alert()],
    }


def build_nightly_dag(sources_dir: Path | None = None, *, dag_id: str = NIGHTLY_DAG_ID,
                      schedule_cron: str = "0 2 * * *"):
    import pendulum
    from airflow.sdk import (DAG, Asset, CronDataIntervalTimetable, Param, TaskGroup, TriggerRule,
                             get_current_context, task)

    from countyhealth import model
    from countyhealth.connectors.config import load_sources

    sources = load_sources(sources_dir)

    @task(retries=2)
    def migrate_warehouse() -> list[int]:
        """Apply pending warehouse migrations before anything reads a watermark (a release may add some)."""
        return _wh().migrate()

    # no Airflow retries: the connector retries inside the call, and a retry later would run past the cut-off
    @task(retries=0)
    def extract(source_id: str, stream: str) -> str:
        from countyhealth import pipeline

        ctx = get_current_context()
        if not member_selected(ctx.get("params") or {}, source_id):
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"this run is for member(s) {ctx['params'].get('members')}")
        dag_run = ctx.get("dag_run")
        manifest = _within_budget(
            lambda: pipeline.extract(source_id, stream, until=_local(ctx.get("data_interval_end"))),
            night_started=getattr(dag_run, "start_date", None),
            budget_minutes=sources[source_id].extract_budget_minutes, what=f"{source_id}/{stream}")
        return manifest.batch_id

    @task(retries=1)
    def validate(source_id: str, stream: str, batch_id: str) -> dict:
        from countyhealth import landing, pipeline

        quiet_great_expectations()

        outcome = pipeline.validate(landing.batch_dir(source_id, stream, batch_id))
        return {ds: {"rows": r.rows_in, "quarantined": r.rows_quarantined, "held": r.held}
                for ds, r in outcome.datasets.items()}

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=2,
          outlets=[Asset(warehouse_asset_uri(d)) for d in model.DATASET_NAMES])
    def load() -> dict:
        from countyhealth import pipeline

        loads, failures = pipeline.load_pending()
        held = [f"{s.source_id}/{s.stream}/{s.batch_id}" for s in loads if s.status == "held"]
        for s in loads:
            log.info("%s/%s batch %s: %s %s", s.source_id, s.stream, s.batch_id, s.status, s.datasets)
        if held:
            log.warning("held batches (circuit breaker; see `countyhealth batches list --held`): %s", ", ".join(held))
        return {"loaded": sum(s.status == "loaded" for s in loads), "held": held, "failed": failures}

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def identity() -> dict:
        from countyhealth import identity as empi

        summary = empi.run(_wh())
        return _plain(summary)

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[Asset(SHARED_LAB_ASSET), Asset(SHARED_EXAM_ASSET)])
    def shared_results() -> dict:
        from countyhealth import results

        return _plain(results.refresh(_wh()))

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[Asset(INDICATOR_ASSET)])
    def indicators() -> dict:
        """The county-community monitoring indicators (docs/indicators.md), from the night's warehouse."""
        from countyhealth import indicators as monitoring

        return _plain(monitoring.refresh(_wh()))

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=1)
    def report() -> str:
        """GX Data Docs of the batches this run validated, and the HTML run report."""
        from countyhealth import pipeline

        ctx = get_current_context()
        dag_run = ctx.get("dag_run")
        started = getattr(dag_run, "start_date", None) or dt.datetime.now(dt.timezone.utc)
        started = started.astimezone(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=1)
        return str(pipeline.publish_run_reports(_wh(), started=started, run_name=getattr(dag_run, "run_id", None)))

    # its failure lists the night's failed members and held batches: that goes to the robot, not the log twice
    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0, on_failure_callback=[_alert()])
    def check_members(load_result: dict | None = None) -> None:
        """End the run red when a member failed or a batch was held, after all other work is done."""
        from countyhealth import failures as failure_records

        ctx = get_current_context()
        run_id = getattr(ctx.get("dag_run"), "run_id", None)
        failures = [f for f in failure_records.read(run_id=run_id) if f.get("stage") != "check"]
        held = (load_result or {}).get("held", [])
        problems = [f"{f.get('source_id') or 'pipeline'} {f.get('stage')} {f.get('stream') or ''}: {f.get('reason')}"
                    for f in failures] + [f"held (circuit breaker): {h}" for h in held]
        problems += [f"load {k}: {v}" for k, v in (load_result or {}).get("failed", {}).items()]
        if problems:
            raise RuntimeError("this run finished what it could, but:\n  " + "\n  ".join(problems))

    with DAG(
        dag_id=dag_id,
        schedule=CronDataIntervalTimetable(schedule_cron, timezone=TIMEZONE),
        start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(),
        tags=["countyhealth"],
        doc_md=__doc__,
        # trigger with {"members": ["his_w350125101"]} to re-run one member; a date range is a backfill
        params={"members": Param([], type="array", items={"type": "string", "enum": sorted(sources)},
                                 title="members to run (empty: all)",
                                 description="source ids; the other members' extracts are skipped")},
    ) as dag:
        validations = []
        migrated = migrate_warehouse()
        max_streams = max((sum(1 for s in src.streams.values() if s.enabled) for src in sources.values()), default=1)
        for source_id, source in sources.items():
            streams = [(n, s) for n, s in source.streams.items() if s.enabled]
            if not streams:
                continue
            # the UI shows the member's name and code (永泰县樟城镇卫生院 W350125101), not a truncated id
            member = f"{(source.description or source_id).removesuffix(' HIS')} {source.facility_code or ''}".strip()
            budget = dt.timedelta(minutes=source.extract_budget_minutes)
            with TaskGroup(group_id=f"member_{source_id}", group_display_name=member,
                           tooltip=f"{source.description or source_id} — sources/{source_id}.yaml"):
                lanes: list[list] = [[] for _ in range(source.max_active_extracts)]
                for i, (name, _) in enumerate(streams):
                    pool = {"pool": source.pool} if source.pool else {}  # a shared gateway, if declared
                    # priority by position in the member's queue, the same for every member: each member's
                    # first stream is scheduled before any member's second, so no member starves
                    weight = {"priority_weight": max_streams - i // len(lanes), "weight_rule": "absolute"}
                    ex = extract.override(task_id=f"extract_{name}", trigger_rule=TriggerRule.ALL_DONE, **pool,
                                          task_display_name=f"抽取 extract {name} · {source.facility_code or source_id}",
                                          execution_timeout=budget, **weight,
                                          outlets=[Asset(landing_asset_uri(source_id, name))])(source_id, name)
                    va = validate.override(task_id=f"validate_{name}", **weight,
                                           task_display_name=f"校验 validate {name} · "
                                                             f"{source.facility_code or source_id}")(source_id, name, ex)
                    lane = lanes[i % len(lanes)]
                    if lane:
                        lane[-1] >> ex  # the member's next stream waits for this one, whatever its outcome
                    else:
                        migrated >> ex
                    lane.append(va)
                    validations.append(va)
        loaded = load()
        validations >> loaded
        done = check_members(loaded)
        loaded >> identity() >> shared_results() >> indicators() >> report() >> done
    return dag


def build_maintenance_dag(*, dag_id: str = MAINTENANCE_DAG_ID, keep_days: int | None = None):
    """Weekly upkeep: apply review-queue decisions, expire old landing batches, VACUUM/ANALYZE."""
    import pendulum
    from airflow.sdk import DAG, CronTriggerTimetable, task

    @task
    def apply_review_decisions() -> dict:
        from countyhealth import identity as empi

        return _plain(empi.run(_wh()))

    @task
    def expire_landing() -> dict:
        from countyhealth import maintenance

        return _plain(maintenance.expire_landing(_wh(), keep_days=keep_days))

    @task
    def vacuum_analyze() -> str:
        from countyhealth import maintenance

        return maintenance.vacuum_analyze(_wh())

    with DAG(
        dag_id=dag_id,
        schedule=CronTriggerTimetable("30 4 * * 0", timezone=TIMEZONE),  # Sundays 04:30, after the nightly load
        start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(),
        tags=["countyhealth"],
        doc_md=build_maintenance_dag.__doc__,
    ) as dag:
        apply_review_decisions() >> expire_landing() >> vacuum_analyze()
    return dag


def build_fhir_export_dag(*, dag_id: str = "countyhealth_fhir_export"):
    """Runs when the nightly DAG refreshes the shared results (an Asset schedule) and writes the FHIR R4
    bundles of the day's results — an example of a downstream consumer."""
    import pendulum
    from airflow.sdk import DAG, Asset, get_current_context, task

    @task
    def export_day() -> str:
        from countyhealth import settings
        from countyhealth.results import fhir

        ctx = get_current_context()
        run_after = ctx.get("dag_run").run_after if ctx.get("dag_run") is not None else None
        day = (_local(run_after) or dt.datetime.now()).date() - dt.timedelta(days=1)
        out = settings.reports_dir() / "fhir" / day.isoformat()
        written = fhir.export_day(_wh(), day, out)
        return f"{written} bundle(s) in {out}"

    with DAG(
        dag_id=dag_id,
        schedule=[Asset(SHARED_LAB_ASSET)],
        start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(),
        tags=["countyhealth", "fhir"],
        doc_md=build_fhir_export_dag.__doc__,
    ) as dag:
        export_day()
    return dag


def _wh():
    from countyhealth.warehouse import Warehouse

    return Warehouse()


def _plain(obj) -> dict:
    """A summary dataclass as JSON-safe values for XCom."""
    import dataclasses

    if obj is None:
        return {}
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return {k: (v if isinstance(v, (int, float, str, bool, type(None), list, dict)) else str(v)) for k, v in obj.items()}
