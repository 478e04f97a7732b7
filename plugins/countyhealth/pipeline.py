"""The stages as functions: what an Airflow task, ``countyhealth pipeline`` and the tests call.

``extract`` (a source stream → a landed raw batch) and ``validate`` (a landed batch → canonical clean rows,
quarantine and findings beside it, and the circuit-breaker decision) write only files, so they run in
parallel. ``load`` is the single warehouse writer: each validated batch goes in one transaction — rows,
quarantine, findings, the reconciled audit row, ingested files and the watermark — or not at all.

Idempotency: extraction reads from the watermark the warehouse holds (minus the overlap), so an extraction
whose load never happened is simply read again; loading a batch twice leaves the warehouse unchanged (upsert
on (source_id, source_record_id), older versions never overwrite newer ones, audit rows replaced).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from countyhealth import failures, landing, model, privacy, settings
from countyhealth.connectors import connector_class
from countyhealth.connectors.base import CursorBoundary, CursorTracker, ExtractError, ExtractWindow
from countyhealth.connectors.config import get_source, load_sources
from countyhealth.connectors.typing import SourceBase

log = logging.getLogger(__name__)

VALIDATED = "validated"
OUTCOME = "outcome.json"
CHUNK_ROWS = 200_000  # raw rows mapped and validated at a time: bounds memory
TRANSACTION_ROWS = 500_000  # landed rows loaded in one warehouse transaction at most (a night's batches share one)


class ReconciliationError(RuntimeError):
    """rows extracted ≠ rows loaded + quarantined + duplicates: the batch must not load."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _warehouse(wh=None):
    from countyhealth.warehouse import Warehouse

    return wh or Warehouse()


# ---- extract ---------------------------------------------------------------------------------------------

def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(sep="T") if value else None


def seen_file_checksums(wh, source_id: str, stream: str) -> frozenset[str]:
    """Files a file source has ingested already: loaded ones (warehouse) and landed ones not yet loaded."""
    import sqlalchemy as sa

    from countyhealth.warehouse import retry_on_lock

    def read():
        with wh.engine.connect() as conn:
            return {r[0] for r in conn.execute(
                sa.text("SELECT sha256 FROM ingested_file WHERE source_id = :s AND stream = :t"),
                {"s": source_id, "t": stream})}

    seen = retry_on_lock(read) if wh.dialect == "duckdb" else read()
    for path in landing.list_batches(source_id, stream):
        seen.update(f["sha256"] for f in landing.read_manifest(path).extra.get("files", []))
    return frozenset(seen)


def extract(source_id: str, stream: str, *, until: dt.datetime | None = None, wh=None,
            source: SourceBase | None = None, connector=None) -> landing.Manifest:
    """Land one stream's new rows (from the watermark minus the overlap up to ``until``) as a raw batch.

    A stream whose rows come in cursor order (SQL; REST with ``cursor.ordered``) lands in parts as it goes: when
    the extraction fails, the next call resumes the same batch after its last committed part (no row read
    twice into it, none skipped) and the batch is loaded once, complete — so the watermark never passes rows
    that are not landed and loaded. A SQL stream with ``reconcile`` first lands the days the warehouse is
    missing rows of (:func:`countyhealth.reconcile.land_missed_days`) as a batch of their own.
    """
    source = source or get_source(source_id)
    own = connector is None  # pipeline.run passes one connector per source: its streams share its connection
    connector = connector or connector_class(source.kind).from_source(source)
    try:
        return _extract(source_id, stream, until, _warehouse(wh), source, connector)
    finally:
        if own:
            connector.close()


def _extract(source_id: str, stream: str, until: dt.datetime | None, wh, source: SourceBase, conn) -> landing.Manifest:
    cfg = conn.stream(stream)
    watermark = wh.watermark(source_id, stream)
    since, lookback = _window_start(wh, source_id, stream, cfg, watermark, until)
    reconciliation = None
    if getattr(cfg, "reconcile", None) is not None and watermark:
        from countyhealth import reconcile

        reconciliation = reconcile.land_missed_days(conn, source, stream, cfg, watermark=watermark, wh=wh)
    seen = seen_file_checksums(wh, source_id, stream) if getattr(cfg, "path", None) is not None else frozenset()
    resumable = cfg.cursor is not None and conn.resumable(stream)
    progress_dir = _resumable_batch(source_id, stream, since, cfg) if resumable else None
    progress = landing.read_progress(progress_dir) if progress_dir else None
    after = dt.datetime.fromisoformat(progress["position"]["after"]) if progress else None
    window = ExtractWindow(since=after or since, until=until, seen_files=seen)
    started = time.monotonic()
    extraction = conn.extract(stream, window)
    where = f"{source.path}: streams.{stream}"
    tracker = CursorTracker(cfg.cursor, highest=_parse_iso(progress["cursor_end"]) if progress else None)
    boundary = CursorBoundary(cfg.cursor, after=after, where=where) if resumable else None
    sealed = privacy.sensitive_columns(cfg)  # ID numbers and phones sealed before they touch disk
    writer = landing.BatchWriter.resume(progress_dir, sensitive_columns=sealed) if progress_dir else \
        landing.BatchWriter(source_id, stream, cfg.datasets, cursor_column=cfg.cursor.column if cfg.cursor else None,
                            cursor_start=_iso(since), sensitive_columns=sealed)
    facts = {"window": {"since": _iso(since), "until": _iso(until)}}
    with writer:
        extraction.savepoint, extraction.rollback = writer.savepoint, writer.rollback
        for batch in extraction.batches:
            _require_cursor_column(batch, cfg, where)
            if boundary is None:
                tracker.see(batch)
                writer.write(batch)
                continue
            ready, tail = boundary.split(batch)
            tracker.see(ready)
            writer.write(ready)
            writer.cursor_end = tracker.value
            if boundary.committed is not None and boundary.committed != after:
                writer.checkpoint({"after": _iso(boundary.committed)}, extra=facts)
                after = boundary.committed
            tracker.see(tail)
            writer.write(tail)
        writer.cursor_end = tracker.value
        extra = dict(extraction.extra)
        extra.update(facts, watermark_before=watermark, unparsable_cursor_values=tracker.unparsable,
                     rows_without_cursor=tracker.missing, seconds=round(time.monotonic() - started, 3))
        if lookback:
            extra["lookback"] = {"since": _iso(since), "at": _iso(lookback)}
        if reconciliation is not None:
            extra["reconciliation"] = reconciliation
        if progress:
            extra["resumed"] = {"after": progress["position"]["after"], "rows_landed_before": progress["rows"],
                                "earlier_failures": progress.get("failures", []),
                                "rows_skipped_as_landed": boundary.skipped}
        manifest = writer.commit(extra=extra)
    if extraction.on_landed:
        extraction.on_landed(manifest)
    if tracker.missing and cfg.cursor is not None:
        log.warning("%s: %d row(s) have no value in cursor column %r: incremental runs cannot see them change",
                    where, tracker.missing, cfg.cursor.column)
    log.info("%s/%s: landed %d rows as batch %s (cursor %s → %s)%s", source_id, stream, manifest.rows,
             manifest.batch_id, manifest.cursor_start, manifest.cursor_end,
             f", resumed after {progress['position']['after']}" if progress else "")
    return manifest


