"""The regional warehouse: numbered migrations and the idempotent Arrow loader.

One setting picks the engine (``settings.warehouse_url()``): DuckDB, embedded, is the default; PostgreSQL is
production. Both are driven through SQLAlchemy, and each gets its fast path for bulk loads:

- DuckDB scans the Arrow batch in place (``register``) and upserts with ``INSERT ... ON CONFLICT``;
- PostgreSQL COPYs the batch (CSV written by pyarrow) into a temporary staging table, then
  ``INSERT ... SELECT DISTINCT ON ... ON CONFLICT DO UPDATE``.

Upserts are keyed on (``source_id``, ``source_record_id``) and never let an older version of a record
overwrite a newer one (``source_updated_at``), so replaying any landed batch leaves the warehouse as it was.
A watermark passed to :meth:`Warehouse.load` is written in the same transaction as the rows: after a crash
either both the rows and the new watermark are there, or neither.

Migrations are plain SQL files, ``sql/<dialect>/NNNN_name.sql`` (same numbers for both dialects), applied in
order and recorded with their sha256 in ``schema_version``; an applied file that changed is an error
(one mechanism, no Alembic: the DDL stays readable by a county DBA). DuckDB allows one writer process per file,
so connections are short-lived (``NullPool``) — except for a whole ``pipeline run`` in one process
(``Warehouse(held=True)``), which keeps its connections for the night instead of opening ~150 (≈12 ms each):
nothing else may write meanwhile anyway (the run lock), and readers get the lock message either way.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.pool import NullPool, QueuePool

from countyhealth import model, privacy, settings

log = logging.getLogger(__name__)

KEY = ("source_id", "source_record_id")
# not compared when deciding whether a re-read row changed: lineage, and ciphertexts (their hashes are compared)
_NOT_CONTENT = {"batch_id", "id_number", "phone"}
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Watermark:
    """How far a (source, stream) has been safely landed *and* loaded. Cursor values are ISO-8601 text
    (or zero-padded), so they compare as strings; a replayed old batch never moves a watermark back."""

    source_id: str
    stream: str
    cursor_value: str
    batch_id: str


@dataclass(frozen=True)
class LoadResult:
    dataset: str
    rows_in: int  # rows handed to the loader
    duplicates: int  # rows repeating a key within this load (the last one wins)
    rows_loaded: int  # distinct keys written or confirmed (rows_in - duplicates)
    rows_written: int = 0  # of those, inserted or changed
    rows_unchanged: int = 0  # already there as they are (an overlap re-read, a replay) or older than what is there


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationError(RuntimeError):
    pass


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def retry_on_lock(fn: Callable, *, timeout: float = 900.0, what: str = "the warehouse"):
    """Run ``fn()``; while another process holds the DuckDB file, wait and retry (up to ``timeout`` s).

    DuckDB lets one process open a file read-write and then nobody else may open it at all; the pipeline's
    writers run one at a time, but a reader (an extract task reading its watermark, the CLI) can meet one.
    """
    deadline = time.monotonic() + timeout
    pause = 0.2
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - duckdb raises IOException wrapped by SQLAlchemy
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                if _is_lock_error(exc):
                    raise RuntimeError(f"{what} stayed locked by another process for {timeout:.0f} s — is a load "
                                       "stuck? (DuckDB allows one open process at a time)") from None
                raise
            log.info("%s is locked by another process; retrying in %.1fs", what, pause)
            time.sleep(pause + random.uniform(0, pause / 2))
            pause = min(pause * 2, 10.0)


def _private_file(path: str) -> None:
    # DuckDB creates its file (and WAL) with the process umask: 0600, as the landing zone's
    for p in (path, f"{path}.wal"):
        try:
            if os.stat(p).st_mode & 0o077:
                os.chmod(p, 0o600)
        except FileNotFoundError:
            pass


def create_engine(url: str | None = None, *, held: bool = False) -> sa.Engine:
    """The warehouse's engine; ``held``: keep DuckDB connections open until :meth:`sa.Engine.dispose`."""
    url = url or settings.warehouse_url()
    pool = {"poolclass": QueuePool, "pool_size": 2, "max_overflow": 8} if held else {"poolclass": NullPool}
    if url.startswith("duckdb"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            if Path(path).resolve().parent == settings.data_dir():
                privacy.private_data_dir()  # the file holds the county's health records: its folder is 0700
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, **pool)
            sa.event.listen(engine, "connect", lambda *_: _private_file(path))
            return engine
        return sa.create_engine(url, **pool)
    return sa.create_engine(url, pool_pre_ping=True)


