"""Upkeep the maintenance DAG runs: expire old landing batches, VACUUM/ANALYZE the warehouse.

Landing keeps raw batches so any of them can be replayed; after ``keep_days``
(``COUNTYHEALTH_LANDING_KEEP_DAYS``, default 90) a batch that has loaded (or been released) is removed.
Held batches and batches not yet loaded are never expired: they still carry data the warehouse lacks.
File sources' archived originals are not touched (they are the members' own exports: kept).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from dataclasses import dataclass

import sqlalchemy as sa

from countyhealth import landing

log = logging.getLogger(__name__)


@dataclass
class ExpirySummary:
    examined: int = 0
    expired: int = 0
    kept_unloaded: int = 0
    freed_bytes: int = 0


def _size(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def expire_landing(wh, *, keep_days: int | None = None, today: dt.date | None = None) -> ExpirySummary:
    keep_days = keep_days if keep_days is not None else int(os.environ.get("COUNTYHEALTH_LANDING_KEEP_DAYS", "90"))
    cutoff = dt.datetime.combine(today or dt.date.today(), dt.time()) - dt.timedelta(days=keep_days)
    with wh.engine.connect() as conn:
        status: dict[str, set] = {}
        for batch_id, st in conn.execute(sa.text("SELECT batch_id, status FROM batch_audit")):
            status.setdefault(batch_id, set()).add(st)
    summary = ExpirySummary()
    for path in landing.list_batches():
        summary.examined += 1
        m = landing.read_manifest(path)
        ended = dt.datetime.fromisoformat(m.ended_at).replace(tzinfo=None)
        if ended >= cutoff:
            continue
        st = status.get(m.batch_id, set())
        if not st or not st <= {"loaded", "released"}:
            summary.kept_unloaded += 1
            continue
        summary.freed_bytes += _size(path)
        shutil.rmtree(path)
        summary.expired += 1
    log.info("landing: expired %d of %d batches older than %d days (%d MB freed); kept %d not loaded",
             summary.expired, summary.examined, keep_days, summary.freed_bytes // 2**20, summary.kept_unloaded)
    return summary


def vacuum_analyze(wh) -> str:
    """Reclaim space and refresh planner statistics (PostgreSQL VACUUM ANALYZE; DuckDB CHECKPOINT + ANALYZE)."""
    if wh.dialect == "postgresql":
        with wh.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
        return "VACUUM (ANALYZE)"
    with wh.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    with wh.engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
    return "ANALYZE; CHECKPOINT"
