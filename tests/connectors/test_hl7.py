"""kind: hl7 — the plug-in example: ORU^R01 files (GB18030) become lab results through an ordinary YAML."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from countyhealth.connectors import connector_class
from countyhealth.connectors.base import ExtractWindow
from countyhealth.connectors.config import load_source
from countyhealth.connectors.mapping import map_dataset

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "sources" / "lis_h350125003.yaml"
MESSAGE = "\r".join([
    "MSH|^~\\&|LIS|H350125003|COUNTYHEALTH|HUB|20260301101500||ORU^R01|MSG{n}|P|2.5|||||CHN|GB18030",
    "PID|1||P000{n}^^^H350125003^PI~350125198001011234^^^CHN^NI||陈^𠮷||19800101|M|||永泰县樟城镇||13912345678",
    "OBR|1|ORD{n}|RPT{n}|PANEL^生化^L|||20260301083000|||||||20260301084500||||||||20260301101000|||F",
    "OBX|1|NM|A1101^空腹血糖^L||6.2|mmol/L|3.9-6.1|H|||F|||20260301100000",
    "OBX|2|ST|A1901^乙型肝炎表面抗原^L||阴性||阴性|N|||F",
    "OBX|3|NM|A1601^C反应蛋白^L||<0.5|mg/L|0-10|N|||C",
]) + "\r"



def test_oru_files_map_to_lab_results(tmp_path, monkeypatch):
    # the documented example source (docs/connectors.md includes it), pointed at this test's inbox
    monkeypatch.setenv("COUNTYHEALTH_COUNTY_DIR", str(tmp_path))
    inbox = tmp_path / "lis_h350125003" / "hl7"
    inbox.mkdir(parents=True)
    (inbox / "batch_0001.hl7").write_bytes((MESSAGE.format(n=1) + MESSAGE.format(n=2)).encode("gb18030"))
    source = load_source(EXAMPLE)
    conn = connector_class("hl7").from_source(source)
    raw = pa.Table.from_batches(list(conn.extract("lab_messages", ExtractWindow()).batches))
    assert raw.num_rows == 6  # 2 messages × 3 observations
    raw = raw.append_column("_row", pa.array(range(6), pa.int64()))
    stream = source.streams["lab_messages"]
    out = map_dataset(raw, stream.maps[0], source, stream, batch_id="b")
    assert out.issues.num_rows == 0
    t = out.table.to_pydict()
    assert t["source_record_id"][:3] == ["MSG1|1", "MSG1|2", "MSG1|3"]
    assert t["person_source_record_id"][0] == "P0001" and t["facility_code"][0] == "H350125003"
    assert t["item_code_local"][:3] == ["A1101", "A1901", "A1601"]
    assert t["value_numeric"][:3] == [6.2, None, 0.5] and t["value_operator"][2] == "<"
    assert t["result_status"][:3] == ["final", "final", "corrected"]
    assert t["report_at"][0] == dt.datetime(2026, 3, 1, 10, 10)
    assert raw.column("PID.5").to_pylist()[0] == "陈^𠮷"  # GB18030-only character survived
