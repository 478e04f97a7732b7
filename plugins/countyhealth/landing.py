"""The landing zone: every extraction lands as an immutable batch of Parquet files plus a manifest.

``landing/<source_id>/<stream>/<batch_id>/``::

    manifest.json          source, stream, target datasets, rows, sha256 of each file, cursor range, times
    part-00000.parquet     raw rows as the source gave them: its own column names, values as text,
                           plus ``_row`` (the row's position in the batch, the key quarantine refers to)
    ...
    validated/             written later by validation (canonical rows, quarantine, outcome.json)

Raw, not canonical, on purpose: when a mapping or a value map was wrong, fixing the YAML and re-validating
the landed batch repairs the data without asking a member's server again (dlt and Airbyte keep raw for the
same reason). A part's columns may differ from the previous part's (JSON pages that omit absent keys);
readers take each part as it is.

Files are written atomically (temp file, fsync, rename), and the manifest is written last: a batch
directory without a manifest is an interrupted extraction and is never validated or loaded. A long extraction
whose rows come in cursor order commits its parts as it goes (:meth:`BatchWriter.checkpoint`): ``progress.json``
lists the parts committed so far and where the extraction stands, and the next try of the stream resumes the
batch from there (:func:`incomplete_batches`, :meth:`BatchWriter.resume`). Nothing rewrites a landed batch;
later stages write beside it (e.g. ``validation/``) and any batch can be replayed.
Parallel tasks write only here; the warehouse has a single writer (DESIGN.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from countyhealth import privacy, settings

MANIFEST = "manifest.json"
PROGRESS = "progress.json"  # an incomplete, resumable batch: its committed parts and where it stands
ROW = "_row"  # position of a row in its batch: what quarantine and findings point at
UNIT_BUFFER_ROWS = 100_000  # rows of a unit that may fail (a file) held in memory before it gets parts of its own


@dataclass
class LandedFile:
    path: str  # relative to the batch directory
    rows: int
    sha256: str


@dataclass
class Manifest:
    source_id: str
    stream: str
    datasets: list[str]  # canonical datasets the stream maps to (validation makes one output per dataset)
    batch_id: str
    rows: int
    files: list[LandedFile]
    cursor_column: str | None
    cursor_start: str | None  # watermark the extraction started from (exclusive lower bound minus overlap)
    cursor_end: str | None  # highest cursor value seen: the watermark after this batch loads
    started_at: str
    ended_at: str
    extra: dict = field(default_factory=dict)  # connector-specific facts (e.g. files ingested, pages read)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        data = json.loads(text)
        data["files"] = [LandedFile(**f) for f in data["files"]]
        return cls(**data)


def new_batch_id(now: dt.datetime | None = None) -> str:
    """Sortable and unique: UTC time to the second plus a random suffix."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def batch_dir(source_id: str, stream: str, batch_id: str, root: Path | None = None) -> Path:
    return (root or settings.landing_dir()) / source_id / stream / batch_id


def storable_text(value: str | None) -> str | None:
    """Text Arrow, Parquet and the warehouses can hold: a lone surrogate (a driver's ``surrogateescape`` of invalid
    UTF-8, a JSON ``\\ud800``) becomes U+FFFD, which mapping then quarantines with its field
    (``<dataset>.conformance.text.<field>``); a valid surrogate pair is joined into its character."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def make_private_dirs(path: Path) -> None:
    """Create ``path`` (it must not exist) and any missing parents, each 0700: the landing zone holds personal
    data, sealed or not, and no other account on the machine lists it."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700)
        os.chmod(d, 0o700)  # mkdir's mode is cut by the umask
    if not missing:
        raise FileExistsError(path)