def migrations(dialect: str, sql_dir: Path | None = None) -> list[Migration]:
    folder = (sql_dir or settings.sql_dir()) / dialect
    if not folder.is_dir():
        raise MigrationError(f"no migrations for dialect {dialect!r}: expected a folder {folder.name}/ under sql/")
    found = []
    for path in sorted(folder.glob("*.sql")):
        m = _MIGRATION_RE.match(path.name)
        if not m:
            raise MigrationError(f"sql/{dialect}/{path.name}: migration files must be named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"sql/{dialect}/ has two migrations with the same number")
    return found


class Warehouse:
    """The warehouse behind one SQLAlchemy URL."""

    def __init__(self, url: str | None = None, engine: sa.Engine | None = None, *, held: bool = False):
        self.engine = engine or create_engine(url, held=held)
        self.dialect = self.engine.dialect.name  # "duckdb" or "postgresql"
        if self.dialect not in ("duckdb", "postgresql"):
            raise ValueError(f"unsupported warehouse dialect {self.dialect!r}: use a duckdb:// or postgresql+psycopg:// URL")

    # ---- migrations -------------------------------------------------------------------------
    def applied_versions(self) -> dict[int, str]:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("schema_version"):
                return {}
            rows = conn.execute(sa.text("SELECT version, checksum FROM schema_version")).all()
        return {int(v): c for v, c in rows}

    def migrate(self, sql_dir: Path | None = None) -> list[int]:
        """Apply pending migrations in order; returns the versions applied now."""
        applied_now: list[int] = []
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # one migrator at a time across processes (e.g. parallel Airflow tasks starting up)
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(4711001)"))
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "checksum VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            done = {int(v): c for v, c in conn.execute(sa.text("SELECT version, checksum FROM schema_version"))}
            for mig in migrations(self.dialect, sql_dir):
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"sql/{self.dialect}/{mig.path.name} changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                conn.exec_driver_sql(mig.sql)
                conn.execute(
                    sa.text("INSERT INTO schema_version (version, name, checksum) VALUES (:v, :n, :c)"),
                    {"v": mig.version, "n": mig.name, "c": mig.checksum},
                )
                applied_now.append(mig.version)
                log.info("applied migration %04d_%s on %s", mig.version, mig.name, self.dialect)
        return applied_now

    # ---- watermarks -------------------------------------------------------------------------
    def watermark(self, source_id: str, stream: str) -> str | None:
        def read():
            with self.engine.connect() as conn:
                return conn.execute(
                    sa.text("SELECT cursor_value FROM watermark WHERE source_id = :s AND stream = :t"),
                    {"s": source_id, "t": stream},
                ).scalar()

        return retry_on_lock(read) if self.dialect == "duckdb" else read()

    def begin(self):
        """A write transaction; on DuckDB waits while another process holds the file."""
        if self.dialect != "duckdb":
            return self.engine.begin()
        return retry_on_lock(lambda: _entered(self.engine.begin()))

    @staticmethod
    def _advance_watermark(conn: sa.Connection, wm: Watermark) -> None:
        conn.execute(
            sa.text(
                "INSERT INTO watermark (source_id, stream, cursor_value, batch_id, updated_at) "
                "VALUES (:s, :t, :c, :b, CURRENT_TIMESTAMP) "
                "ON CONFLICT (source_id, stream) DO UPDATE SET cursor_value = excluded.cursor_value, "
                "batch_id = excluded.batch_id, updated_at = excluded.updated_at "
                "WHERE watermark.cursor_value IS NULL OR excluded.cursor_value > watermark.cursor_value"
            ),
            {"s": wm.source_id, "t": wm.stream, "c": wm.cursor_value, "b": wm.batch_id},
        )

    # ---- loading ----------------------------------------------------------------------------
    def load(
        self,
        dataset: str,
        data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch],
        *,
        watermark: Watermark | None = None,
        connection: sa.Connection | None = None,
    ) -> LoadResult:
        """Upsert canonical rows of ``dataset`` and (optionally) advance a watermark, in one transaction.

        Pass ``connection`` to join a transaction the caller already holds (e.g. to write a batch audit
        row atomically with the data).
        """
        if isinstance(data, (pa.Table, pa.RecordBatch)):
            batches: Iterable = [data]
        else:
            batches = data
        if connection is not None:
            return self._load(connection, dataset, batches, watermark)
        with self.engine.begin() as conn:
            return self._load(conn, dataset, batches, watermark)

    def _load(self, conn, dataset, batches, watermark) -> LoadResult:
        rows_in = seen_keys = written = 0
        upsert = self._upsert_duckdb if self.dialect == "duckdb" else self._upsert_postgres
        for batch in batches:
            table = model.conform(dataset, batch)
            if table.num_rows == 0:
                continue
            table = table.append_column("_pos", pa.array(range(rows_in, rows_in + table.num_rows), pa.int64()))
            rows_in += table.num_rows
            keys, changed = upsert(conn, dataset, table)
            seen_keys += keys
            written += changed
        if watermark is not None:
            self._advance_watermark(conn, watermark)
        return LoadResult(dataset, rows_in, rows_in - seen_keys, seen_keys, written, seen_keys - written)

    @staticmethod
    def _update_clause(dataset: str) -> tuple[str, str]:
        cols = [f.name for f in model.fields(dataset) if f.name not in KEY]
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols)
        # never let an older version overwrite a newer one; and an unchanged row is left alone, so a re-read
        # (the watermark overlap, a replayed batch) changes nothing — not even the batch that brought the row.
        # Encrypted columns differ on every encryption: their keyed hashes say whether the value changed.
        content = [c for c in cols if c not in _NOT_CONTENT]
        changed = " OR ".join(f"excluded.{c} IS DISTINCT FROM {dataset}.{c}" for c in content)
        guard = (
            f"({dataset}.source_updated_at IS NULL OR excluded.source_updated_at IS NULL "
            f"OR excluded.source_updated_at >= {dataset}.source_updated_at) AND ({changed})"
        )
        return sets, guard

    def _upsert_duckdb(self, conn: sa.Connection, dataset: str, table: pa.Table) -> tuple[int, int]:
        """(distinct keys, rows inserted or changed): the upsert's own count leaves out the rows its guard kept."""
        raw = conn.connection.driver_connection  # duckdb connection inside the SQLAlchemy transaction
        cols = ", ".join(f.name for f in model.fields(dataset))
        sets, guard = self._update_clause(dataset)
        raw.register("_incoming", table)
        try:
            distinct = raw.execute(
                "SELECT count(*) FROM (SELECT DISTINCT source_id, source_record_id FROM _incoming)"
            ).fetchone()[0]
            written = raw.execute(
                f"INSERT INTO {dataset} ({cols}) SELECT {cols} FROM _incoming "
                "QUALIFY row_number() OVER (PARTITION BY source_id, source_record_id "
                "ORDER BY source_updated_at DESC NULLS LAST, _pos DESC) = 1 "
                f"ON CONFLICT (source_id, source_record_id) DO UPDATE SET {sets} WHERE {guard}"
            ).fetchall()  # DuckDB 2 wants every result consumed before the connection does other work
        finally:
            raw.unregister("_incoming")
        return int(distinct), int(written[0][0]) if written else 0

    def _upsert_postgres(self, conn: sa.Connection, dataset: str, table: pa.Table) -> tuple[int, int]:
        names = [f.name for f in model.fields(dataset)]
        cols = ", ".join(names)
        sets, guard = self._update_clause(dataset)
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS _incoming_{dataset} (LIKE {dataset}, _pos BIGINT) ON COMMIT DROP"
        )
        conn.exec_driver_sql(f"TRUNCATE _incoming_{dataset}")
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        raw = conn.connection.driver_connection  # psycopg 3 connection in the same transaction
        with raw.cursor() as cur:
            with cur.copy(f"COPY _incoming_{dataset} ({cols}, _pos) FROM STDIN WITH (FORMAT csv)") as copy:
                view = buf.getbuffer()
                for start in range(0, len(view), 1 << 20):
                    copy.write(view[start : start + (1 << 20)])
                del view
        distinct = conn.exec_driver_sql(
            f"SELECT count(*) FROM (SELECT DISTINCT source_id, source_record_id FROM _incoming_{dataset}) d"
        ).scalar()
        result = conn.exec_driver_sql(
            f"INSERT INTO {dataset} ({cols}) SELECT DISTINCT ON (source_id, source_record_id) {cols} "
            f"FROM _incoming_{dataset} ORDER BY source_id, source_record_id, source_updated_at DESC NULLS LAST, _pos DESC "
            f"ON CONFLICT (source_id, source_record_id) DO UPDATE SET {sets} WHERE {guard}"
        )
        return int(distinct), max(int(result.rowcount), 0)

    def insert_arrow(self, conn: sa.Connection, table_name: str, data: pa.Table) -> int:
        """Append an Arrow table whose columns are a subset of ``table_name``'s, inside ``conn``'s transaction
        (DuckDB scans it in place; PostgreSQL COPYs it). For audit-like tables without upsert semantics."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", table_name):
            raise ValueError(f"not a table name: {table_name!r}")
        if data.num_rows == 0:
            return 0
        cols = ", ".join(data.column_names)
        if self.dialect == "duckdb":
            raw = conn.connection.driver_connection
            raw.register("_append", data)
            try:
                raw.execute(f"INSERT INTO {table_name} ({cols}) SELECT {cols} FROM _append").fetchall()
            finally:
                raw.unregister("_append")
        else:
            buf = io.BytesIO()
            pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            with conn.connection.driver_connection.cursor() as cur:
                with cur.copy(f"COPY {table_name} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write(buf.getvalue())
        return data.num_rows

    # ---- inspection -------------------------------------------------------------------------
    def count(self, table: str) -> int:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
            raise ValueError(f"not a table name: {table!r}")
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar())

    def checksum(self, dataset: str) -> str:
        """Order-independent content checksum of a dataset table (for idempotency checks)."""
        names = [f.name for f in model.fields(dataset)]
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT {', '.join(names)} FROM {dataset} ORDER BY source_id, source_record_id").all()
        digest = hashlib.sha256()
        for row in rows:
            digest.update(repr(tuple(_canonical(v) for v in row)).encode())
        return digest.hexdigest()


class _entered:
    """Enter a SQLAlchemy transaction context now (so a lock error surfaces inside retry_on_lock) and hand
    the entered connection to the caller's ``with``."""

    def __init__(self, ctx):
        self._ctx = ctx
        self._conn = ctx.__enter__()

    def __enter__(self):
        return self._conn

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _canonical(value):
    # DuckDB and PostgreSQL return the same values with different Python types at times (Decimal vs float)
    if isinstance(value, float):
        return round(value, 6)
    return value
