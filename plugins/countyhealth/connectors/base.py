"""What every connector kind is: a class that turns one stream of a source into raw Arrow record batches.

A kind implements :meth:`Connector.extract` (and, when it can, :meth:`Connector.check` and
:meth:`Connector.count`). It yields batches of at most ``stream.batch_size`` rows whose columns are the
source's own names and whose values are text (``None`` for absent): the landing zone keeps them as they came
and :mod:`countyhealth.connectors.mapping` does the typing later, where a bad value quarantines a row
instead of failing the extraction. Memory stays bounded by the batch size, not the source.

Incremental extraction is the same for every kind: the pipeline passes an :class:`ExtractWindow`
(``since`` = watermark − overlap, ``until`` = end of the data interval) and the connector returns rows whose
cursor lies in ``[since, until)``; :class:`CursorTracker` finds the highest cursor value landed, which
becomes the watermark once the batch is loaded.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from countyhealth.connectors.config import ResolvedConnection, resolve_connection
from countyhealth.connectors.typing import Cursor, SourceBase, StreamBase


class ExtractError(RuntimeError):
    """An extraction failed for a reason the county IT team can act on; the message names source and fix."""


@dataclass(frozen=True)
class ExtractWindow:
    since: dt.datetime | None = None  # inclusive lower bound on the cursor (watermark minus overlap)
    until: dt.datetime | None = None  # exclusive upper bound (end of the run's data interval)
    seen_files: frozenset[str] = frozenset()  # file kinds: sha256 of files already landed


@dataclass
class Extraction:
    """An extraction in progress: iterate ``batches``; after the batch has landed the pipeline calls
    ``on_landed(manifest)`` (file kinds archive their files there) and records ``extra`` in the manifest.

    A connector whose rows come in units that can fail on their own (a file of a drop) calls ``savepoint()``
    when a unit begins and ``rollback()`` when it fails, then goes on with the next unit: the consumer (the
    landing writer) drops what it landed since the savepoint. Batches are pulled one at a time, so the
    consumer has written every batch yielded before either call."""

    batches: Iterator[pa.RecordBatch]
    extra: dict = field(default_factory=dict)
    on_landed: Callable[[Any], None] | None = None
    savepoint: Callable[[], None] | None = None  # set by a consumer that can drop a failed unit's rows
    rollback: Callable[[], None] | None = None


def text(value: Any) -> str | None:
    """A source value as text, the way it would be printed: dates ISO, numbers without float noise."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) > 1e15 else str(int(value))
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


_TEXT_TYPES = {str, type(None)}


def _text_array(values: Sequence[Any]) -> pa.Array:
    # most 前置库 columns are text already: hand them to Arrow as they are (3x faster than a call per value)
    try:
        if set(map(type, values)) <= _TEXT_TYPES:
            arr = pa.array(values)  # inferring is ~4x faster than asking for pa.string() on a list of str
            return arr if arr.type == pa.string() else arr.cast(pa.string())  # all null: the null type
        return pa.array([text(v) for v in values], pa.string())
    except UnicodeEncodeError:  # a lone surrogate: one value Arrow cannot hold never fails the batch
        from countyhealth.landing import storable_text

        return pa.array([storable_text(text(v)) for v in values], pa.string())


def raw_batch(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """Rows of values → a record batch with every column as text."""
    cols = list(zip(*rows)) if rows else [() for _ in columns]
    return pa.record_batch([_text_array(col) for col in cols], names=list(columns))


def raw_batch_from_records(records: Sequence[dict]) -> pa.RecordBatch:
    """JSON-like records → text columns; nested objects flatten to ``a.b`` names, lists become JSON text."""
    import json

    flat: list[dict] = []
    names: dict[str, None] = {}
    for rec in records:
        row: dict = {}
        _flatten(rec, "", row, json)
        flat.append(row)
        names.update(dict.fromkeys(row))
    return pa.record_batch([_text_array([r.get(n) for r in flat]) for n in names], names=list(names))


def _flatten(value: Any, prefix: str, out: dict, json) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, json)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value, ensure_ascii=False)
    else:
        out[prefix] = value