def make_private(path: Path) -> None:
    """Folders 0700 and files 0600 under ``path`` (what validation wrote beside a batch)."""
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class BatchWriter:
    """Write one batch: feed record batches (any size), get Parquet parts of bounded size and a manifest.

    Use as a context manager; the manifest is written by :meth:`commit`. Leaving the block without
    committing (an exception) removes the partial files, so a failed extraction leaves no batch behind.
    """

    def __init__(self, source_id: str, stream: str, datasets: list[str], *, batch_id: str | None = None,
                 root: Path | None = None, rows_per_file: int = 500_000, cursor_column: str | None = None,
                 cursor_start: str | None = None, sensitive_columns: Iterable[str] = ()):
        self.source_id, self.stream, self.datasets = source_id, stream, list(datasets)
        self.sensitive_columns = frozenset(sensitive_columns)  # sealed whole before they touch disk
        self.batch_id = batch_id or new_batch_id()
        self.dir = batch_dir(source_id, stream, self.batch_id, root)
        self.rows_per_file = rows_per_file
        self.cursor_column, self.cursor_start = cursor_column, cursor_start
        self.cursor_end: str | None = None
        self.schema: pa.Schema | None = None  # of the open part
        self.files: list[LandedFile] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._part_rows = 0
        self.started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.committed = False
        self.progress: dict | None = None  # the last checkpoint (what progress.json says)
        self._resumed = False
        self._saved: tuple[int, int] | None = None  # (files, rows) at the savepoint
        self._unit: list[pa.Table] | None = None  # rows of the unit since the savepoint, while held in memory
        self._unit_rows = 0

    @classmethod
    def resume(cls, path: Path, **kwargs) -> "BatchWriter":
        """A writer that continues the incomplete batch at ``path`` after its last checkpoint."""
        progress = json.loads((path / PROGRESS).read_text(encoding="utf-8"))
        writer = cls(progress["source_id"], progress["stream"], progress["datasets"], batch_id=progress["batch_id"],
                     root=path.parents[2], cursor_column=progress["cursor_column"],
                     cursor_start=progress["cursor_start"], **kwargs)
        writer.files = [LandedFile(**f) for f in progress["files"]]
        writer.rows, writer.cursor_end = progress["rows"], progress["cursor_end"]
        writer.started_at, writer.progress, writer._resumed = progress["started_at"], progress, True
        for stray in path.iterdir():  # parts written after the last checkpoint, by the attempt that failed
            if stray.name.startswith(("part-", ".part-")) and stray.name not in {f.path for f in writer.files}:
                stray.unlink()
        return writer

    def __enter__(self) -> "BatchWriter":
        if not self._resumed:
            make_private_dirs(self.dir)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed:
            return
        if self.progress is not None:  # keep the committed parts for the next try; drop the rest
            self._truncate(len(self.progress["files"]), self.progress["rows"])
            if exc is not None:
                self.progress.setdefault("failures", []).append(
                    {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "error": f"{type(exc).__name__}: {privacy.scrub(str(exc))[:300]}"})
                self._write_progress()
            return
        self._abort()

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append raw rows; ``_row`` (position in the batch) is added here."""
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if table.num_rows == 0:
            return
        if ROW in table.column_names:
            table = table.drop_columns([ROW])
        table = privacy.seal_columns(table, self.sensitive_columns)  # sealed before it touches disk
        table = table.append_column(ROW, pa.array(range(self.rows, self.rows + table.num_rows), pa.int64()))
        self.rows += table.num_rows
        if self._unit is not None:  # a unit that may still fail (a file): held back while it is small
            self._unit.append(table)
            self._unit_rows += table.num_rows
            if self._unit_rows >= UNIT_BUFFER_ROWS:
                self._spill_unit()
            return
        self._to_parts(table)

    def _to_parts(self, table: pa.Table) -> None:
        if self._writer is not None and not table.schema.equals(self.schema):
            self._close_part()  # the source's columns changed (e.g. a JSON page without some key): new part
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._open_part(table.schema)
            take = min(self.rows_per_file - self._part_rows, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take))
            self._part_rows += take
            offset += take
            if self._part_rows >= self.rows_per_file:
                self._close_part()

    def note_cursor(self, value: str | None) -> None:
        """Record a cursor value seen; the batch's cursor_end is the highest."""
        if value is not None and (self.cursor_end is None or value > self.cursor_end):
            self.cursor_end = value

    def _open_part(self, schema: pa.Schema) -> None:
        name = f"part-{len(self.files):05d}.parquet"
        self._tmp = self.dir / f".{name}.tmp"
        self.schema = schema
        self._tmp.touch(mode=0o600)
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        self._part_rows = 0

    def _close_part(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        with self._tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        final = self.dir / self._tmp.name[1:-4]
        os.replace(self._tmp, final)
        self.files.append(LandedFile(final.name, self._part_rows, sha256_file(final)))
        self._writer = None
        self._tmp = None

    def checkpoint(self, position: dict, *, extra: dict | None = None) -> None:
        """Commit the parts written so far: a failure after this keeps them, and the next try resumes the batch
        from ``position`` (what the extraction needs to go on: e.g. the cursor value every row up to which
        has landed)."""
        self._end_unit()
        self._close_part()
        self.progress = {"source_id": self.source_id, "stream": self.stream, "datasets": self.datasets,
                         "batch_id": self.batch_id, "rows": self.rows, "files": [asdict(f) for f in self.files],
                         "cursor_column": self.cursor_column, "cursor_start": self.cursor_start,
                         "cursor_end": self.cursor_end, "started_at": self.started_at, "position": position,
                         "extra": extra or {}, "failures": (self.progress or {}).get("failures", [])}
        self._write_progress()

    def _write_progress(self) -> None:
        atomic_write_bytes(self.dir / PROGRESS, json.dumps(self.progress, ensure_ascii=False, indent=1).encode())

    def savepoint(self) -> None:
        """Mark where a unit that may fail on its own (a file) begins; :meth:`rollback` drops what it wrote.

        The unit's rows are held in memory while they are few (a drop of many small files stays in few parts);
        past ``UNIT_BUFFER_ROWS`` the part before it is closed and the unit goes on into parts of its own."""
        self._end_unit()
        self._unit, self._unit_rows = [], 0
        self._saved = (len(self.files), self.rows)

    def rollback(self) -> None:
        if self._saved is None:
            raise LandingError("rollback without a savepoint")
        if self._unit is not None:  # still in memory: the parts hold nothing of it
            self._unit, self.rows = None, self._saved[1]
            return
        self._truncate(*self._saved)

    def _end_unit(self) -> None:
        unit, self._unit = self._unit, None
        for table in unit or ():
            self._to_parts(table)

    def _spill_unit(self) -> None:
        self._close_part()  # the rows before the unit are safe in their part
        self._saved = (len(self.files), self._saved[1])
        self._end_unit()

    def _truncate(self, files: int, rows: int) -> None:
        self._unit = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None
        for f in self.files[files:]:
            (self.dir / f.path).unlink(missing_ok=True)
        self.files, self.rows = self.files[:files], rows

    def commit(self, extra: dict | None = None) -> Manifest:
        self._end_unit()
        self._close_part()
        manifest = Manifest(  # an empty batch still lands: it records that the window was read
            self.source_id, self.stream, self.datasets, self.batch_id, self.rows, self.files,
            self.cursor_column, self.cursor_start, self.cursor_end, self.started_at,
            dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), extra or {},
        )
        atomic_write_bytes(self.dir / MANIFEST, json.dumps(asdict(manifest), ensure_ascii=False, indent=1).encode())
        (self.dir / PROGRESS).unlink(missing_ok=True)
        self.committed = True
        return manifest

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for path in self.dir.glob("*") if self.dir.exists() else []:
            path.unlink()
        if self.dir.exists():
            self.dir.rmdir()


