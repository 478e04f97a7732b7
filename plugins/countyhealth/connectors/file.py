"""``kind: file`` — export files a member system drops into an inbox: CSV (GB18030 or UTF-8), XLSX, JSON lines.

The family-doctor contract platform and many county systems only export files. Each file is ingested once,
recognised by the sha256 of its content (a file dropped again under another name is not loaded twice);
after its batch has landed it is moved to the archive (``archive/<batch_id>/``), never deleted, so the
original bytes stay available. A file that cannot be read (bad encoding, a broken workbook, ragged CSV) never
blocks the others: what it landed is rolled back, it moves to the ``rejected`` folder with a ``.reason.txt``
beside it, and the rest of the drop loads. An empty or header-only file is recorded (it is not read again)
with a warning in the manifest. CSV is streamed with pyarrow's reader (transcoding GB18030 on the fly), XLSX
with openpyxl's read-only mode, so memory stays bounded by the batch size. Each row carries ``_file`` and
``_file_line`` so a quarantined row can be found in the original file.

Encoding ``auto`` reads UTF-8 (with or without BOM) when the file's start decodes as UTF-8 and GB18030
otherwise: GB18030 is a superset of GBK and GB2312, the encodings Chinese Windows software writes.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from countyhealth import privacy, settings
from countyhealth.landing import sha256_file
from countyhealth.connectors.base import Connector, Extraction, ExtractError, ExtractWindow, raw_batch, \
    raw_batch_from_records
from countyhealth.connectors.typing import FileSource, FileStream

log = logging.getLogger(__name__)


_FORMAT_BY_SUFFIX = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".json": "jsonl"}


def detect_encoding(path: Path, sample: int = 1 << 20) -> str:
    """``utf-8-sig`` when the file's first MB is UTF-8 (BOM or not), else ``gb18030``."""
    with path.open("rb") as fh:
        head = fh.read(sample)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a cut multi-byte char is fine
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "gb18030"


def inbox_files(stream, root: Path) -> list[Path]:
    """Files waiting in the inbox, oldest name first; half-written (temp, hidden, Office lock) files skipped."""
    if not root.is_dir():
        raise ExtractError(f"inbox {root} does not exist — check the stream's `path` (and the variables in it)")
    files = [p for p in root.glob(stream.pattern) if p.is_file()
             and not p.name.startswith((".", "~$")) and not p.name.endswith((".tmp", ".part", ".partial"))]
    return sorted(files, key=lambda p: (p.name, p.stat().st_mtime))


