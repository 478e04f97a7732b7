"""``kind: hl7`` — HL7 v2 ORU^R01 lab result messages dropped as files by a LIS interface engine.

The worked example of a plug-in kind (docs/connectors.md walks through it): one class, registered under the
``countyhealth.connectors`` entry-point group in setup.cfg, with its own config model. It reuses the file
kind's inbox handling (sha256 dedup, archive, never delete) and parses messages with ``python-hl7`` (a small,
maintained parser that handles HL7's encoding characters and escapes; no need to hand-roll one).

Each OBX (one observation) becomes one raw row carrying its message's MSH, PID, PV1, ORC and OBR fields. Columns
are named by position as integration engineers read HL7: ``PID.5`` is the whole field, ``PID.5.1`` its
first component (first repetition), so a YAML maps ``report_number: OBR.3.1`` or ``value_text: OBX.5``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field

from countyhealth.connectors.base import ExtractError, raw_batch_from_records
from countyhealth.connectors.file import FileConnector, detect_encoding
from countyhealth.connectors.typing import SourceBase, StreamBase

_HEADER_SEGMENTS = ("MSH", "PID", "PV1", "ORC", "OBR")
_MSH_START = re.compile(r"(?m)^(?=MSH\|)")


# [START hl7_config]
class Hl7Stream(StreamBase):
    path: str = Field(..., description="inbox directory of .hl7 files (${VAR} allowed)")
    pattern: str = Field("*.hl7", description="glob of message files in the inbox")
    encoding: str = Field("auto", description="HL7 files from Chinese LIS are often GB18030 (MSH-18)")
    archive: str | None = Field(None, description="where ingested files go (default: `archive` beside the inbox)")
    rejected: str | None = Field(None, description="where an unreadable file goes, with its reason (default: "
                                                   "`rejected` beside the inbox)")


class Hl7Source(SourceBase):
    kind: Literal["hl7"]
    streams: dict[str, Hl7Stream] = Field(..., description="named streams (inboxes of message files)")
# [END hl7_config]


def _segment_fields(segment, name: str, out: dict) -> None:
    """Flatten a segment: ``SEG.i`` whole field (all repetitions) and ``SEG.i.j`` components of the first."""
    # python-hl7 keeps MSH-1 (the field separator) as field 1, so MSH numbering matches the standard
    for i in range(1, len(segment)):
        field = segment[i]
        out[f"{name}.{i}"] = str(field) or None
        first = field[0] if len(field) and not isinstance(field, str) else None
        if first is None or isinstance(first, str):
            out[f"{name}.{i}.1"] = out[f"{name}.{i}"]
            continue
        for j in range(len(first)):
            out[f"{name}.{i}.{j + 1}"] = str(first[j]) or None


def parse_messages(text: str) -> Iterator[dict]:
    """One record per OBX of every ORU message in ``text`` (a file may hold several messages)."""
    import hl7

    for chunk in _MSH_START.split(text.replace("\r\n", "\r").replace("\n", "\r")):
        chunk = chunk.strip("\r")
        if not chunk.startswith("MSH|"):
            continue
        try:
            msg = hl7.parse(chunk)
        except Exception as exc:  # noqa: BLE001 - python-hl7 raises ParseException and IndexError
            raise ValueError(f"not an HL7 v2 message ({type(exc).__name__})") from None
        header: dict = {}
        obr: dict = {}
        for seg in msg:
            name = str(seg[0])
            if name in _HEADER_SEGMENTS and name != "OBR":
                _segment_fields(seg, name, header)
            elif name == "OBR":
                obr = {}
                _segment_fields(seg, "OBR", obr)
            elif name == "OBX":
                row = dict(header)
                row.update(obr)
                _segment_fields(seg, "OBX", row)
                yield row


# [START hl7_connector]
class Hl7Connector(FileConnector):
    kind = "hl7"
    config_model = Hl7Source

    def read_file(self, stream: Hl7Stream, path: Path) -> Iterator[pa.RecordBatch]:
        encoding = detect_encoding(path) if stream.encoding == "auto" else stream.encoding
        try:
            text = path.read_text(encoding=encoding)
        except UnicodeDecodeError as exc:
            raise ExtractError(f"{self.source.path}: {path.name} is not valid {exc.encoding} text — set the "
                               "stream's `encoding`") from None
        try:
            records = list(parse_messages(text))
        except ValueError as exc:
            raise ExtractError(f"{self.source.path}: {path.name}: {exc} — the file must hold HL7 v2 messages "
                               "starting with MSH|") from None
        for start in range(0, len(records), stream.batch_size):
            chunk = records[start:start + stream.batch_size]
            for i, rec in enumerate(chunk, start + 1):
                rec["_file"], rec["_file_line"] = path.name, str(i)  # here: the observation's number in the file
            yield raw_batch_from_records(chunk)
# [END hl7_connector]
