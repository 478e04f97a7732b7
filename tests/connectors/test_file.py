"""kind: file on real files: GB18030 CSV, XLSX, JSON lines; each file once by content; archived, never deleted."""

from __future__ import annotations

import json

import openpyxl
import pyarrow as pa
import pytest

from countyhealth import landing
from countyhealth.connectors.base import ExtractError, ExtractWindow
from countyhealth.connectors.file import FileConnector, detect_encoding
from countyhealth.connectors.typing import FileSource

HEADER = ["记录号", "居民姓名", "身份证号", "签约日期", "服务包"]
ROWS = [["Q1", "陈𠮷", "35012519800101123X", "2026-03-01", "01"],  # 𠮷 exists in GB18030, not in GBK
        ["Q2", "林  芳", "", "2026-03-01", "02"],
        ["Q3", "黄伟", "350125195001011234", "2026-03-02", "03"]]


def make_source(inbox, archive, fmt="auto", encoding="auto", batch_size=1000):
    src = FileSource.model_validate({"kind": "file", "facility_code": "W1", "streams": {"contracts": {
        "path": str(inbox), "archive": str(archive), "pattern": "qianyue_*", "format": fmt, "encoding": encoding,
        "batch_size": batch_size, "dataset": "contract",
        "fields": {"source_record_id": "记录号", "person_source_record_id": "记录号", "contract_number": "记录号",
                   "team_code": "服务包", "package_type": "服务包", "sign_date": "签约日期",
                   "begin_date": "签约日期", "end_date": "签约日期", "status": {"value": "signed"}}}}})
    src.source_id, src.path = "contracts", "sources/contracts.yaml"
    return FileConnector(src)


def write_csv(path, rows=ROWS, encoding="gb18030"):
    text = "\r\n".join(",".join(r) for r in [HEADER, *rows]) + "\r\n"
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path, rows=ROWS):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    ws.append([None] * 5)  # Excel's trailing empty row
    wb.save(path)
    return path


@pytest.fixture
def inbox(tmp_path):
    d = tmp_path / "inbox"
    d.mkdir()
    return d


def test_gb18030_csv_is_really_gb18030_and_reads_exactly(inbox, tmp_path):
    path = write_csv(inbox / "qianyue_20260301.csv")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    with pytest.raises(UnicodeEncodeError):
        "陈𠮷".encode("gbk")  # why GB18030 and not GBK
    assert detect_encoding(path) == "gb18030"
    conn = make_source(inbox, tmp_path / "archive")
    table = pa.Table.from_batches(list(conn.extract("contracts", ExtractWindow()).batches))
    assert table.column("居民姓名").to_pylist() == ["陈𠮷", "林  芳", "黄伟"]
    assert table.column("身份证号").to_pylist() == ["35012519800101123X", None, "350125195001011234"]  # "" → null
    assert table.column("_file").to_pylist() == ["qianyue_20260301.csv"] * 3
    assert table.column("_file_line").to_pylist() == ["2", "3", "4"]


def test_utf8_with_bom_and_xlsx_and_jsonl(inbox, tmp_path):
    write_csv(inbox / "qianyue_1.csv", encoding="utf-8-sig")
    write_xlsx(inbox / "qianyue_2.xlsx")
    (inbox / "qianyue_3.jsonl").write_text("\n".join(json.dumps(dict(zip(HEADER, r)), ensure_ascii=False)
                                                    for r in ROWS) + "\n", encoding="utf-8")
    conn = make_source(inbox, tmp_path / "archive")
    extraction = conn.extract("contracts", ExtractWindow())
    batches = list(extraction.batches)
    assert [b.num_rows for b in batches] == [3, 3, 3]
    for b in batches:
        assert b.column("记录号").to_pylist() == ["Q1", "Q2", "Q3"]
        assert b.column("居民姓名").to_pylist()[0] == "陈𠮷"
    assert [f["rows"] for f in extraction.extra["files"]] == [3, 3, 3]


def test_each_file_once_by_content_then_archived_never_deleted(inbox, tmp_path):
    archive = tmp_path / "archive"
    write_csv(inbox / "qianyue_20260301.csv")
    conn = make_source(inbox, archive)
    extraction = conn.extract("contracts", ExtractWindow())
    with landing.BatchWriter("contracts", "contracts", ["contract"], root=tmp_path / "landing") as w:
        for b in extraction.batches:
            w.write(b)
        manifest = w.commit(extra=extraction.extra)
    extraction.on_landed(manifest)
    assert list(inbox.iterdir()) == []
    assert (archive / manifest.batch_id / "qianyue_20260301.csv").exists()
    digest = manifest.extra["files"][0]["sha256"]
    # the member drops the same export again under a new name: recognised, archived, not ingested
    write_csv(inbox / "qianyue_20260301_resend.csv")
    again = conn.extract("contracts", ExtractWindow(seen_files=frozenset({digest})))
    assert list(again.batches) == []
    assert again.extra["duplicate_files"][0]["name"] == "qianyue_20260301_resend.csv"
    again.on_landed(landing.Manifest("contracts", "contracts", ["contract"], "b2", 0, [], None, None, None, "", ""))
    assert (archive / "b2" / "qianyue_20260301_resend.csv").exists()


def test_half_written_files_are_ignored_and_bad_encoding_names_the_fix(inbox, tmp_path):
    write_csv(inbox / ".qianyue_x.csv.tmp")
    write_csv(inbox / "qianyue_x.csv.part")
    conn = make_source(inbox, tmp_path / "archive", encoding="utf-8")
    assert list(conn.extract("contracts", ExtractWindow()).batches) == []
    write_csv(inbox / "qianyue_gb.csv")
    extraction = conn.extract("contracts", ExtractWindow())
    assert list(extraction.batches) == []
    [rejected] = extraction.extra["rejected_files"]
    assert rejected["name"] == "qianyue_gb.csv" and "set the stream's `encoding`" in rejected["reason"]
    reason = (tmp_path / "rejected" / "qianyue_gb.csv.reason.txt").read_text(encoding="utf-8")
    assert "not valid utf-8" in reason and not (inbox / "qianyue_gb.csv").exists()


def test_large_csv_comes_in_bounded_batches(inbox, tmp_path):
    rows = [[f"Q{i}", "陈伟", "", "2026-03-01", "01"] for i in range(25_000)]
    write_csv(inbox / "qianyue_big.csv", rows)
    conn = make_source(inbox, tmp_path / "archive", batch_size=4000)
    batches = list(conn.extract("contracts", ExtractWindow()).batches)
    assert sum(b.num_rows for b in batches) == 25_000 and max(b.num_rows for b in batches) <= 4000
