"""Landing: atomic, immutable batches with manifests."""

import json

import pyarrow as pa
import pytest

from countyhealth import landing


def rows(n, start=0):
    return pa.table({"source_id": ["s"] * n, "source_record_id": [str(i) for i in range(start, start + n)],
                     "facility_code": ["F"] * n, "name": ["张三"] * n})


def test_batch_lands_in_bounded_parts_with_manifest(tmp_path):
    path, manifest = landing.write_batch("his_x", "patients", "person", [rows(7), rows(5, 7)],
                                         root=tmp_path, rows_per_file=4)
    assert manifest.rows == 12 and [f.rows for f in manifest.files] == [4, 4, 4]
    assert path == tmp_path / "his_x" / "patients" / manifest.batch_id
    assert landing.verify(path).rows == 12
    got = pa.Table.from_batches(list(landing.iter_batches(path)))
    assert got.num_rows == 12 and set(got.column("batch_id").to_pylist()) == {manifest.batch_id}
    assert json.loads((path / "manifest.json").read_text())["dataset"] == "person"


def test_failed_extraction_leaves_no_batch(tmp_path):
    with pytest.raises(RuntimeError):
        with landing.BatchWriter("his_x", "patients", "person", root=tmp_path) as w:
            w.write(rows(3))
            raise RuntimeError("source went away")
    assert landing.list_batches(root=tmp_path) == []


def test_tampered_file_is_detected(tmp_path):
    path, manifest = landing.write_batch("his_x", "patients", "person", [rows(3)], root=tmp_path)
    part = path / manifest.files[0].path
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(landing.LandingError, match="sha256"):
        landing.verify(path)


def test_cursor_end_is_the_highest_seen(tmp_path):
    with landing.BatchWriter("his_x", "labs", "lab_result", root=tmp_path, cursor_column="updated_at") as w:
        for v in ["2026-01-02T00:00:00", "2026-01-03T00:00:00", "2026-01-01T00:00:00"]:
            w.note_cursor(v)
        m = w.commit()
    assert m.cursor_end == "2026-01-03T00:00:00" and m.rows == 0 and len(m.files) == 1
