"""Per-day reconciliation of a SQL stream against the warehouse: the rows a cursor cannot see, found and landed.

A watermark with an overlap misses a row whose update time reaches the source more than the overlap behind
the watermark: a member's clock hours or days behind, a correction written with the original time, a 前置库
sync job that re-sends yesterday's rows after a failure. ``reconcile: {days: N}`` on a SQL stream compares, each
night before the stream's extraction, the source's keys and cursor times of the last N days before the
watermark with what the warehouse holds for the source — loaded (the same or a later version) or quarantined.
Each day with a row the warehouse lacks is read again, whole, and landed as a batch of its own; it loads like
any other (its rows already there are counted as unchanged; its cursor values lie behind the watermark, so the
watermark does not move back). Rows deleted at the source are not this check's concern.

Cost, per stream and night: one narrow read at the source of the key and cursor columns of N days of rows
(an index on the cursor column keeps it a range scan) and one read of the keys the warehouse holds for the
source updated since then, compared in Arrow; plus, only when something was missed, the day(s) read again.
A township HIS with ~1,000 rows a day and N = 7 compares 7,000 keys: well under a second.

Not compared while the stream has a batch landed but not loaded (held, or awaiting its load): its rows are not
in the warehouse yet, and reading them again would only duplicate them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from countyhealth import landing, privacy
from countyhealth.connectors.base import CursorTracker, ExtractWindow, iso_time
from countyhealth.connectors.mapping import map_dataset
from countyhealth.connectors.typing import DatasetMap

log = logging.getLogger(__name__)


def _key_columns(stream, dmap: DatasetMap) -> list[str]:
    spec = dmap.fields.get("source_record_id")
    used = spec.columns_used() if spec is not None else list(stream.primary_key or [])
    return [*used, *(dmap.where or {})]


def _unloaded(wh, source_id: str, stream: str) -> list[str]:
    landed = [p.name for p in landing.list_batches(source_id, stream)]
    landed += [p.name for p in landing.incomplete_batches(source_id, stream)]
    if not landed:
        return []
    with wh.engine.connect() as conn:
        done = set(conn.execute(sa.text("SELECT batch_id FROM batch_audit WHERE source_id = :s AND stream = :t AND "
                                        "status IN ('loaded', 'released')"), {"s": source_id, "t": stream}).scalars())
    return [b for b in landed if b not in done]


def _accounted(wh, source_id: str, dataset: str, since: dt.datetime) -> tuple[pa.Table, set[str]]:
    """The warehouse's (key, update time) for the source's rows updated since ``since``, and its quarantined keys."""
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT source_record_id, source_updated_at FROM {dataset} WHERE source_id = :s "
                                    "AND source_updated_at >= :t"), {"s": source_id, "t": since}).all()
        held = set(conn.execute(sa.text("SELECT DISTINCT source_record_id FROM quarantine WHERE source_id = :s AND "
                                        "dataset = :d"), {"s": source_id, "d": dataset}).scalars())
    table = pa.table({"source_record_id": pa.array([r[0] for r in rows], pa.string()),
                      "held_at": pa.array([r[1] for r in rows], pa.timestamp("us"))})
    return table, held


def land_missed_days(conn, source, stream_name: str, cfg, *, watermark: str, wh) -> dict:
    """Compare the last ``cfg.reconcile.days`` days with the warehouse; land the days missing rows. Returns what
    was compared and found (recorded in the stream's manifest)."""
    started = time.monotonic()
    source_id = source.source_id
    mark = dt.datetime.fromisoformat(watermark)
    end = mark - cfg.cursor.overlap  # the night's extraction reads on from here
    start = dt.datetime.combine((end - dt.timedelta(days=cfg.reconcile.days)).date(), dt.time())
    report: dict = {"from": iso_time(start), "to": iso_time(end)}
    waiting = _unloaded(wh, source_id, stream_name)
    if waiting:
        report["skipped"] = f"batch {waiting[0]} is not loaded yet"
        return report
    columns = list(dict.fromkeys([c for dmap in cfg.maps for c in _key_columns(cfg, dmap)] + [cfg.cursor.column]))
    window = ExtractWindow(since=start, until=end)
    missing_days: dict[dt.date, int] = {}
    source_rows = 0
    for dmap in cfg.maps:
        keyed = DatasetMap(dataset=dmap.dataset, where=dmap.where,
                           fields={"source_record_id": dmap.fields["source_record_id"]}
                           if "source_record_id" in dmap.fields else {})
        accounted, quarantined = _accounted(wh, source_id, dmap.dataset, start)
        for batch in conn.read_columns(stream_name, columns, window):
            mapped = map_dataset(pa.Table.from_batches([batch]), keyed, source, cfg, batch_id="reconcile").table
            rows = mapped.select(["source_record_id", "source_updated_at"])
            # a row without a key or a readable time cannot be compared (validation quarantines it when it loads)
            rows = rows.filter(pc.and_(pc.is_valid(rows.column(0)), pc.is_valid(rows.column(1))))
            source_rows += rows.num_rows
            joined = rows.join(accounted, "source_record_id", join_type="left outer")
            seen = pc.fill_null(pc.greater_equal(joined.column("held_at"), joined.column("source_updated_at")), False)
            seen = pc.or_(seen, pc.is_in(joined.column("source_record_id"), value_set=pa.array(sorted(quarantined),
                                                                                             pa.string())))
            lost = joined.filter(pc.invert(seen)).column("source_updated_at")
            for t in lost.to_pylist():
                missing_days[t.date()] = missing_days.get(t.date(), 0) + 1
    report.update(source_rows=source_rows, missing_rows=sum(missing_days.values()),
                  days_read_again=[d.isoformat() for d in sorted(missing_days)])
    if missing_days:
        report["batch_id"] = _land_days(conn, source, stream_name, cfg, sorted(missing_days), start, end)
        log.warning("%s/%s: reconciliation found %d row(s) the warehouse lacks on %s; those days landed again as "
                    "batch %s", source_id, stream_name, report["missing_rows"], ", ".join(report["days_read_again"]),
                    report["batch_id"])
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _land_days(conn, source, stream_name: str, cfg, days: list[dt.date], start: dt.datetime,
               end: dt.datetime) -> str:
    tracker = CursorTracker(cfg.cursor)
    windows = [(max(start, dt.datetime.combine(d, dt.time())), min(end, dt.datetime.combine(d, dt.time()) +
                                                                     dt.timedelta(days=1))) for d in days]
    with landing.BatchWriter(source.source_id, stream_name, cfg.datasets, cursor_column=cfg.cursor.column,
                             sensitive_columns=privacy.sensitive_columns(cfg),
                             cursor_start=iso_time(windows[0][0])) as writer:
        for since, until in windows:
            for batch in conn.extract(stream_name, ExtractWindow(since=since, until=until)).batches:
                tracker.see(batch)
                writer.write(batch)
        writer.cursor_end = tracker.value
        manifest = writer.commit(extra={"reconciliation": {"days": [d.isoformat() for d in days]},
                                        "window": {"since": iso_time(windows[0][0]), "until": iso_time(end)}})
    return manifest.batch_id