def extraction_warnings(manifest: landing.Manifest) -> list[str]:
    """What an extraction landed around rather than failed on, for the people watching the night."""
    extra = manifest.extra
    out = [f"{f['name']} rejected ({f['reason']}); moved to {f['moved_to']}" for f in extra.get("rejected_files", [])]
    out += list(extra.get("warnings", []))
    if extra.get("short_of_reported_total"):
        out.append(f"the API reported {extra['short_of_reported_total']} more row(s) than paging returned")
    if extra.get("rows_without_cursor"):
        out.append(f"{extra['rows_without_cursor']} row(s) without a value in cursor column "
                   f"{manifest.cursor_column!r}: incremental runs cannot see them change")
    return out


def _parse_iso(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _window_start(wh, source_id: str, stream: str, cfg, watermark: str | None,
                  until: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Where the window starts (the watermark minus the overlap, or minus the lookback's depth when a deeper
    read is due), and the time that deeper read is recorded under (None when it is not one)."""
    cursor = cfg.cursor
    if cursor is None:
        return None, None
    if not watermark:
        return cursor.initial, None
    mark = dt.datetime.fromisoformat(watermark)
    if cursor.lookback is None:
        return mark - cursor.overlap, None
    import sqlalchemy as sa

    from countyhealth.warehouse import retry_on_lock

    def read():
        with wh.engine.connect() as c:
            return c.execute(sa.text("SELECT lookback_at FROM watermark WHERE source_id = :s AND stream = :t"),
                             {"s": source_id, "t": stream}).scalar()

    last = retry_on_lock(read) if wh.dialect == "duckdb" else read()
    now = until or (_now() + dt.timedelta(hours=8))  # member systems keep Asia/Shanghai local time
    if last is not None and now - last < cursor.lookback.every:
        return mark - cursor.overlap, None
    return mark - max(cursor.lookback.depth, cursor.overlap), now


def _resumable_batch(source_id: str, stream: str, since: dt.datetime | None, cfg) -> Path | None:
    """The incomplete batch a failed extraction of this window left, if it can be resumed; stale ones (another
    window: the watermark moved, a lookback began, the cursor changed) are removed."""
    found = None
    for path in landing.incomplete_batches(source_id, stream):
        progress = landing.read_progress(path)
        same = (progress.get("extra", {}).get("window", {}).get("since") == _iso(since)
                and progress.get("cursor_column") == cfg.cursor.column and found is None)
        if same:
            found = path
        else:
            log.info("%s/%s: removing incomplete batch %s (another window; it is read again)", source_id, stream,
                     path.name)
            landing.discard(path)
    return found


def _require_cursor_column(batch: pa.RecordBatch, cfg, where: str) -> None:
    """A cursor the rows don't carry would mean a full re-read every night without anyone noticing."""
    if cfg.cursor is None or batch.num_rows == 0 or cfg.cursor.column in batch.schema.names:
        return
    columns = ", ".join(c for c in batch.schema.names if not c.startswith("_"))
    raise ExtractError(f"{where}.cursor.column: {cfg.cursor.column!r} is not in the rows the source returns "
                       f"(they have: {columns[:300]}) — name the rows' update-time column, or remove `cursor` to read "
                       "everything every run")


# ---- validate --------------------------------------------------------------------------------------------

@dataclass
class DatasetResult:
    dataset: str
    rows_in: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    rows_flagged: int = 0
    rows_excluded: int = 0
    failing_share: float = 0.0
    threshold: float = 0.2
    held: bool = False
    rule_counts: dict = field(default_factory=dict)


@dataclass
class BatchOutcome:
    batch_id: str
    source_id: str
    stream: str
    validated_at: str
    config_sha256: str
    datasets: dict[str, DatasetResult]
    released: dict | None = None  # who released a held batch, when, why

    @property
    def held(self) -> bool:
        return any(d.held for d in self.datasets.values()) and not self.released

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, ensure_ascii=False, indent=1)

    @classmethod
    def read(cls, batch_dir: Path) -> "BatchOutcome | None":
        path = batch_dir / VALIDATED / OUTCOME
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        data["datasets"] = {k: DatasetResult(**v) for k, v in data["datasets"].items()}
        return cls(**data)

    def write(self, batch_dir: Path) -> None:
        landing.atomic_write_bytes(batch_dir / VALIDATED / OUTCOME, self.to_json().encode())


def _config_sha(source: SourceBase) -> str:
    return hashlib.sha256(source.model_dump_json().encode()).hexdigest()


def _raw_chunks(batch_dir: Path):
    """Raw rows in chunks of about CHUNK_ROWS, each chunk one table (parts may differ in columns)."""
    pending: list[pa.Table] = []
    rows = 0
    for rb in landing.iter_batches(batch_dir, batch_size=CHUNK_ROWS):
        pending.append(pa.Table.from_batches([rb]))
        rows += rb.num_rows
        if rows >= CHUNK_ROWS:
            yield pa.concat_tables(pending, promote_options="default")
            pending, rows = [], 0
    if pending:
        yield pa.concat_tables(pending, promote_options="default")


def _row_json(raw: pa.Table, rows: list[int], sensitive: set[str]) -> dict[int, str]:
    """Quarantined rows as the source had them, ID numbers and phones masked (for the county IT team)."""
    import pyarrow.compute as pc

    if not rows:
        return {}
    picked = raw.filter(pc.is_in(raw.column(landing.ROW), value_set=pa.array(sorted(set(rows)), pa.int64())))
    out = {}
    for rec in picked.to_pylist():
        r = rec.pop(landing.ROW)
        masked = {k: (privacy.mask_id(v) if k in sensitive else privacy.scrub(v)) if isinstance(v, str) else v
                  for k, v in rec.items()}
        out[r] = json.dumps(masked, ensure_ascii=False)
    return out


QUARANTINE_FILE_SCHEMA = pa.schema([("_row", pa.int64()), ("rule_id", pa.string()), ("category", pa.string()),
                                    ("severity", pa.string()), ("column", pa.string()), ("value", pa.string()),
                                    ("source_record_id", pa.string()), ("facility_code", pa.string()),
                                    ("row_json", pa.string())])


def person_birth_dates(source_id: str, *, wh=None) -> dict:
    """``source_record_id → birth_date`` of a source's patients: loaded ones (warehouse) and those landed and
    validated but not loaded yet (this night's new registrations), for the "not before birth" rules."""
    import sqlalchemy as sa

    from countyhealth.warehouse import retry_on_lock

    births: dict = {}
    wh = wh or _warehouse()
    if wh.dialect == "duckdb" and not Path(wh.engine.url.database or "").exists():
        return births

    def read():
        with wh.engine.connect() as conn:
            if not sa.inspect(conn).has_table("person"):
                return []
            return conn.execute(sa.text("SELECT source_record_id, birth_date FROM person WHERE source_id = :s AND "
                                        "birth_date IS NOT NULL"), {"s": source_id}).fetchall()

    rows = retry_on_lock(read) if wh.dialect == "duckdb" else read()
    births.update((r, b) for r, b in rows)
    for batch in landing.list_batches(source_id):
        clean = batch / VALIDATED / "person" / "clean.parquet"
        if clean.exists():
            t = pq.read_table(clean, columns=["source_record_id", "birth_date"])
            births.update((r, b) for r, b in zip(t.column(0).to_pylist(), t.column(1).to_pylist()) if b is not None)
    return births


def loaded_contracts(source_id: str, *, before_batch: str, wh=None):
    """Active family-doctor contracts already known (columns key, number, begin, end), for "no overlapping
    active contracts" across nights: the warehouse's (every source), plus those validated but not loaded yet
    in this source's earlier batches (a night that landed two batches loads them after validating both).

    The contract table holds events (签约, 续约, 解约), each its own row: a contract with a termination event
    is active only until the day before its termination date, whatever its signing row says."""
    import pandas as pd
    import sqlalchemy as sa

    from countyhealth.warehouse import retry_on_lock

    cols = ["key", "number", "begin", "end", "status", "terminated_on"]
    wanted = ["resident_key", "contract_number", "begin_date", "end_date", "status", "termination_date"]
    wh = _warehouse(wh)
    rows, done = [], set()
    if wh.dialect != "duckdb" or Path(wh.engine.url.database or "").exists():
        def read():
            with wh.engine.connect() as conn:
                if not sa.inspect(conn).has_table("contract"):
                    return [], set()
                found = conn.execute(sa.text(f"SELECT {', '.join(wanted)} FROM contract "
                                             "WHERE resident_key IS NOT NULL")).fetchall()
                loaded = set(conn.execute(sa.text("SELECT DISTINCT batch_id FROM batch_audit WHERE source_id = :s "
                                                  "AND status IN ('loaded', 'released')"), {"s": source_id}).scalars())
                return found, loaded

        rows, done = retry_on_lock(read) if wh.dialect == "duckdb" else read()
    frames = [pd.DataFrame([tuple(r) for r in rows], columns=cols)]
    for batch in landing.list_batches(source_id):
        clean = batch / VALIDATED / "contract" / "clean.parquet"
        if batch.name >= before_batch or batch.name in done or not clean.exists():
            continue
        frame = pq.read_table(clean, columns=wanted).to_pandas().set_axis(cols, axis=1)
        frames.append(frame[frame["key"].notna()])
    events = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else frames[0]
    for c in ("begin", "end", "terminated_on"):
        events[c] = pd.to_datetime(events[c], errors="coerce")
    ended = events[events["status"] == "terminated"].groupby("number")["terminated_on"].min()
    active = events[events["status"] != "terminated"].copy()
    cut = active["number"].map(ended) - pd.Timedelta(days=1)
    active["end"] = active["end"].where(cut.isna() | (active["end"] <= cut), cut)
    active = active[active["begin"].notna() & active["end"].notna() & (active["end"] >= active["begin"])]
    return active[["key", "number", "begin", "end"]].drop_duplicates().reset_index(drop=True)


def validate(batch_dir: Path, *, source: SourceBase | None = None, load_time: dt.datetime | None = None,
             wh=None) -> BatchOutcome:
    """Map and check a landed batch; write ``validated/`` beside it (replacing an earlier validation)."""
    result = validate_batches([(batch_dir, source)], load_time=load_time, wh=wh)[batch_dir]
    if isinstance(result, BaseException):
        raise result
    return result


def validate_batches(batches: list[tuple[Path, SourceBase | None]], *, load_time: dt.datetime | None = None,
                     wh=None) -> dict[Path, BatchOutcome | Exception]:
    """Validate a night's landed batches: each batch's ``validated/`` written as :func:`validate` writes it, but
    the small batches' rows of one dataset checked in one GX run (:func:`countyhealth.validation.validate_parts`),
    so a night of many streams pays GX's fixed cost once per dataset, not once per stream. A batch larger than a
    chunk is validated on its own, chunk by chunk (bounded memory). Returns each batch's outcome or the exception
    that stopped it; one batch failing never stops the others."""
    from countyhealth import validation

    load_time = load_time or _now() + dt.timedelta(hours=8)  # member systems record Asia/Shanghai local time
    out: dict[Path, BatchOutcome | Exception] = {}
    waiting: list[tuple[_BatchValidation, list]] = []  # small batches: their parts, validated together below
    births: dict[str, dict] = {}  # per source, read once a night (a warehouse read each: ~0.3 s)
    for batch_dir, source in batches:
        try:
            bv = _BatchValidation(batch_dir, source, load_time, wh, births)
        except Exception as exc:  # noqa: BLE001 - returned per batch
            out[batch_dir] = exc
            continue
        try:
            if bv.manifest.rows <= CHUNK_ROWS:
                waiting.append((bv, [p for raw in _raw_chunks(batch_dir) for p in bv.parts(raw)]))
                continue
            for raw in _raw_chunks(batch_dir):
                parts = bv.parts(raw)
                for p, res in zip(parts, validation.validate_parts([p[0] for p in parts])):
                    bv.add(p, res)
            out[batch_dir] = bv.finish()
        except Exception as exc:  # noqa: BLE001 - returned per batch
            bv.abort()
            out[batch_dir] = exc
    flat = [(bv, p) for bv, parts in waiting for p in parts]
    results = validation.validate_parts([p[0] for _, p in flat]) if flat else []
    failed: dict[int, Exception] = {}
    for (bv, p), res in zip(flat, results):
        if id(bv) in failed:
            continue
        try:
            bv.add(p, res)
        except Exception as exc:  # noqa: BLE001 - returned per batch
            failed[id(bv)] = exc
    for bv, _ in waiting:
        if id(bv) in failed:
            bv.abort()
            out[bv.batch_dir] = failed[id(bv)]
            continue
        try:
            out[bv.batch_dir] = bv.finish()
        except Exception as exc:  # noqa: BLE001 - returned per batch
            bv.abort()
            out[bv.batch_dir] = exc
    return out


class _BatchValidation:
    """One batch's validation in progress: its context, its ``validated/`` being written in a temporary folder."""

    def __init__(self, batch_dir: Path, source: SourceBase | None, load_time: dt.datetime, wh,
                 births: dict[str, dict] | None = None):
        self.batch_dir = batch_dir
        self.manifest = manifest = landing.verify(batch_dir)
        self.source = source = source or get_source(manifest.source_id)
        self.stream = stream = source.streams.get(manifest.stream)
        if stream is None:
            raise KeyError(f"{source.path}: stream {manifest.stream!r} of batch {manifest.batch_id} is no longer "
                           "configured — restore it to validate this batch")
        self.load_time = load_time
        self.births = None
        if manifest.rows and any(d != "person" and "person_source_record_id" in {f.name for f in model.fields(d)}
                                 for d in stream.datasets):
            cache = births if births is not None else {}
            if manifest.source_id not in cache:
                cache[manifest.source_id] = person_birth_dates(manifest.source_id, wh=wh)
            self.births = cache[manifest.source_id]
        self.contracts = loaded_contracts(manifest.source_id, before_batch=manifest.batch_id, wh=wh) \
            if manifest.rows and "contract" in stream.datasets else None
        self.tmp = batch_dir / f".{VALIDATED}.{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self.results: dict[str, DatasetResult] = {}
        self.writers: dict[tuple[str, str], pq.ParquetWriter] = {}

    def parts(self, raw: pa.Table) -> list[tuple]:
        """The raw chunk mapped to each dataset of the stream: ``(validation.Part, raw, dmap, mapped)``."""
        from countyhealth import validation
        from countyhealth.connectors.mapping import map_dataset

        source, stream, manifest = self.source, self.stream, self.manifest
        out = []
        for dmap in stream.maps:
            ds = dmap.dataset
            mapped = map_dataset(raw, dmap, source, stream, batch_id=manifest.batch_id,
                                 strict_columns=source.kind != "rest")
            ctx = validation.ValidationContext(source_id=source.source_id, batch_id=manifest.batch_id,
                                               load_time=self.load_time, code_system=source.code_system,
                                               max_failing_share=source.validation.max_failing_share,
                                               birth_dates=self.births if ds != "person" else None,
                                               loaded_contracts=self.contracts if ds == "contract" else None)
            out.append((validation.Part(ds, mapped.table, ctx, mapped.issues), raw, dmap, mapped))
        return out

    def add(self, part: tuple, out) -> None:
        import pyarrow.compute as pc

        if isinstance(out, BaseException):
            raise out
        _, raw, dmap, mapped = part
        ds = dmap.dataset
        res = self.results.setdefault(ds, DatasetResult(ds, threshold=self.source.validation.max_failing_share))
        res.rows_in += out.rows_in
        res.rows_excluded += mapped.rows_excluded
        res.rows_quarantined += out.rows_quarantined
        res.rows_flagged += out.rows_flagged
        res.rows_clean += out.clean.num_rows
        for rule, n in out.rule_counts.items():
            res.rule_counts[rule] = res.rule_counts.get(rule, 0) + n
        _append(self.writers, self.tmp, ds, "clean", privacy.protect_canonical(ds, out.clean))
        errors = out.issues.filter(pc.equal(out.issues.column("severity"), "error"))
        warnings = out.issues.filter(pc.equal(out.issues.column("severity"), "warning"))
        sensitive = {s.column for name, s in dmap.fields.items() if name in ("id_number", "phone") and s.column}
        _append(self.writers, self.tmp, ds, "quarantine", _with_context(errors, mapped.table, raw, sensitive))
        _append(self.writers, self.tmp, ds, "findings", _with_context(warnings, mapped.table, None, sensitive))

    def finish(self) -> BatchOutcome:
        source, manifest, tmp, results = self.source, self.manifest, self.tmp, self.results
        for w in self.writers.values():
            w.close()
        self.writers.clear()
        for ds, res in results.items():
            res.rows_flagged += _flag_conflicting_duplicates(tmp / ds, ds, res)
        for res in results.values():
            res.failing_share = res.rows_quarantined / res.rows_in if res.rows_in else 0.0
            res.held = res.failing_share > res.threshold and res.rows_in >= source.validation.min_rows
        for dmap in self.stream.maps:  # an empty batch still has an outcome per dataset
            results.setdefault(dmap.dataset, DatasetResult(dmap.dataset, threshold=source.validation.max_failing_share))
        outcome = BatchOutcome(manifest.batch_id, manifest.source_id, manifest.stream,
                               _now().isoformat(timespec="seconds"), _config_sha(source), results)
        landing.atomic_write_bytes(tmp / OUTCOME, outcome.to_json().encode())
        final = self.batch_dir / VALIDATED
        if final.exists():
            old = self.batch_dir / f".{VALIDATED}.old.{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        landing.make_private(final)
        for res in results.values():
            if res.held:
                log.warning("%s/%s batch %s: %s held — %.1f%% of rows failed (threshold %.0f%%); nothing of this "
                            "batch loads until it is released or re-validated", manifest.source_id, manifest.stream,
                            manifest.batch_id, res.dataset, 100 * res.failing_share, 100 * res.threshold)
        return outcome

    def abort(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _flag_conflicting_duplicates(folder: Path, dataset: str, res: DatasetResult) -> int:
    """A key that comes twice in one batch with the same update time but different content is a finding: one
    version loads (the later row) and nobody can tell which was right. Rows repeated as they were (a vendor's sync
    job sending a row twice) and later versions of a row (a correction) are not findings. Returns the rows
    newly flagged. DuckDB reads the batch's clean rows from their Parquet file: bounded memory, one query."""
    import duckdb

    clean, findings = folder / "clean.parquet", folder / "findings.parquet"
    if not clean.exists():
        return 0
    columns = [f.name for f in pq.read_schema(clean) if f.name not in (landing.ROW, "batch_id")]
    content = ", ".join(f'"{c}"' for c in columns)
    rule = f"{dataset}.plausibility.conflicting_duplicate"
    con = duckdb.connect()
    try:
        found = con.sql(
            f"WITH c AS (SELECT _row, source_record_id, source_updated_at, facility_code, hash({content}) AS h "
            "FROM read_parquet(?)), "
            "g AS (SELECT source_record_id, source_updated_at, min(_row) AS first FROM c "
            "GROUP BY ALL HAVING count(DISTINCT h) > 1) "
            "SELECT c._row, c.source_record_id, c.facility_code FROM c JOIN g ON c.source_record_id = g.source_record_id "
            "AND c.source_updated_at IS NOT DISTINCT FROM g.source_updated_at WHERE c._row <> g.first ORDER BY 1",
            params=[str(clean)]).to_arrow_table()
    finally:
        con.close()
    if found.num_rows == 0:
        return 0
    n = found.num_rows
    issues = pa.Table.from_arrays([
        found.column("_row").cast(pa.int64()), pa.array([rule] * n), pa.array(["plausibility"] * n),
        pa.array(["warning"] * n), pa.array(["source_record_id"] * n),
        pa.array([privacy.scrub(v) if v else v for v in found.column("source_record_id").to_pylist()], pa.string()),
        found.column("source_record_id").cast(pa.string()), found.column("facility_code").cast(pa.string()),
        pa.nulls(n, pa.string())], schema=QUARANTINE_FILE_SCHEMA)
    already: set = set()
    if findings.exists():
        earlier = pq.read_table(findings)
        already = set(earlier.column("_row").to_pylist())
        issues = pa.concat_tables([earlier.cast(QUARANTINE_FILE_SCHEMA), issues])
    pq.write_table(issues, findings, compression="zstd")
    res.rule_counts[rule] = res.rule_counts.get(rule, 0) + n
    log.warning("%s: %d row(s) repeat a key of this batch with other content (rule %s)", dataset, n, rule)
    return len(set(found.column("_row").to_pylist()) - already)


def _with_context(issues: pa.Table, canonical: pa.Table, raw: pa.Table | None, sensitive: set[str]) -> pa.Table:
    """Issues plus the record id, facility and (for quarantine) the raw row as JSON."""
    import pyarrow.compute as pc

    rows = issues.column("_row")
    pos = pc.index_in(rows, value_set=canonical.column(landing.ROW))
    rec = pc.take(canonical.column("source_record_id"), pos)
    fac = pc.take(canonical.column("facility_code"), pos)
    row_json = _row_json(raw, rows.to_pylist(), sensitive) if raw is not None else {}
    js = pa.array([row_json.get(r) for r in rows.to_pylist()], pa.string())
    return pa.Table.from_arrays([*issues.columns, rec, fac, js], schema=QUARANTINE_FILE_SCHEMA)


def _append(writers: dict, folder: Path, dataset: str, kind: str, table: pa.Table) -> None:
    key = (dataset, kind)
    if key not in writers:
        (folder / dataset).mkdir(exist_ok=True)
        writers[key] = pq.ParquetWriter(folder / dataset / f"{kind}.parquet", table.schema, compression="zstd")
    if table.num_rows:
        writers[key].write_table(table.cast(writers[key].schema))


# ---- load (single writer) --------------------------------------------------------------------------------

@dataclass
class LoadSummary:
    batch_id: str
    source_id: str
    stream: str
    status: str  # loaded | released | held | superseded | skipped
    datasets: dict = field(default_factory=dict)  # dataset -> {extracted, loaded, written, unchanged, ...}
    watermark: str | None = None


def pending_batches(source_id: str | None = None, stream: str | None = None) -> list[Path]:
    """Validated batches, oldest first (the loader decides from the warehouse which still need loading)."""
    return [p for p in landing.list_batches(source_id, stream) if (p / VALIDATED / OUTCOME).exists()]


def _audit_status(conn, batch_id: str) -> dict[str, str]:
    import sqlalchemy as sa

    return {d: s for d, s in conn.execute(sa.text("SELECT dataset, status FROM batch_audit WHERE batch_id = :b"),
                                          {"b": batch_id})}


def _read_again_by(conn, manifest) -> str | None:
    """The later batch of the same stream that loaded and re-read this held batch's whole window, if any.

    A held batch leaves its stream's watermark where it was, so the next night reads the same window again (and
    more): once such a batch loads, the held one is only an older copy. Releasing it would put its older values
    back over the repaired ones (equal update times win) and add quarantine rows for records that since loaded
    clean; and left held, it would keep every later night red. Files have no cursor: their batches never are."""
    import sqlalchemy as sa

    if not manifest.cursor_end:
        return None
    rows = conn.execute(sa.text(
        "SELECT batch_id, cursor_start, cursor_end FROM batch_audit WHERE source_id = :s AND stream = :t "
        "AND batch_id > :b AND status IN ('loaded', 'released') ORDER BY batch_id"),
        {"s": manifest.source_id, "t": manifest.stream, "b": manifest.batch_id})
    own_start, own_end = _cursor_time(manifest.cursor_start), _cursor_time(manifest.cursor_end)
    for batch_id, start, end in rows:
        start, end = _cursor_time(start), _cursor_time(end)
        covers_start = start is None or (own_start is not None and start <= own_start)
        if covers_start and end is not None and end >= own_end:
            return batch_id
    return None


def _cursor_time(value: str | None) -> dt.datetime | None:
    """A cursor bound as a time: bounds are written in more than one ISO form (``T`` or a space, trailing zeros
    or none), so comparing their text would misorder 10:00:00.5 and 10:00:00.500000."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None) if value else None


def load_batch(batch_dir: Path, *, wh=None, source: SourceBase | None = None) -> LoadSummary:
    """Load one validated batch in one transaction (or record that it is held). Safe to call again."""
    wh = _warehouse(wh)
    with wh.begin() as conn:
        return _load_batch_in(wh, conn, batch_dir, source)


def _load_batch_in(wh, conn, batch_dir: Path, source: SourceBase | None = None) -> LoadSummary:
    """One batch's rows, quarantine, findings, audit, ingested files and watermark, in the caller's transaction."""
    import sqlalchemy as sa

    from countyhealth.warehouse import Watermark

    manifest = landing.read_manifest(batch_dir)
    outcome = BatchOutcome.read(batch_dir)
    if outcome is None:
        raise RuntimeError(f"batch {manifest.batch_id} has not been validated — run validation first")
    source = source or get_source(manifest.source_id)
    summary = LoadSummary(manifest.batch_id, manifest.source_id, manifest.stream, "loaded")
    now = _now()
    done = _audit_status(conn, manifest.batch_id)
    if done and all(s in ("loaded", "released", "superseded") for s in done.values()):
        summary.status = "skipped"
        return summary
    status = "held" if outcome.held else ("released" if outcome.released else "loaded")
    newer = _read_again_by(conn, manifest) if status == "held" else None
    if newer is not None:
        status = "superseded"
    conn.execute(sa.text("DELETE FROM batch_audit WHERE batch_id = :b"), {"b": manifest.batch_id})
    for dataset, res in outcome.datasets.items():
        counts = {"extracted": res.rows_in, "loaded": 0, "quarantined": res.rows_quarantined, "duplicate": 0,
                  "written": 0, "unchanged": 0}
        if status not in ("held", "superseded"):
            for table in ("quarantine", "finding"):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE batch_id = :b AND dataset = :d"),
                             {"b": manifest.batch_id, "d": dataset})
            counts.update(_load_dataset(wh, conn, batch_dir, dataset, res, manifest, now))
            if counts["extracted"] != counts["loaded"] + counts["quarantined"] + counts["duplicate"]:
                raise ReconciliationError(
                    f"batch {manifest.batch_id} ({manifest.source_id}/{manifest.stream} → {dataset}): "
                    f"{counts['extracted']} rows extracted but {counts['loaded']} loaded + "
                    f"{counts['quarantined']} quarantined + {counts['duplicate']} duplicates — not loading it")
        message = None
        if outcome.released:
            r = outcome.released
            message = (f"released by {r.get('by')} at {r.get('at')}: {r.get('reason')} "
                       f"({100 * res.failing_share:.1f}% of rows failed, quarantined)")
        elif res.held:
            message = (f"held: {100 * res.failing_share:.1f}% of rows failed validation (threshold "
                       f"{100 * res.threshold:.0f}%); top rules: "
                       + ", ".join(f"{r} ({n})" for r, n in sorted(res.rule_counts.items(), key=lambda x: -x[1])[:3]))
        elif status == "held":
            message = "held with the batch: another dataset of this batch failed too many rows"
        if status == "superseded":
            message = (f"superseded: batch {newer} read its rows again and loaded; nothing of this batch loads "
                       f"(it was held: {100 * res.failing_share:.1f}% of rows failed validation)")
        conn.execute(sa.text(
            "INSERT INTO batch_audit (batch_id, dataset, source_id, stream, status, rows_extracted, rows_loaded, "
            "rows_written, rows_unchanged, rows_quarantined, rows_duplicate, rows_flagged, failing_share, threshold, "
            "cursor_start, cursor_end, extracted_at, validated_at, loaded_at, message, superseded_by) VALUES (:b, :d, :s, "
            ":t, :st, :e, :l, :w, :u, :q, :dup, :fl, :fs, :th, :cs, :ce, :xa, :va, :la, :m, :sb)"),
            {"b": manifest.batch_id, "d": dataset, "s": manifest.source_id, "t": manifest.stream, "st": status,
             "e": counts["extracted"], "l": counts["loaded"], "w": counts["written"], "u": counts["unchanged"],
             "q": counts["quarantined"], "dup": counts["duplicate"],
             "fl": res.rows_flagged if status not in ("held", "superseded") else 0, "fs": res.failing_share, "th": res.threshold,
             "cs": manifest.cursor_start, "ce": manifest.cursor_end,
             "xa": dt.datetime.fromisoformat(manifest.ended_at).replace(tzinfo=None),
             "va": dt.datetime.fromisoformat(outcome.validated_at), "la": now if status not in ("held", "superseded") else None,
             "m": message, "sb": newer if status == "superseded" else None})
        summary.datasets[dataset] = counts
    summary.status = status
    if status in ("held", "superseded"):
        return summary
    for f in manifest.extra.get("files", []):
        conn.execute(sa.text("DELETE FROM ingested_file WHERE source_id = :s AND stream = :t AND sha256 = :h"),
                     {"s": manifest.source_id, "t": manifest.stream, "h": f["sha256"]})
        conn.execute(sa.text("INSERT INTO ingested_file (source_id, stream, sha256, file_name, batch_id, ingested_at) "
                             "VALUES (:s, :t, :h, :n, :b, :a)"),
                     {"s": manifest.source_id, "t": manifest.stream, "h": f["sha256"], "n": f["name"],
                      "b": manifest.batch_id, "a": now})
    _register_source(conn, source, now)
    if manifest.cursor_end:
        wm = Watermark(manifest.source_id, manifest.stream, manifest.cursor_end, manifest.batch_id)
        wh._advance_watermark(conn, wm)
        summary.watermark = manifest.cursor_end
    if manifest.extra.get("lookback"):  # the deeper read is done once its batch is loaded, not before
        conn.execute(sa.text("UPDATE watermark SET lookback_at = :t WHERE source_id = :s AND stream = :st "
                             "AND (lookback_at IS NULL OR lookback_at < :t)"),
                     {"t": dt.datetime.fromisoformat(manifest.extra["lookback"]["at"]), "s": manifest.source_id,
                      "st": manifest.stream})
    return summary


def _load_dataset(wh, conn, batch_dir: Path, dataset: str, res: DatasetResult, manifest, now) -> dict:
    folder = batch_dir / VALIDATED / dataset
    loaded = duplicate = written = unchanged = 0
    clean = folder / "clean.parquet"
    if clean.exists():
        def batches():
            for rb in pq.ParquetFile(clean).iter_batches(batch_size=CHUNK_ROWS):
                table = pa.Table.from_batches([rb]).drop_columns([landing.ROW])
                if dataset == "person":
                    table = privacy.protect_person(model.conform("person", table))
                yield table
        result = wh.load(dataset, batches(), connection=conn)
        loaded, duplicate = result.rows_loaded, result.duplicates
        written, unchanged = result.rows_written, result.rows_unchanged
    quarantined = _insert_issues(wh, conn, folder / "quarantine.parquet", "quarantine", dataset, manifest, now)
    _insert_issues(wh, conn, folder / "findings.parquet", "finding", dataset, manifest, now)
    if quarantined != res.rows_quarantined:
        raise ReconciliationError(f"batch {manifest.batch_id} → {dataset}: outcome says {res.rows_quarantined} rows "
                                  f"quarantined but {quarantined} distinct rows are in its quarantine file")
    return {"loaded": loaded, "duplicate": duplicate, "quarantined": quarantined, "written": written,
            "unchanged": unchanged}


def _insert_issues(wh, conn, path: Path, table_name: str, dataset: str, manifest, now) -> int:
    """Insert quarantine or finding rows; returns the number of distinct rows they name."""
    import pyarrow.compute as pc

    if not path.exists():
        return 0
    issues = pq.read_table(path)
    if issues.num_rows == 0:
        return 0
    # one row per (row, rule): a rule that fails twice on a row (e.g. two columns) is recorded once
    issues = issues.group_by(["_row", "rule_id"], use_threads=False).aggregate(
        [(c, "first") for c in ("category", "column", "value", "source_record_id", "facility_code", "row_json")])
    issues = issues.rename_columns([c.removesuffix("_first") for c in issues.column_names])
    n = issues.num_rows
    cols = {
        "batch_id": pa.array([manifest.batch_id] * n), "dataset": pa.array([dataset] * n),
        "row_number": issues.column("_row"), "rule_id": issues.column("rule_id"),
        "source_id": pa.array([manifest.source_id] * n), "facility_code": issues.column("facility_code"),
        "source_record_id": issues.column("source_record_id"), "category": issues.column("category"),
        "column_name": issues.column("column"), "offending_value": issues.column("value"),
    }
    if table_name == "quarantine":
        cols["row_json"] = issues.column("row_json")
        cols["quarantined_at"] = pa.array([now] * n, pa.timestamp("us"))
    else:
        cols["found_at"] = pa.array([now] * n, pa.timestamp("us"))
    wh.insert_arrow(conn, table_name, pa.table(cols))
    _drop_relanded_issues(conn, table_name, manifest.batch_id)
    return len(pc.unique(issues.column("_row")))


def _drop_relanded_issues(conn, table_name: str, batch_id: str) -> None:
    """Idempotent quarantine and findings: a row landed again (an overlap re-read, a crash, a concurrent run) whose
    record already carries the same rule with the same value from an earlier batch adds nothing — the table stays
    exactly as one landing left it. A record without a key is told apart by its row (quarantine's row_json)."""
    import sqlalchemy as sa

    q = table_name  # the row just inserted; o: the same record's issue from an earlier batch
    same_row = (f"({q}.source_record_id IS NOT NULL OR (o.row_json IS NOT DISTINCT FROM {q}.row_json "
                f"AND {q}.row_json IS NOT NULL))") if q == "quarantine" else f"{q}.source_record_id IS NOT NULL"
    conn.execute(sa.text(
        f"DELETE FROM {q} WHERE {q}.batch_id = :b AND EXISTS (SELECT 1 FROM {q} o WHERE o.batch_id <> :b "
        f"AND o.source_id = {q}.source_id AND o.dataset = {q}.dataset AND o.rule_id = {q}.rule_id "
        f"AND o.source_record_id IS NOT DISTINCT FROM {q}.source_record_id "
        f"AND o.offending_value IS NOT DISTINCT FROM {q}.offending_value AND {same_row})"), {"b": batch_id})


def _register_source(conn, source: SourceBase, now: dt.datetime) -> None:
    import sqlalchemy as sa

    conn.execute(sa.text("DELETE FROM source_registry WHERE source_id = :s"), {"s": source.source_id})
    conn.execute(sa.text("INSERT INTO source_registry (source_id, kind, facility_code, code_system, description, "
                         "config_sha256, updated_at) VALUES (:s, :k, :f, :c, :d, :h, :u)"),
                 {"s": source.source_id, "k": source.kind, "f": source.facility_code, "c": source.code_system,
                  "d": source.description, "h": _config_sha(source), "u": now})


def load_pending(*, wh=None, source_id: str | None = None) -> tuple[list[LoadSummary], dict[str, str]]:
    """Load every validated batch not loaded yet, oldest first. A batch that fails to load is reported and
    the later batches of its stream wait (their watermark must not pass it); other streams go on."""
    wh = _warehouse(wh)
    wh.migrate()  # a release may bring new migrations; applying them is idempotent and cheap when none are pending
    out: list[LoadSummary] = []
    failed: dict[str, str] = {}
    blocked: set[tuple[str, str]] = set()
    # a batch landed by a run that died before validating it: validate it now rather than leave it behind
    for batch_dir in landing.list_batches(source_id):
        if not (batch_dir / VALIDATED / OUTCOME).exists():
            m = landing.read_manifest(batch_dir)
            try:
                log.info("validating batch %s (%s/%s) left unvalidated by an earlier run", m.batch_id, m.source_id,
                         m.stream)
                validate(batch_dir)
            except Exception as exc:  # noqa: BLE001 - reported like a failed load; its stream waits
                blocked.add((m.source_id, m.stream))
                failed[f"{m.source_id}/{m.stream}/{m.batch_id}"] = f"validation: {type(exc).__name__}: " \
                                                                      f"{privacy.scrub(str(exc))}"
    sources: dict[str, SourceBase] = {}
    todo = [(d, landing.read_manifest(d)) for d in sorted(pending_batches(source_id), key=lambda p: p.name)]
    todo = [(d, m) for d, m in todo if (m.source_id, m.stream) not in blocked]
    # A night's batches in as few transactions as possible: a set of batches (up to TRANSACTION_ROWS rows) in one,
    # each batch's rows, quarantine, audit and watermark still together (the set commits or rolls back whole). A
    # DuckDB transaction opens the file and checkpoints it on commit — per batch, that was most of a small night's
    # load. When a set fails, its batches are loaded one transaction each, so a bad batch blocks only its stream.
    start = 0
    while start < len(todo):
        end, rows = start, 0
        while end < len(todo) and (end == start or rows + todo[end][1].rows <= TRANSACTION_ROWS):
            rows += todo[end][1].rows
            end += 1
        if end - start > 1:
            try:
                with wh.begin() as conn:
                    done = [_load_batch_in(wh, conn, d, _source(sources, m.source_id)) for d, m in todo[start:end]]
                out.extend(done)
                start = end
                continue
            except Exception as exc:  # noqa: BLE001 - retried batch by batch below, which reports the culprit
                log.info("loading %d batches together failed (%s); loading them one by one", end - start,
                         type(exc).__name__)
        for batch_dir, manifest in todo[start:end]:
            _load_alone(wh, batch_dir, manifest, out, failed, blocked, sources)
        start = end
    # a batch held earlier in this load may have been read again by one that loaded after it: looked at again, it
    # is superseded tonight rather than keeping the night red until the next one
    loaded_streams = {(s.source_id, s.stream) for s in out if s.status in ("loaded", "released")}
    dirs = {m.batch_id: d for d, m in todo}
    for i, s in enumerate(out):
        if s.status == "held" and (s.source_id, s.stream) in loaded_streams and s.batch_id in dirs:
            again = load_batch(dirs[s.batch_id], wh=wh, source=_source(sources, s.source_id))
            if again.status == "superseded":
                log.info("batch %s (%s/%s) superseded by a later batch that read its rows again", s.batch_id,
                         s.source_id, s.stream)
                out[i] = again
    return out, failed


def _source(sources: dict, source_id: str) -> SourceBase:
    """A source's config, read once per load (reading a YAML with its vendor file: ~0.2 s)."""
    if source_id not in sources:
        sources[source_id] = get_source(source_id)
    return sources[source_id]


def _load_alone(wh, batch_dir: Path, manifest, out: list, failed: dict, blocked: set, sources: dict) -> None:
    key = (manifest.source_id, manifest.stream)
    if key in blocked:
        return
    try:
        out.append(load_batch(batch_dir, wh=wh, source=_source(sources, manifest.source_id)))
    except Exception as exc:  # noqa: BLE001 - reported per batch; the run report shows it
        blocked.add(key)
        reason = f"{type(exc).__name__}: {privacy.scrub(str(exc))}"
        failed[f"{manifest.source_id}/{manifest.stream}/{manifest.batch_id}"] = reason
        failures.record(stage="load", reason=reason, source_id=manifest.source_id, stream=manifest.stream)
        log.error("loading batch %s (%s/%s) failed: %s", manifest.batch_id, *key, reason)


# ---- the whole run without Airflow ---------------------------------------------------------------------

@dataclass
class RunSummary:
    extracted: dict = field(default_factory=dict)  # "source/stream" -> rows
    failed: dict = field(default_factory=dict)  # "source/stream" or stage -> reason
    held: list = field(default_factory=list)
    loaded: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # "source/stream: ..." (a rejected file, an empty file, ...)
    identity: object = None
    results: object = None
    indicators: object = None

    @property
    def ok(self) -> bool:
        """Everything extracted and loaded: no stream failed and no batch is held."""
        return not self.failed and not self.held


def run(*, until: dt.datetime | None = None, wh=None, sources: dict[str, SourceBase] | None = None,
        load_time: dt.datetime | None = None, downstream: bool = True, progress=None) -> RunSummary:
    """Every enabled source stream: extract → validate; then load, identity, shared results, indicators. A failing
    member is recorded and skipped; the others go on (as the Airflow DAG does). ``progress(label)``, when
    given, is called as each stream and each later stage finishes (the CLI's progress bar)."""
    if wh is None:  # the night's own warehouse: connections kept for the run, closed at its end
        from countyhealth.warehouse import Warehouse

        wh = Warehouse(held=True)
        try:
            return run(until=until, wh=wh, sources=sources, load_time=load_time, downstream=downstream,
                       progress=progress)
        finally:
            wh.engine.dispose()
    step = progress or (lambda label: None)
    wh.migrate()
    run_started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=1)
    sources = sources if sources is not None else load_sources()
    summary = RunSummary()
    landed: list[tuple[Path, SourceBase]] = []
    where: dict[Path, tuple[str, str, SourceBase]] = {}
    for source_id, source in sources.items():
        connector = None
        for stream_name, stream in source.streams.items():
            if not stream.enabled:
                continue
            key = f"{source_id}/{stream_name}"
            try:
                # one connector per source: its streams share one database connection / HTTP session and token
                connector = connector or connector_class(source.kind).from_source(source)
                manifest = extract(source_id, stream_name, until=until, wh=wh, source=source, connector=connector)
                summary.extracted[key] = manifest.rows
                summary.warnings.extend(f"{key}: {w}" for w in extraction_warnings(manifest))
                again = manifest.extra.get("reconciliation", {}).get("batch_id")
                for batch_id in filter(None, (again, manifest.batch_id)):  # the days read again, then the night
                    d = landing.batch_dir(source_id, stream_name, batch_id)
                    landed.append((d, source))
                    where[d] = (key, stream_name, source)
            except Exception as exc:  # noqa: BLE001 - one member's failure never stops the others
                _stream_failed(summary, key, exc, source, stream_name)
            step(key)
        if connector is not None:
            connector.close()
    # the night's batches validated together: GX's fixed cost once per dataset, not once per stream
    for d, res in validate_batches(landed, load_time=load_time, wh=wh).items():
        if isinstance(res, BaseException) and where[d][0] not in summary.failed:
            _stream_failed(summary, where[d][0], res, where[d][2], where[d][1])
    loads, failed = load_pending(wh=wh)
    step("load")
    summary.failed.update(failed)
    for s in loads:
        if s.status == "held":
            summary.held.append(s)
        elif s.status in ("loaded", "released"):
            summary.loaded.append(s)
    if downstream:
        from countyhealth import identity, indicators, results

        summary.identity = identity.run(wh)
        step("identity")
        summary.results = results.refresh(wh)
        step("shared results")
        summary.indicators = indicators.refresh(wh)
        step("indicators")
    publish_run_reports(wh, started=run_started)
    step("run report")
    return summary


def _stream_failed(summary: RunSummary, key: str, exc: BaseException, source: SourceBase, stream_name: str) -> None:
    summary.failed[key] = f"{type(exc).__name__}: {privacy.scrub(str(exc))}"
    failures.record(stage="extract/validate", reason=summary.failed[key], source_id=source.source_id,
                    stream=stream_name, facility_code=source.facility_code)
    log.error("%s failed: %s", key, summary.failed[key])


def publish_run_reports(wh, *, started: dt.datetime, run_name: str | None = None) -> Path:
    """Great Expectations Data Docs for the batches validated since ``started``, and the HTML run report."""
    from countyhealth.validation import data_docs, report

    try:
        data_docs.build_data_docs(data_docs.batches_validated_since(started), run_name=run_name)
    except Exception as exc:  # noqa: BLE001 - Data Docs are a view; the run report still gets written
        log.warning("Data Docs not built: %s: %s", type(exc).__name__, privacy.scrub(str(exc))[:300])
    return report.write_report(wh, settings.reports_dir() / "run-report.html")