class LandingError(RuntimeError):
    pass


def read_manifest(path: Path) -> Manifest:
    return Manifest.from_json((path / MANIFEST).read_text(encoding="utf-8"))


def verify(path: Path) -> Manifest:
    """Check every file against the manifest's sha256 and row count; raise LandingError naming the file."""
    manifest = read_manifest(path)
    for f in manifest.files:
        p = path / f.path
        if not p.exists():
            raise LandingError(f"batch {manifest.batch_id}: {f.path} is missing; re-extract the batch")
        if sha256_file(p) != f.sha256:
            raise LandingError(f"batch {manifest.batch_id}: {f.path} does not match its sha256; it was altered")
    return manifest


def iter_batches(path: Path, batch_size: int = 100_000) -> Iterator[pa.RecordBatch]:
    """Stream a landed batch's raw rows in bounded record batches (parts may differ in columns)."""
    manifest = read_manifest(path)
    for f in manifest.files:
        for rb in pq.ParquetFile(path / f.path).iter_batches(batch_size=batch_size):
            yield _opened(rb)


def find_batch(batch_id: str, root: Path | None = None) -> Path:
    """The directory of a committed batch, by id; LandingError naming the fix when there is none."""
    base = root or settings.landing_dir()
    found = [p.parent for p in base.glob(f"*/*/{batch_id}/{MANIFEST}")]
    if not found:
        raise LandingError(f"no landed batch {batch_id!r} under {base.name}/ (see `countyhealth batches list`)")
    return found[0]


def incomplete_batches(source_id: str, stream: str, root: Path | None = None) -> list[Path]:
    """Batches an extraction began and committed parts of but did not finish (resumable), oldest first."""
    base = root or settings.landing_dir()
    return sorted((p.parent for p in base.glob(f"{source_id}/{stream}/*/{PROGRESS}")
                   if not (p.parent / MANIFEST).exists()), key=lambda p: p.name)


def read_progress(path: Path) -> dict:
    return json.loads((path / PROGRESS).read_text(encoding="utf-8"))


def discard(path: Path) -> None:
    """Remove an incomplete batch (one that can no longer be resumed); never a committed one."""
    if (path / MANIFEST).exists():
        raise LandingError(f"batch {path.name} is committed; landed batches are never removed here")
    for p in path.iterdir():
        p.unlink()
    path.rmdir()


def list_batches(source_id: str | None = None, stream: str | None = None, root: Path | None = None) -> list[Path]:
    """Committed batches (those with a manifest), oldest first."""
    base = root or settings.landing_dir()
    pattern = f"{source_id or '*'}/{stream or '*'}/*/{MANIFEST}"
    return sorted((p.parent for p in base.glob(pattern)), key=lambda p: p.name)


def write_batch(source_id: str, stream: str, datasets: list[str], batches: Iterable[pa.RecordBatch | pa.Table],
                **kwargs) -> tuple[Path, Manifest]:
    """Convenience: land an iterable of batches in one go."""
    with BatchWriter(source_id, stream, datasets, **kwargs) as writer:
        for b in batches:
            writer.write(b)
        manifest = writer.commit()
    return writer.dir, manifest


def _opened(rb: pa.RecordBatch) -> pa.RecordBatch:
    """A landed record batch with its sealed values opened (in memory only: see privacy.seal_columns)."""
    table = privacy.open_columns(pa.Table.from_batches([rb]))
    return table.combine_chunks().to_batches()[0] if table.num_rows else rb
