"""Landing: atomic, immutable raw batches with manifests."""

import json

import pyarrow as pa
import pytest

from countyhealth import landing


def rows(n, start=0, **extra):
    cols = {"PATIENT_ID": [str(i) for i in range(start, start + n)], "NAME": ["张三"] * n}
    cols.update({k: [v] * n for k, v in extra.items()})
    return pa.table(cols)


def test_batch_lands_in_bounded_parts_with_manifest(tmp_path):
    path, manifest = landing.write_batch("his_x", "patients", ["person"], [rows(7), rows(5, 7)],
                                         root=tmp_path, rows_per_file=4)
    assert manifest.rows == 12 and [f.rows for f in manifest.files] == [4, 4, 4]
    assert path == tmp_path / "his_x" / "patients" / manifest.batch_id
    assert landing.verify(path).rows == 12
    got = pa.Table.from_batches(list(landing.iter_batches(path)))
    assert got.column("_row").to_pylist() == list(range(12))  # positions are the batch's row keys
    assert got.column("PATIENT_ID").to_pylist() == [str(i) for i in range(12)]
    assert json.loads((path / "manifest.json").read_text())["datasets"] == ["person"]
    assert landing.find_batch(manifest.batch_id, root=tmp_path) == path


def test_changed_columns_start_a_new_part(tmp_path):
    path, manifest = landing.write_batch("ph", "records", ["person"], [rows(3), rows(2, 3, PHONE="1")],
                                         root=tmp_path)
    assert [f.rows for f in manifest.files] == [3, 2]
    parts = list(landing.iter_batches(path))
    assert "PHONE" not in parts[0].schema.names and "PHONE" in parts[1].schema.names


def test_failed_extraction_leaves_no_batch(tmp_path):
    with pytest.raises(RuntimeError):
        with landing.BatchWriter("his_x", "patients", ["person"], root=tmp_path) as w:
            w.write(rows(3))
            raise RuntimeError("source went away")
    assert landing.list_batches(root=tmp_path) == []
    assert not (tmp_path / "his_x" / "patients").exists() or not any((tmp_path / "his_x" / "patients").iterdir())


def test_tampered_file_is_detected(tmp_path):
    path, manifest = landing.write_batch("his_x", "patients", ["person"], [rows(3)], root=tmp_path)
    part = path / manifest.files[0].path
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(landing.LandingError, match="sha256"):
        landing.verify(path)


def test_cursor_end_is_the_highest_seen_and_empty_batches_land(tmp_path):
    with landing.BatchWriter("his_x", "labs", ["lab_result"], root=tmp_path, cursor_column="updated_at") as w:
        for v in ["2026-01-02T00:00:00", "2026-01-03T00:00:00", "2026-01-01T00:00:00"]:
            w.note_cursor(v)
        m = w.commit()
    assert m.cursor_end == "2026-01-03T00:00:00" and m.rows == 0 and m.files == []
    assert landing.list_batches(root=tmp_path)[0].name == m.batch_id
    assert list(landing.iter_batches(landing.list_batches(root=tmp_path)[0])) == []


def test_unknown_batch_id_names_the_fix(tmp_path):
    with pytest.raises(landing.LandingError, match="batches list"):
        landing.find_batch("nope", root=tmp_path)


def test_a_failed_unit_is_rolled_back_and_small_units_share_parts(tmp_path, monkeypatch):
    """A drop of many small files lands in few parts; a file that fails leaves nothing, before or after it spills."""
    import pyarrow as pa

    from countyhealth import landing

    def rows(n, tag):
        return pa.table({"k": [f"{tag}{i}" for i in range(n)]})

    monkeypatch.setattr(landing, "UNIT_BUFFER_ROWS", 50)
    with landing.BatchWriter("s", "t", ["facility"], root=tmp_path) as w:
        for i in range(10):  # ten small files
            w.savepoint()
            w.write(rows(3, f"f{i}-"))
        w.savepoint()
        w.write(rows(20, "bad-"))  # fails while held in memory
        w.rollback()
        w.savepoint()
        w.write(rows(40, "big-"))
        w.write(rows(40, "big-"))  # past the buffer: its own parts
        w.rollback()
        w.savepoint()
        w.write(rows(2, "last-"))
        m = w.commit()
    keys = [k for b in landing.iter_batches(w.dir) for k in b.column("k").to_pylist()]
    positions = [r for b in landing.iter_batches(w.dir) for r in b.column("_row").to_pylist()]
    assert m.rows == len(keys) == 32 and not any(k.startswith(("bad", "big")) for k in keys)
    assert positions == list(range(32)) and len(m.files) <= 2
    assert sorted(p.name for p in w.dir.iterdir()) == sorted([f.path for f in m.files] + ["manifest.json"])
