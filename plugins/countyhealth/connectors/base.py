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
    ``on_landed(manifest)`` (file kinds archive their files there) and records ``extra`` in the manifest."""

    batches: Iterator[pa.RecordBatch]
    extra: dict = field(default_factory=dict)
    on_landed: Callable[[Any], None] | None = None


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


def raw_batch(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """Rows of values → a record batch with every column as text."""
    cols = list(zip(*rows)) if rows else [() for _ in columns]
    return pa.record_batch([pa.array([text(v) for v in col], pa.string()) for col in cols], names=list(columns))


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
    return pa.record_batch([pa.array([text(r.get(n)) for r in flat], pa.string()) for n in names], names=list(names))


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


class CursorTracker:
    """The highest cursor value seen in landed raw batches, as ISO-8601 (the watermark's form).

    Values that don't parse with the cursor's format are counted, not fatal: such rows still land and
    validation reports them; they just can't move the watermark.
    """

    def __init__(self, cursor: Cursor | None):
        self.cursor = cursor
        self.highest: dt.datetime | None = None
        self.unparsable = 0

    def see(self, batch: pa.RecordBatch) -> None:
        if self.cursor is None or self.cursor.column not in batch.schema.names or batch.num_rows == 0:
            return
        col = batch.column(self.cursor.column)
        fmt = self.cursor.format
        try:
            if fmt:
                parsed = pc.strptime(pc.utf8_trim_whitespace(col), format=fmt, unit="us", error_is_null=True)
            else:
                parsed = pc.cast(pc.replace_substring(pc.utf8_trim_whitespace(col), "T", " "), pa.timestamp("us"),
                                 safe=False)
        except pa.ArrowInvalid:  # mixed ISO forms: fall back to Python per value
            values = [self._py(v) for v in col.to_pylist()]
            parsed = pa.array(values, pa.timestamp("us"))
        self.unparsable += int(pc.sum(pc.and_(pc.is_valid(col), pc.is_null(parsed))).as_py() or 0)
        top = pc.max(parsed).as_py()
        if top is not None and (self.highest is None or top > self.highest):
            self.highest = top

    def _py(self, v: str | None) -> dt.datetime | None:
        if v is None:
            return None
        try:
            return parse_cursor(v, self.cursor)
        except ValueError:
            return None

    @property
    def value(self) -> str | None:
        return self.highest.isoformat(timespec="microseconds").rstrip("0").rstrip(".") if self.highest else None


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
