"""``kind: sql`` — a member's HIS/LIS/PACS database or its 前置库, through SQLAlchemy.

Any SQLAlchemy URL works (SQLite, PostgreSQL, MySQL, SQL Server, Oracle with their drivers installed); the
URL comes from an Airflow connection or an environment variable. A stream reads a ``table`` (identifiers
are checked against the database by reflection and quoted by SQLAlchemy, never pasted into SQL) or a
``query`` (a SELECT the data engineer wrote; the incremental predicate is added around it with bound
parameters). Rows stream through a server-side cursor (``stream_results``, ``yield_per``) in batches of
``batch_size``, so memory does not grow with the table.

The cursor column may be a real timestamp or text (many 前置库 keep times as strings such as
``2026/03/01 08:05``): with text, give its ``format`` so the bounds are written the same way. Text cursors
must sort as times (fixed width, year first) for the database's string comparison to be right.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyarrow as pa
import sqlalchemy as sa

from countyhealth import privacy
from countyhealth.connectors.base import Connector, Extraction, ExtractError, ExtractWindow, format_cursor, raw_batch
from countyhealth.connectors.typing import SqlSource, SqlStream

_IDENT = re.compile(r"^[^\W\d][\w$]*$", re.UNICODE)  # letters (any script), digits, _ and $


def _decode_damaged_text(dbapi_connection, _record) -> None:
    # SQLite stores whatever bytes a client wrote as TEXT (a GBK client on a UTF-8 file): sqlite3 would fail the
    # whole stream on the first bad byte ("Could not decode to UTF-8", the value in the message). Decoded with
    # U+FFFD instead, the row reaches validation, whose text rule quarantines it naming the field.
    dbapi_connection.text_factory = lambda raw: raw.decode("utf-8", "replace")


class SqlConnector(Connector):
    kind = "sql"
    config_model = SqlSource

    def __init__(self, source, connection=None):
        super().__init__(source, connection)
        self._engine: sa.Engine | None = None
        self._tables: dict[str, sa.Table | list[str]] = {}  # reflected tables; a query's result columns

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            url = self.connection.sqlalchemy_url()
            try:
                # a small pool: the streams of a member extracted one after another reuse one connection (a
                # session per query was most of a small stream's extraction); checked before reuse, disposed
                # by close() at the end of the source's streams
                self._engine = sa.create_engine(url, pool_size=1, max_overflow=2, pool_pre_ping=True) \
                    if not url.startswith("sqlite") else sa.create_engine(url, pool_pre_ping=True)
                if url.startswith("sqlite"):
                    sa.event.listen(self._engine, "connect", _decode_damaged_text)
            except Exception as exc:  # noqa: BLE001 - bad URL or driver missing
                raise ExtractError(f"{self.source.path}: cannot use the connection's database URL "
                                   f"({type(exc).__name__}: {privacy.scrub(str(exc))}) — check the connection "
                                   "and that its database driver is installed") from None
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _fail(self, what: str, exc: Exception) -> ExtractError:
        msg = privacy.scrub(str(getattr(exc, "orig", None) or exc)).splitlines()[0][:300]
        return ExtractError(f"{self.source.path}: {what}: {type(exc).__name__}: {msg}")

    def _table(self, stream: SqlStream) -> sa.Table:
        key = f"{stream.db_schema}.{stream.table}"
        if key not in self._tables:
            for ident in filter(None, (stream.table, stream.db_schema)):
                if not _IDENT.match(ident):
                    raise ExtractError(f"{self.source.path}: {ident!r} is not a plain table or schema name — "
                                       "use `query:` for anything more than a name")
            try:
                self._tables[key] = sa.Table(stream.table, sa.MetaData(), schema=stream.db_schema,
                                             autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                raise ExtractError(f"{self.source.path}: table {stream.table!r} not found in the member's database "
                                   "— check `table:` (and `schema:`) against the vendor's schema") from None
            except sa.exc.SQLAlchemyError as exc:
                raise self._fail("cannot read the table definition", exc) from None
        return self._tables[key]

    def _select(self, stream: SqlStream, window: ExtractWindow, *, count: bool = False,
                columns: list[str] | None = None):
        """The statement for a window: reflected table + bound predicate, or the query wrapped likewise;
        ``columns``: only these (the reconciliation's narrow read of keys and cursor values)."""
        cursor = stream.cursor
        if stream.table:
            table = self._table(stream)
            cols = list(table.columns)
            if cursor and cursor.column not in table.columns:
                raise ExtractError(f"{self.source.path}: cursor column {cursor.column!r} is not a column of "
                                   f"{stream.table} — columns: {', '.join(c.name for c in cols)}")
            if columns is not None:
                missing = [c for c in columns if c not in table.columns]
                if missing:
                    raise ExtractError(f"{self.source.path}: {', '.join(map(repr, missing))} not a column of "
                                       f"{stream.table} — columns: {', '.join(c.name for c in cols)}")
                cols = [table.c[c] for c in columns]
            stmt = sa.select(sa.func.count()).select_from(table) if count else sa.select(*cols)
            if cursor:
                col = table.c[cursor.column]
                is_text = isinstance(col.type, sa.String)
                bound = (lambda t: format_cursor(t, cursor)) if is_text else (lambda t: t)
                if window.since:
                    stmt = stmt.where(col >= bound(window.since))
                if window.until:
                    stmt = stmt.where(col < bound(window.until))
                if not count:
                    stmt = stmt.order_by(col)
            return stmt, {}
        # a query: wrap it, quote the cursor column with the dialect's own quoting, bind the bounds
        if cursor:
            self._query_has(stream, cursor.column)
        quote = self.engine.dialect.identifier_preparer.quote
        picked = ", ".join(f"countyhealth_q.{quote(c)}" for c in columns) if columns else "*"
        sql = f"SELECT {'count(*)' if count else picked} FROM ({stream.query}) AS countyhealth_q"
        params: dict = {}
        if cursor:
            col = f"countyhealth_q.{quote(cursor.column)}"
            conds = []
            as_value = (lambda t: format_cursor(t, cursor)) if cursor.format else (lambda t: t)
            if window.since:
                conds.append(f"{col} >= :since")
                params["since"] = as_value(window.since)
            if window.until:
                conds.append(f"{col} < :until")
                params["until"] = as_value(window.until)
            if conds:
                sql += " WHERE " + " AND ".join(conds)
            if not count:
                sql += f" ORDER BY {col}"
        return sa.text(sql), params

    def _query_has(self, stream: SqlStream, column: str) -> None:
        """A query's cursor column must be one of its result columns (asked of the database, no rows read)."""
        key = f"query:{stream.query}"
        if key not in self._tables:
            try:
                with self.engine.connect() as conn:
                    self._tables[key] = list(conn.execute(sa.text(f"SELECT * FROM ({stream.query}) AS "
                                                                  "countyhealth_q WHERE 1 = 0")).keys())
            except sa.exc.SQLAlchemyError as exc:
                raise self._fail("the stream's query does not run", exc) from None
        columns = self._tables[key]
        if column not in columns:
            raise ExtractError(f"{self.source.path}: cursor column {column!r} is not a column of the stream's query "
                               f"— its columns: {', '.join(columns)}; select the rows' update time under that name")

    def check(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise self._fail("cannot connect to the member's database", exc) from None
        for name, stream in self.source.streams.items():
            if stream.table:
                self._table(stream)
            if stream.cursor:
                self._select(stream, ExtractWindow(), count=True)  # names a cursor column the rows don't have

    def count(self, stream_name: str, window: ExtractWindow = ExtractWindow()) -> int | None:
        stream = self.stream(stream_name)
        stmt, params = self._select(stream, window, count=True)
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(stmt, params).scalar())
        except sa.exc.SQLAlchemyError as exc:
            raise self._fail(f"cannot count stream {stream_name!r}", exc) from None

    def resumable(self, stream_name: str) -> bool:
        return self.stream(stream_name).cursor is not None  # rows come ORDER BY the cursor

    def extract(self, stream_name: str, window: ExtractWindow) -> Extraction:
        stream = self.stream(stream_name)
        stmt, params = self._select(stream, window)
        return Extraction(self._batches(stream_name, stream, stmt, params))

    def read_columns(self, stream_name: str, columns: list[str], window: ExtractWindow) -> Iterator[pa.RecordBatch]:
        """Only ``columns`` of the stream's rows in the window (as text, in cursor order): a narrow read."""
        stream = self.stream(stream_name)
        stmt, params = self._select(stream, window, columns=columns)
        return self._batches(stream_name, stream, stmt, params)

    def _batches(self, stream_name, stream: SqlStream, stmt, params) -> Iterator[pa.RecordBatch]:
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=stream.batch_size).execute(stmt, params)
                columns = list(result.keys())
                for rows in result.partitions(stream.batch_size):
                    yield raw_batch(columns, rows)
        except sa.exc.SQLAlchemyError as exc:
            raise self._fail(f"extracting stream {stream_name!r} failed", exc) from None
