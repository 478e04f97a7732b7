"""Sealed before it touches disk: after a simulated county's whole night, no file under the data dir holds a raw
resident ID number or mobile — every file read as data (Parquet column by column, DuckDB and SQLite table by
table, the rest as text) — and the landing zone is private (folders 0700, files 0600)."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import stat
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countyhealth import landing, pipeline, privacy
from countyhealth.simulate.county import CountyConfig, generate
from county_env import make_env

_RUN = re.compile(r"[0-9]{11,18}[Xx]?")  # a maximal run that could be an ID number or a mobile


def _truth_identifiers(county: Path) -> set[str]:
    out = set()
    with (county / "truth" / "residents.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out.update(v.upper() for v in (r["id_number"], r["phone"]) if v)
    return out


def _cells(path: Path):
    """Every value a file holds, as text."""
    if path.suffix == ".parquet":
        t = pq.read_table(path)
        for col in t.columns:
            yield from (str(v) for v in col.to_pylist() if v is not None)
    elif path.suffix == ".duckdb":
        con = duckdb.connect(str(path), read_only=True)
        try:
            for (schema, table) in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall():
                for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
                    yield from (str(v) for v in row if v is not None)
        finally:
            con.close()
    elif path.suffix in (".sqlite", ".db"):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
                    yield from (str(v) for v in row if v is not None)
        finally:
            con.close()
    else:
        yield path.read_bytes().decode("utf-8", errors="replace")


def _clear_identifiers(data: Path, truth: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(p for p in data.rglob("*") if p.is_file() and not p.name.endswith((".wal", ".lock"))):
        for cell in _cells(path):
            for run in _RUN.findall(cell):
                run = run.upper()
                if run in truth or run[-11:] in truth or run[:11] in truth:
                    key = str(path.relative_to(data))
                    found[key] = found.get(key, 0) + 1
    return found


@pytest.fixture(scope="module")
def small_county(tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "county"
    generate(out, CountyConfig(seed=5, residents=400, days=2, county_hospitals=1, townships=1,
                               villages_per_township=2))
    return out


@pytest.mark.slow
def test_no_file_under_the_data_dir_holds_a_clear_id_number_or_mobile(tmp_path, small_county, monkeypatch):
    env = make_env(tmp_path, small_county, monkeypatch)
    try:
        pipeline.run()
    finally:
        env.stop()
    truth = _truth_identifiers(env.county)
    assert len(truth) > 300
    # the scan can see one: the county's own source files hold them in clear
    assert _clear_identifiers(env.county, truth)
    assert _clear_identifiers(env.data, truth) == {}
    landed = [p for p in (env.data / "landing").rglob("*")]
    assert any(p.suffix == ".parquet" for p in landed)
    for p in [env.data / "landing", *landed]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p.relative_to(env.data), oct(mode))
    # and the rest the night keeps: the data dir is the boundary (0700), and what lies in it is private too — the
    # warehouse file, the run report, Data Docs and GX's results, the failure log, the key
    assert stat.S_IMODE(env.data.stat().st_mode) == 0o700
    kept = [p for p in env.data.rglob("*") if not p.name.endswith((".wal", ".lock"))]
    assert {"warehouse.duckdb", "run-report.html", "index.html"} <= {p.name for p in kept}
    open_to_others = [f"{p.relative_to(env.data)} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in kept
                      if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert open_to_others == []


def test_landed_rows_read_back_exactly_as_the_source_gave_them(tmp_path):
    rows = pa.table({"SFZH": ["350102199001011234", None, "35010219900101123x"],
                     "NOTE": ["家属电话 138 1234 5678，身份证350102199001011234", "无", None],
                     "PHONE": ["13812345678", "0591-8888888", ""],
                     "CODE": ["A01", "123456789012345", "B02"]})
    batch, m = landing.write_batch("his", "patients", ["person"], [rows], root=tmp_path,
                            sensitive_columns={"SFZH", "PHONE"})
    part = batch / m.files[0].path
    on_disk = pq.read_table(part)
    for name in ("SFZH", "NOTE", "PHONE", "CODE"):
        for value in on_disk.column(name).to_pylist():
            assert not value or not re.search(r"\d{11}", value.replace(" ", "")), (name, value)
    back = pa.Table.from_batches(list(landing.iter_batches(part.parent))).drop_columns([landing.ROW])
    assert back.to_pylist() == rows.to_pylist()


def test_free_text_is_scrubbed_and_person_rows_sealed_once(tmp_path):
    table = pa.table({"id_number": ["350102199001011234"], "phone": ["13812345678"],
                      "id_number_hash": [None], "phone_hash": [None],
                      "address": ["永泰县梧桐镇 电话13812345678"]}, schema=pa.schema(
        [(n, pa.string()) for n in ("id_number", "phone", "id_number_hash", "phone_hash", "address")]))
    once = privacy.protect_canonical("person", table)
    assert privacy.is_sealed(once.column("id_number")[0].as_py())
    assert once.column("id_number_hash")[0].as_py() is not None
    assert "13812345678" not in once.column("address")[0].as_py()
    assert privacy.protect_canonical("person", once).to_pylist() == once.to_pylist()  # the loader's pass changes nothing
    assert json.dumps(once.to_pylist(), ensure_ascii=False).count("1381234") == 0
