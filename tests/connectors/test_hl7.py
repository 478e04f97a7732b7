"""kind: hl7 — the plug-in example: ORU^R01 files (GB18030) become lab results through an ordinary YAML."""

from __future__ import annotations

import datetime as dt
import textwrap

import pyarrow as pa

from countyhealth.connectors import connector_class
from countyhealth.connectors.base import ExtractWindow
from countyhealth.connectors.config import load_source
from countyhealth.connectors.mapping import map_dataset

MESSAGE = "\r".join([
    "MSH|^~\\&|LIS|H350125003|COUNTYHEALTH|HUB|20260301101500||ORU^R01|MSG{n}|P|2.5|||||CHN|GB18030",
    "PID|1||P000{n}^^^H350125003^PI~350125198001011234^^^CHN^NI||陈^𠮷||19800101|M|||永泰县樟城镇||13912345678",
    "OBR|1|ORD{n}|RPT{n}|PANEL^生化^L|||20260301083000|||||||20260301084500||||||||20260301101000|||F",
    "OBX|1|NM|A1101^空腹血糖^L||6.2|mmol/L|3.9-6.1|H|||F|||20260301100000",
    "OBX|2|ST|A1901^乙型肝炎表面抗原^L||阴性||阴性|N|||F",
    "OBX|3|NM|A1601^C反应蛋白^L||<0.5|mg/L|0-10|N|||C",
]) + "\r"

YAML = """
kind: hl7
facility_code: H350125003
code_system: his_vendor_a
streams:
  lab_messages:
    path: {inbox}
    archive: {archive}
    primary_key: [MSH.10, OBX.1]
    dataset: lab_result
    fields:
      person_source_record_id: PID.3.1
      facility_code: MSH.4
      report_number: OBR.3.1
      collected_at: {{column: OBR.7, format: "%Y%m%d%H%M%S"}}
      received_at: {{column: OBR.14, format: "%Y%m%d%H%M%S"}}
      report_at: {{column: OBR.22, format: "%Y%m%d%H%M%S"}}
      item_code_local: OBX.3.1
      item_name_local: OBX.3.2
      value_numeric: {{column: OBX.5, transform: [numeric_part]}}
      value_operator: {{column: OBX.5, transform: [comparator]}}
      value_text: OBX.5
      unit: OBX.6
      reference_range: OBX.7
      abnormal_flag: {{column: OBX.8, transform: [abnormal_arrow]}}
      result_status: {{column: OBX.11, map: {{F: final, C: corrected, P: preliminary, X: cancelled}}}}
"""


def test_oru_files_map_to_lab_results(tmp_path):
    inbox, archive = tmp_path / "hl7", tmp_path / "archive"
    inbox.mkdir()
    (inbox / "batch_0001.hl7").write_bytes((MESSAGE.format(n=1) + MESSAGE.format(n=2)).encode("gb18030"))
    cfg = tmp_path / "lis_h350125003.yaml"
    cfg.write_text(textwrap.dedent(YAML.format(inbox=inbox, archive=archive)), encoding="utf-8")
    source = load_source(cfg, tmp_path)
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