def resolve_dir(text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else settings.data_dir() / p


class FileConnector(Connector):
    kind = "file"
    config_model = FileSource
    needs_connection = False

    def inbox(self, stream: FileStream) -> Path:
        return resolve_dir(stream.path)

    def archive_dir(self, stream: FileStream) -> Path:
        return resolve_dir(stream.archive) if stream.archive else self.inbox(stream).parent / "archive"

    def rejected_dir(self, stream: FileStream) -> Path:
        rejected = getattr(stream, "rejected", None)
        return resolve_dir(rejected) if rejected else self.inbox(stream).parent / "rejected"

    def reject(self, stream: FileStream, path: Path, reason: str) -> Path:
        """Move an unreadable file aside with its reason beside it (never deleted: the member's own bytes)."""
        target = self.rejected_dir(stream)
        privacy.private_dir(target)  # the member's rows in clear: 0700, files 0600
        dest = target / path.name
        n = 1
        while dest.exists():
            dest = target / f"{path.stem}.{n}{path.suffix}"
            n += 1
        os.replace(path, dest)
        os.chmod(dest, 0o600)
        privacy.write_private(dest.with_name(dest.name + ".reason.txt"),
                              f"{dt.datetime.now().isoformat(timespec='seconds')} {self.source.path}: {reason}\n"
                              "Fix the file (or the stream's settings) and drop it into the inbox again.\n")
        return dest

    def check(self) -> None:
        for stream in self.source.streams.values():
            inbox_files(stream, self.inbox(stream))

    def count(self, stream_name: str, window: ExtractWindow = ExtractWindow()) -> int | None:
        stream = self.stream(stream_name)
        total = 0
        for path in inbox_files(stream, self.inbox(stream)):
            if sha256_file(path) not in window.seen_files:
                total += sum(b.num_rows for b in self.read_file(stream, path))
        return total

    def extract(self, stream_name: str, window: ExtractWindow) -> Extraction:
        stream = self.stream(stream_name)
        files, duplicates, seen = [], [], set(window.seen_files)
        for path in inbox_files(stream, self.inbox(stream)):
            digest = sha256_file(path)
            if digest in seen:
                duplicates.append({"name": path.name, "sha256": digest})
                continue
            seen.add(digest)
            files.append((path, digest))
        extra = {"files": [], "duplicate_files": duplicates, "rejected_files": [], "warnings": []}

        def batches() -> Iterator[pa.RecordBatch]:
            for path, digest in files:
                rows = 0
                if extraction.savepoint:
                    extraction.savepoint()
                try:
                    for batch in self.read_file(stream, path):
                        rows += batch.num_rows
                        yield batch
                except ExtractError as exc:
                    if rows and extraction.rollback is None:
                        raise  # a consumer that cannot drop the rows this file landed: fail, as before
                    if rows:
                        extraction.rollback()
                    reason = privacy.scrub(str(exc)).removeprefix(f"{self.source.path}: ")
                    moved = self.reject(stream, path, reason)
                    extra["rejected_files"].append({"name": path.name, "sha256": digest, "reason": reason,
                                                    "moved_to": str(moved.relative_to(moved.parents[1]))})
                    log.warning("%s: %s rejected (moved to %s): %s", self.source.path, path.name, moved.parent.name,
                                reason)
                    continue
                entry = {"name": path.name, "sha256": digest, "rows": rows}
                if rows == 0:
                    entry["warning"] = "no data rows (empty or header only)"
                    extra["warnings"].append(f"{path.name}: no data rows (empty or header only) — recorded, not "
                                             "read again; ask the member whether the export was complete")
                    log.warning("%s: %s has no data rows (empty or header only)", self.source.path, path.name)
                extra["files"].append(entry)

        def archive(manifest) -> None:
            privacy.private_dir(self.archive_dir(stream))
            target = self.archive_dir(stream) / manifest.batch_id
            privacy.private_dir(target)
            for item in [*extra["files"], *duplicates]:
                src = self.inbox(stream) / item["name"]
                if src.exists():
                    dest = target / item["name"]
                    n = 1
                    while dest.exists():
                        dest = target / f"{Path(item['name']).stem}.{n}{Path(item['name']).suffix}"
                        n += 1
                    os.replace(src, dest)
                    os.chmod(dest, 0o600)
            if duplicates:
                log.info("%s: %d file(s) already ingested before, archived without loading: %s", self.source.path,
                         len(duplicates), ", ".join(d["name"] for d in duplicates))

        extraction = Extraction(batches(), extra=extra, on_landed=archive)
        return extraction

    # ---- readers -----------------------------------------------------------------------------------------
    def read_file(self, stream: FileStream, path: Path) -> Iterator[pa.RecordBatch]:
        fmt = stream.format if stream.format != "auto" else _FORMAT_BY_SUFFIX.get(path.suffix.lower())
        if fmt is None:
            raise ExtractError(f"{self.source.path}: {path.name}: cannot tell the format from the extension — set "
                               "the stream's `format` or narrow its `pattern`")
        reader = {"csv": self._csv, "xlsx": self._xlsx, "jsonl": self._jsonl}[fmt]
        line = 0
        try:
            for batch in reader(stream, path):
                n = batch.num_rows
                batch = batch.append_column("_file", pa.array([path.name] * n, pa.string()))
                # data rows start on line 2 (after the header) for csv/xlsx, line 1 for jsonl
                first = 1 if fmt == "jsonl" else 2
                batch = batch.append_column("_file_line", pa.array([str(first + line + i) for i in range(n)]))
                line += n
                yield batch
        except UnicodeDecodeError as exc:
            raise ExtractError(f"{self.source.path}: {path.name} is not valid {exc.encoding} text at byte "
                               f"{exc.start} — set the stream's `encoding` (e.g. gb18030) or ask the member to "
                               "export again") from None
        except (pa.ArrowInvalid, csv.Error, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise ExtractError(f"{self.source.path}: {path.name} could not be read after {line} rows "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}) — ask "
                               "the member to export it again") from None

    def _encoding(self, stream: FileStream, path: Path) -> str:
        return detect_encoding(path) if stream.encoding == "auto" else stream.encoding

    def _csv(self, stream: FileStream, path: Path) -> Iterator[pa.RecordBatch]:
        encoding = self._encoding(stream, path)
        with path.open("r", encoding=encoding, newline="") as fh:
            header = next(csv.reader(fh, delimiter=stream.delimiter), None)
        if not header:
            return
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            raise ExtractError(f"{self.source.path}: {path.name} has repeated column names in its header")
        try:
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(encoding="utf8" if encoding in ("utf-8", "utf-8-sig", "utf8") else encoding,
                                               column_names=header, skip_rows=1, block_size=1 << 22),
                parse_options=pacsv.ParseOptions(delimiter=stream.delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                     strings_can_be_null=True, quoted_strings_can_be_null=True),
            )
        except pa.ArrowInvalid as exc:
            raise ExtractError(f"{self.source.path}: {path.name} is not a readable CSV ({exc}) — check "
                               "`delimiter` and `encoding`") from None
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            batch = pa.record_batch([_trim(c) for c in batch.columns], names=header)
            pending.append(batch)
            rows += batch.num_rows
            if rows >= stream.batch_size:
                yield from pa.Table.from_batches(pending).to_batches(max_chunksize=stream.batch_size)
                pending, rows = [], 0
        if pending:
            yield from pa.Table.from_batches(pending).to_batches(max_chunksize=stream.batch_size)

    def _xlsx(self, stream: FileStream, path: Path) -> Iterator[pa.RecordBatch]:
        import openpyxl

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises zipfile/KeyError/InvalidFileException
            raise ExtractError(f"{self.source.path}: {path.name} is not a readable XLSX workbook "
                               f"({type(exc).__name__}) — ask the member to export again") from None
        try:
            if stream.sheet and stream.sheet not in wb.sheetnames:
                raise ExtractError(f"{self.source.path}: {path.name} has no sheet {stream.sheet!r}; sheets: "
                                   f"{', '.join(wb.sheetnames)}")
            ws = wb[stream.sheet] if stream.sheet else wb.worksheets[0]
            rows = ws.iter_rows(values_only=True)
            header = next(rows, None)
            if not header:
                return
            width = max((i + 1 for i, h in enumerate(header) if h not in (None, "")), default=0)
            names = [str(h).strip() if h is not None else f"column_{i + 1}" for i, h in enumerate(header[:width])]
            chunk: list = []
            for row in rows:
                values = [_cell(v) for v in row[:width]] + [None] * (width - len(row))
                if all(v is None for v in values):
                    continue  # Excel's trailing empty rows
                chunk.append(values)
                if len(chunk) >= stream.batch_size:
                    yield raw_batch(names, chunk)
                    chunk = []
            if chunk:
                yield raw_batch(names, chunk)
        finally:
            wb.close()

    def _jsonl(self, stream: FileStream, path: Path) -> Iterator[pa.RecordBatch]:
        encoding = self._encoding(stream, path)
        chunk: list = []
        with path.open("r", encoding=encoding) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    chunk.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ExtractError(f"{self.source.path}: {path.name} line {n} is not JSON — fix or remove "
                                       "the line and drop the file again") from None
                if len(chunk) >= stream.batch_size:
                    yield raw_batch_from_records(chunk)
                    chunk = []
        if chunk:
            yield raw_batch_from_records(chunk)


def _trim(col: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _cell(value):
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()  # Excel dates arrive as midnight datetimes
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value