def parse_cursor(value: str, cursor: Cursor) -> dt.datetime:
    if cursor.format:
        return dt.datetime.strptime(value.strip(), cursor.format)
    return dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")).replace(tzinfo=None)


def format_cursor(value: dt.datetime, cursor: Cursor) -> str:
    """A time written the way the source writes its cursor column (for string comparisons in its SQL)."""
    return value.strftime(cursor.format) if cursor.format else value.isoformat(sep=" ")


def cursor_times(col: pa.Array | pa.ChunkedArray, cursor: Cursor) -> pa.Array:
    """A cursor column's text as times (timestamp[us]); null where a value is absent or does not parse."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    fmt = cursor.format
    try:
        if fmt:
            return pc.strptime(pc.utf8_trim_whitespace(col), format=fmt, unit="us", error_is_null=True)
        return pc.cast(pc.replace_substring(pc.utf8_trim_whitespace(col), "T", " "), pa.timestamp("us"), safe=False)
    except pa.ArrowInvalid:  # mixed ISO forms: fall back to Python per value
        def one(v: str | None) -> dt.datetime | None:
            try:
                return parse_cursor(v, cursor) if v is not None else None
            except ValueError:
                return None

        return pa.array([one(v) for v in col.to_pylist()], pa.timestamp("us"))


def iso_time(value: dt.datetime | None) -> str | None:
    """A cursor time in the watermark's form (ISO-8601, no trailing zeros)."""
    return value.isoformat(timespec="microseconds").rstrip("0").rstrip(".") if value else None


class CursorTracker:
    """The highest cursor value seen in landed raw batches, as ISO-8601 (the watermark's form).

    Values that don't parse with the cursor's format are counted, not fatal: such rows still land and
    validation reports them; they just can't move the watermark. Rows without a value are counted too.
    """

    def __init__(self, cursor: Cursor | None, highest: dt.datetime | None = None):
        self.cursor = cursor
        self.highest: dt.datetime | None = highest
        self.unparsable = 0
        self.missing = 0

    def see(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self.cursor is None or self.cursor.column not in batch.schema.names or batch.num_rows == 0:
            return
        col = batch.column(self.cursor.column)
        parsed = cursor_times(col, self.cursor)
        self.unparsable += int(pc.sum(pc.and_(pc.is_valid(col), pc.is_null(parsed))).as_py() or 0)
        self.missing += col.null_count
        top = pc.max(parsed).as_py()
        if top is not None and (self.highest is None or top > self.highest):
            self.highest = top

    @property
    def value(self) -> str | None:
        return iso_time(self.highest)


class CursorOrderError(ExtractError):
    """Rows came out of cursor order where the extraction relies on it (resumable parts)."""


class CursorBoundary:
    """Cut a stream that comes in ascending cursor order into parts that end where the cursor value changes.

    After :meth:`split`, every row with a cursor value up to :attr:`committed` has been handed out as ``ready``
    and no later row can have one (the source is ordered), so an extraction that fails later can resume by
    reading from ``committed`` and dropping the rows at or before it (:attr:`after`): nothing is read twice
    into the batch, nothing is skipped, whether the source's lower bound is inclusive or exclusive. The rows
    sharing the highest value seen so far are ``tail``: they go into the next part, since more of them may follow.
    Rows whose cursor is absent or unparsable go with ``ready`` (they cannot be placed; validation reports them).
    """

    def __init__(self, cursor: Cursor, *, after: dt.datetime | None = None, where: str = ""):
        self.cursor, self.after, self.where = cursor, after, where
        self.committed: dt.datetime | None = after  # every row at or before it is in a committed part
        self.top: dt.datetime | None = after  # the highest cursor value seen
        self.skipped = 0  # rows of a resumed window that an earlier attempt had landed already

    def split(self, batch: pa.RecordBatch | pa.Table) -> tuple[pa.Table, pa.Table]:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if table.num_rows == 0 or self.cursor.column not in table.column_names:
            return table, table.slice(0, 0)
        times = cursor_times(table.column(self.cursor.column), self.cursor)
        if self.after is not None:
            keep = pc.fill_null(pc.greater(times, pa.scalar(self.after, pa.timestamp("us"))), True)
            self.skipped += table.num_rows - int(pc.sum(keep).as_py() or 0)
            table, times = table.filter(keep), times.filter(keep)
        valid = times.drop_null()
        if len(valid) == 0:
            return table, table.slice(0, 0)
        seq = valid if self.top is None else pa.concat_arrays([pa.array([self.top], pa.timestamp("us")), valid])
        if len(seq) > 1 and pc.any(pc.less(seq.slice(1), seq.slice(0, len(seq) - 1))).as_py():
            raise CursorOrderError(
                f"{self.where}: rows do not come in ascending order of cursor {self.cursor.column!r}, which "
                "resumable extraction relies on — for a REST stream remove `cursor.ordered` (the API does not "
                "sort by it); for a SQL stream give the cursor's `format` or use a column that sorts as time")
        top = pc.max(valid).as_py()
        at_top = pc.fill_null(pc.equal(times, pa.scalar(top, pa.timestamp("us"))), False)
        ready, tail = table.filter(pc.invert(at_top)), table.filter(at_top)
        if self.top is not None and top > self.top:
            self.committed = self.top  # the old top's rows (tail of before, or in ready) are all handed out
        below = pc.max(times.filter(pc.invert(at_top))).as_py()
        if below is not None and (self.committed is None or below > self.committed):
            self.committed = below
        self.top = top
        return ready, tail


class Connector:
    """Base of every kind. Subclasses set ``kind`` and ``config_model`` and implement :meth:`extract`."""

    kind: ClassVar[str]
    config_model: ClassVar[type[SourceBase]]
    needs_connection: ClassVar[bool] = True

    def __init__(self, source: SourceBase, connection: ResolvedConnection | None = None):
        self.source = source
        self.connection = connection

    @classmethod
    def from_source(cls, source: SourceBase) -> "Connector":
        conn = resolve_connection(source.connection, where=source.path or source.source_id) \
            if cls.needs_connection else None
        return cls(source, conn)

    def close(self) -> None:
        """Release what the connector holds open across streams (database connections, an HTTP session)."""
        session = getattr(self, "session", None)
        if session is not None:
            session.close()

    def stream(self, name: str) -> StreamBase:
        try:
            return self.source.streams[name]
        except KeyError:
            raise ExtractError(f"{self.source.path}: no stream {name!r}; streams: {', '.join(self.source.streams)}") \
                from None

    def check(self) -> None:
        """Connect and fail with a clear message if the source is unreachable or refuses us."""

    def count(self, stream_name: str, window: ExtractWindow = ExtractWindow()) -> int | None:
        """Rows the stream would extract in the window, when the source can say cheaply."""
        return None

    def extract(self, stream_name: str, window: ExtractWindow) -> Extraction:
        raise NotImplementedError

    def resumable(self, stream_name: str) -> bool:
        """Whether the stream's rows come in ascending cursor order, so a long extraction lands in parts and a
        failed one resumes after its last part (see :class:`CursorBoundary`)."""
        return False

    def preview(self, stream_name: str, limit: int = 5) -> pa.Table:
        """The first rows of a stream (for ``sources check``); default: the start of a full extraction."""
        extraction = self.extract(stream_name, ExtractWindow())
        taken: list[pa.RecordBatch] = []
        rows = 0
        for batch in extraction.batches:
            taken.append(batch.slice(0, limit - rows))
            rows += taken[-1].num_rows
            if rows >= limit:
                break
        close = getattr(extraction.batches, "close", None)
        if close:
            close()
        return pa.Table.from_batches(taken) if taken else pa.table({})
