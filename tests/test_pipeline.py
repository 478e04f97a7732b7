"""The pipeline on a simulated county: every batch reconciles, every injected defect is accounted for, the
circuit breaker holds a dirty batch while the others load, reruns change nothing, a watermark moves only with
its rows."""

from __future__ import annotations

import collections
import datetime as dt
import sqlite3

import pytest
import sqlalchemy as sa

from countyhealth import landing, pipeline
from countyhealth.simulate.county import CountyConfig, generate
from countyhealth.warehouse import Warehouse
from county_env import defects_by_record, make_env

QUARANTINE_KINDS = {"blank_required", "implausible_value", "unknown_code", "future_date", "termination_pair",
                    "overlapping_contract"}


@pytest.fixture(scope="module")
def template_county(tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "county"
    generate(out, CountyConfig(seed=11, residents=3000, days=3, county_hospitals=2, townships=2,
                               villages_per_township=3))
    return out


@pytest.fixture
def env(tmp_path, template_county, monkeypatch):
    e = make_env(tmp_path, template_county, monkeypatch)
    yield e
    e.stop()


def audit(wh):
    with wh.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM batch_audit"))]


def quarantined(wh):
    with wh.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM quarantine"))]


def test_full_run_reconciles_and_accounts_for_every_injected_defect(env):
    wh = Warehouse()
    summary = pipeline.run(downstream=False)
    assert summary.failed == {} and summary.held == []
    rows = audit(wh)
    for r in rows:
        assert r["rows_extracted"] == r["rows_loaded"] + r["rows_quarantined"] + r["rows_duplicate"], r
        assert r["status"] == "loaded"
    # rows extracted per source table = rows the source holds (truth)
    counts = env.expected_counts()["rows"]
    table_of = {"patients": ("PAT_MASTER_INDEX", "hz_jbxx"), "visits": ("PAT_VISIT", "mz_jzjl"),
                "lab_results": ("LAB_RESULT", "jy_jg"), "exam_reports": ("EXAM_REPORT", "jc_bg"),
                "health_records": ("health_record",), "followups": ("followup",), "contracts": ("contracts",),
                "facilities": ("facilities",)}
    extracted = collections.Counter()
    for r in rows:
        if r["dataset"] == "person" and r["stream"] == "contracts":
            continue  # the contract export maps each row to two datasets
        extracted[(r["source_id"], r["stream"])] += r["rows_extracted"]
    for (sid, stream), n in extracted.items():
        table = next(t for t in table_of[stream] if t in counts[sid])
        assert n == counts[sid][table], (sid, stream)
    # every injected defect is quarantined; nothing else is
    expected = {key for key, kinds in defects_by_record(env).items() if kinds & QUARANTINE_KINDS}
    got = {(q["source_id"], q["source_record_id"]) for q in quarantined(wh)}
    assert expected, "the simulated county should carry defects"
    assert got == expected, {"missed": sorted(expected - got)[:10], "unexpected": sorted(got - expected)[:10]}
    # duplicates the vendor's sync job sent are counted, not loaded twice
    dup_defects = collections.Counter(k[0] for k, kinds in defects_by_record(env).items() if "duplicate_row" in kinds)
    for sid, n in dup_defects.items():
        assert sum(r["rows_duplicate"] for r in rows if r["source_id"] == sid) >= n
    # the quarantine names the rule and never shows an ID number in full
    for q in quarantined(wh):
        assert q["rule_id"].count(".") >= 2 and q["row_json"]
        assert not any(len(tok) == 18 and tok[:17].isdigit() for tok in q["row_json"].replace('"', " ").split())


def test_rerunning_changes_nothing_and_watermarks_move_only_with_loads(env):
    wh = Warehouse()
    pipeline.run(downstream=False)
    before = {ds: wh.checksum(ds) for ds in ("person", "lab_result", "contract")}
    marks = dict(((s, t), wh.watermark(s, t)) for s, t in [("his_w350125101", "lab_results"),
                                                           ("public_health", "health_records")])
    second = pipeline.run(downstream=False)  # nothing new at the sources: the overlap re-reads a few rows
    assert {ds: wh.checksum(ds) for ds in before} == before
    assert all(wh.watermark(*k) == v for k, v in marks.items())
    assert all(s.status == "loaded" for s in second.loaded)
    # a new day at the sources: only the new rows arrive, the watermark moves on with them
    env.advance(1)
    third = pipeline.run(downstream=False)
    assert wh.watermark("his_w350125101", "lab_results") >= marks[("his_w350125101", "lab_results")]
    assert sum(third.extracted.values()) < sum(second.extracted.values()) + 10_000
    for r in audit(wh):
        assert r["rows_extracted"] == r["rows_loaded"] + r["rows_quarantined"] + r["rows_duplicate"]


def test_extracted_but_never_loaded_is_read_again(env):
    wh = Warehouse()
    wh.migrate()
    m = pipeline.extract("his_w350125101", "lab_results", wh=wh)
    assert m.rows > 0 and wh.watermark("his_w350125101", "lab_results") is None  # landed, not loaded
    # the run crashes here; the next run extracts from the old watermark again and loads both batches
    pipeline.run(downstream=False)
    assert wh.watermark("his_w350125101", "lab_results") == m.cursor_end
    with wh.engine.connect() as conn:
        n = conn.exec_driver_sql("SELECT count(*) FROM lab_result WHERE source_id = 'his_w350125101'").scalar()
    loaded = sum(r["rows_loaded"] for r in audit(wh) if r["batch_id"] == m.batch_id)
    assert n == loaded == m.rows - sum(r["rows_quarantined"] + r["rows_duplicate"] for r in audit(wh)
                                      if r["batch_id"] == m.batch_id)


def _biggest_vendor_b_lab(env):
    """The vendor-B township with the most results: its batch is over min_rows whatever the simulator's draws."""
    def results_in(path):
        with sqlite3.connect(path) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return db.execute("SELECT count(*) FROM jy_jg").fetchone()[0] if "jy_jg" in tables else -1
    return max(sorted((env.county / "his").glob("W*.sqlite")), key=results_in)


def test_circuit_breaker_holds_a_dirty_batch_while_other_sources_load(env):
    # a township's LIS upgrade writes garbage report times into most of its results — the vendor-B township with
    # the most results, so that its batch is over the circuit breaker's min_rows whatever the simulator's draws
    dirty = _biggest_vendor_b_lab(env)
    dirty_source = f"his_{dirty.stem.lower()}"
    db = sqlite3.connect(dirty)
    db.execute("UPDATE jy_jg SET bgsj = 'N/A' WHERE rowid % 3 != 0")
    db.commit()
    db.close()
    wh = Warehouse()
    summary = pipeline.run(downstream=False)
    held = [s for s in summary.held if s.source_id == dirty_source]
    assert [h.stream for h in held] == ["lab_results"]
    assert wh.watermark(dirty_source, "lab_results") is None  # did not move
    with wh.engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM lab_result WHERE source_id = '{dirty_source}'").scalar() == 0
        assert conn.exec_driver_sql(f"SELECT count(*) FROM lab_result WHERE source_id <> '{dirty_source}'").scalar() > 0
        status, message = conn.exec_driver_sql(
            f"SELECT status, message FROM batch_audit WHERE source_id = '{dirty_source}' AND stream = 'lab_results'").one()
    assert status == "held" and "lab_result.conformance.parse.report_at" in message
    # the county IT team looks, decides the rest is good, releases it: failing rows go to quarantine
    batch_id = held[0].batch_id
    from click.testing import CliRunner

    from countyhealth.validation.commands import batches

    listed = CliRunner().invoke(batches, ["list", "--held"])
    assert batch_id in listed.output and "HELD" in listed.output
    result = CliRunner().invoke(batches, ["release", batch_id, "--reason", "LIS upgrade; vendor fixing", "--load"])
    assert result.exit_code == 0, result.output
    with wh.engine.connect() as conn:
        loaded = conn.exec_driver_sql(f"SELECT count(*) FROM lab_result WHERE source_id = '{dirty_source}'").scalar()
        q = conn.execute(sa.text("SELECT count(DISTINCT row_number) FROM quarantine WHERE batch_id = :b"),
                         {"b": batch_id}).scalar()
        status, message = conn.execute(sa.text("SELECT status, message FROM batch_audit WHERE batch_id = :b"),
                                       {"b": batch_id}).one()
    assert loaded > 0 and q > loaded and status == "released" and "LIS upgrade" in message
    assert wh.watermark(dirty_source, "lab_results") is not None


def test_a_held_batch_never_blocks_the_newer_batches_of_its_stream(env):
    # a township's LIS writes garbage for a night, then the vendor repairs the rows: the next night's batch of
    # the same stream reads the held batch's window again and loads; the held batch is superseded, not released
    dirty = _biggest_vendor_b_lab(env)
    source_id = f"his_{dirty.stem.lower()}"
    with sqlite3.connect(dirty) as db:
        db.execute("CREATE TABLE bgsj_kept AS SELECT rowid AS r, bgsj FROM jy_jg")
        db.execute("UPDATE jy_jg SET bgsj = 'N/A' WHERE rowid % 3 != 0")
    wh = Warehouse()
    first = pipeline.run(downstream=False)
    held = [s.batch_id for s in first.held if s.source_id == source_id and s.stream == "lab_results"]
    assert len(held) == 1 and wh.watermark(source_id, "lab_results") is None and not first.ok
    with sqlite3.connect(dirty) as db:  # the vendor's repair (the update time left as it was, as vendors do)
        db.execute("UPDATE jy_jg SET bgsj = (SELECT bgsj FROM bgsj_kept WHERE r = jy_jg.rowid)")
        expected = db.execute("SELECT count(*) FROM jy_jg").fetchone()[0]
    second = pipeline.run(downstream=False)
    loaded = [s for s in second.loaded if s.source_id == source_id and s.stream == "lab_results"]
    assert loaded and all(s.batch_id != held[0] for s in loaded)
    assert second.held == [] and second.ok  # the night is green: nothing waits for a reviewer any more
    assert wh.watermark(source_id, "lab_results") is not None
    with wh.engine.connect() as conn:
        in_warehouse = conn.execute(sa.text("SELECT count(*) FROM lab_result WHERE source_id = :s"),
                                    {"s": source_id}).scalar()
        status, message, by = conn.execute(sa.text("SELECT DISTINCT status, message, superseded_by FROM batch_audit "
                                                   "WHERE batch_id = :b"), {"b": held[0]}).one()
        stale = conn.execute(sa.text("SELECT count(*) FROM quarantine WHERE batch_id = :b"), {"b": held[0]}).scalar()
    assert in_warehouse > expected // 2  # the repaired rows arrived (the garbage night had a third clean at most)
    assert status == "superseded" and by == loaded[0].batch_id and by in message and stale == 0
    third = pipeline.run(downstream=False)  # and it stays that way
    assert third.held == [] and [s.status for s in pipeline.load_pending()[0] if s.batch_id == held[0]] == ["skipped"]
    # releasing it now would put the garbage night's values back over the repaired ones: refused in one line
    from click.testing import CliRunner

    from countyhealth.cli import main
    out = CliRunner().invoke(main, ["batches", "release", held[0], "--reason", "looks fine", "--load"])
    assert out.exit_code != 0 and "superseded" in out.output and by in out.output and "Traceback" not in out.output


def test_a_later_batch_covers_a_held_one_by_time_not_by_the_text_of_its_bounds():
    # cursor bounds come in more than one ISO form ("T" or a space, 10:00:00.5 or 10:00:00.500000): as text,
    # "2026-03-01 10:00:00" sorts before "2026-03-01T09:00:00" and "…00.5" before "…00.500000"
    from types import SimpleNamespace

    engine = sa.create_engine("duckdb:///:memory:")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE batch_audit (batch_id VARCHAR, source_id VARCHAR, stream VARCHAR, "
                             "status VARCHAR, cursor_start VARCHAR, cursor_end VARCHAR)")
        conn.exec_driver_sql("INSERT INTO batch_audit VALUES ('b2', 's', 'lab', 'loaded', '2026-03-01 09:30:00', "
                             "'2026-03-03T00:00:00'), ('b3', 's', 'lab', 'loaded', '2026-03-01T08:00:00', "
                             "'2026-03-02T10:00:00.5')")
        held = SimpleNamespace(source_id="s", stream="lab", batch_id="b1", cursor_start="2026-03-01T09:00:00",
                               cursor_end="2026-03-02T10:00:00.500000")
        assert pipeline._read_again_by(conn, held) == "b3"  # b2 starts after the held window does: not a cover
        held.cursor_end = "2026-03-02T10:00:00.6"
        assert pipeline._read_again_by(conn, held) is None  # b2 starts too late; b3 ends before it


def test_revalidating_after_a_mapping_fix_repairs_a_held_batch(env):
    # a new vendor build writes status 已审核(终) that the YAML doesn't know yet: every row fails the value map
    db = sqlite3.connect(env.county / "his" / "W350125101.sqlite")
    db.execute("UPDATE jy_jg SET zt = '已审核(终)'")
    db.commit()
    db.close()
    summary = pipeline.run(downstream=False)
    held = [s for s in summary.held if s.source_id == "his_w350125101" and s.stream == "lab_results"]
    assert held
    vendor_b = env.sources / "_vendors" / "his_vendor_b.yaml"
    vendor_b.write_text(vendor_b.read_text(encoding="utf-8").replace("审核: final,", "审核: final, 已审核(终): final,"),
                        encoding="utf-8")
    from click.testing import CliRunner

    from countyhealth.validation.commands import batches

    result = CliRunner().invoke(batches, ["revalidate", held[0].batch_id, "--load"])
    assert result.exit_code == 0 and "still HELD" not in result.output, result.output
    wh = Warehouse()
    with wh.engine.connect() as conn:
        assert conn.exec_driver_sql(
            "SELECT count(*) FROM lab_result WHERE source_id = 'his_w350125101' AND result_status = 'final'").scalar() > 0


def test_a_reconciliation_mismatch_refuses_the_batch(env):
    import pyarrow.parquet as pq

    wh = Warehouse()
    wh.migrate()
    m = pipeline.extract("his_w350125101", "patients", wh=wh)
    path = landing.batch_dir("his_w350125101", "patients", m.batch_id)
    pipeline.validate(path)
    clean = path / "validated" / "person" / "clean.parquet"
    table = pq.read_table(clean)
    pq.write_table(table.slice(1), clean)  # a row lost between validation and load
    with pytest.raises(pipeline.ReconciliationError, match="rows extracted but"):
        pipeline.load_batch(path, wh=wh)
    assert wh.count("person") == 0 and wh.watermark("his_w350125101", "patients") is None


def test_a_night_loads_in_one_transaction_and_a_bad_batch_blocks_only_its_stream(env, monkeypatch):
    import pyarrow.parquet as pq

    wh = Warehouse()
    wh.migrate()
    paths = []
    for stream in ("patients", "lab_results", "visits"):
        m = pipeline.extract("his_w350125101", stream, wh=wh)
        paths.append(landing.batch_dir("his_w350125101", stream, m.batch_id))
    outcomes = pipeline.validate_batches([(p, None) for p in paths], wh=wh)
    assert all(isinstance(o, pipeline.BatchOutcome) for o in outcomes.values())
    begun = []
    real = Warehouse.begin
    monkeypatch.setattr(Warehouse, "begin", lambda self: begun.append(1) or real(self))
    clean = paths[0] / "validated" / "person" / "clean.parquet"
    table = pq.read_table(clean)
    pq.write_table(table.slice(1), clean)  # the patients batch lost a row: the set fails, then batch by batch
    loads, failed = pipeline.load_pending(wh=wh)
    assert list(failed) == [f"his_w350125101/patients/{paths[0].name}"] and "rows extracted but" in \
        next(iter(failed.values()))
    assert sorted(s.stream for s in loads) == ["lab_results", "visits"] and len(begun) == 1 + 3
    assert wh.count("person") == 0 and wh.watermark("his_w350125101", "patients") is None
    assert wh.watermark("his_w350125101", "lab_results") is not None
    pq.write_table(table, clean)  # repaired: the rest of the night in one transaction
    begun.clear()
    loads, failed = pipeline.load_pending(wh=wh)
    assert not failed and [s.stream for s in loads if s.status == "loaded"] == ["patients"] and len(begun) == 1


def _contract_rows(env) -> tuple[list[str], list[dict]]:
    """The contract platform's exports as loaded (CSV days only: GB18030, as the platform writes them)."""
    import csv
    import io

    header, rows = [], []
    for path in sorted((env.county / "contracts" / "archive").rglob("qianyue_*.csv")):
        reader = csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030")))
        header = reader.fieldnames
        rows.extend(reader)
    return header, rows


def test_a_second_contract_signed_on_a_later_night_is_quarantined_against_the_loaded_one(env):
    import csv
    import io

    from countyhealth.connectors.config import get_source
    from countyhealth.resident_id import parse

    only_contracts = {"contracts": get_source("contracts")}
    pipeline.run(downstream=False, sources=only_contracts)
    header, rows = _contract_rows(env)
    defective = {k[1] for k in defects_by_record(env) if k[0] == "contracts"}
    signed = [r for r in rows if r["事件"] == "签约" and r["状态"] == "已签约" and r["记录号"] not in defective
              and parse(r["身份证号"] or "").id18]
    by_number = collections.Counter(r["协议编号"] for r in rows)
    signed = [r for r in signed if by_number[r["协议编号"]] == 1]  # not renewed or terminated since
    assert len(signed) >= 3, "the simulated county should have signed contracts to build on"
    first, renewed, ended = signed[:3]
    day = max(dt.date.fromisoformat(r["生效日期"]) for r in (first, renewed, ended)) + dt.timedelta(days=1)

    def term(begin: dt.date) -> dict:
        return {"签约日期": day.isoformat(), "生效日期": begin.isoformat(),
                "到期日期": (begin + dt.timedelta(days=364)).isoformat(), "更新时间": f"{day} 09:00:00"}

    new = [
        # another team signs a resident whose contract (loaded last night) is still running: the error
        {**first, **term(day), "记录号": "QYNEW0001", "协议编号": "XYNEW0001", "团队编码": "T99999"},
        # a renewal of a loaded contract: the same contract number, the next term — not an overlap
        {**renewed, **term(dt.date.fromisoformat(renewed["到期日期"]) + dt.timedelta(days=1)),
         "记录号": "QYNEW0002", "事件": "续约"},
        # a resident ends their contract and signs with another team the same day: not an overlap either
        {**ended, "记录号": "QYNEW0003", "事件": "解约", "状态": "已解约", "解约日期": day.isoformat(),
         "解约原因": "4", "更新时间": f"{day} 09:00:00"},
        {**ended, **term(day), "记录号": "QYNEW0004", "协议编号": "XYNEW0004", "团队编码": "T99998"},
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(new)
    inbox = env.county / "contracts" / "inbox"
    (inbox / f"qianyue_{day:%Y%m%d}_late.csv").write_bytes(buf.getvalue().encode("gb18030"))

    second = pipeline.run(downstream=False, sources=only_contracts)
    assert second.failed == {} and second.held == []
    wh = Warehouse()
    found = {(q["source_record_id"], q["rule_id"]) for q in quarantined(wh)
             if q["source_record_id"].startswith("QYNEW")}
    assert found == {("QYNEW0001", "contract.plausibility.no_overlap_with_loaded_contract")}
    with wh.engine.connect() as conn:
        loaded = set(conn.execute(sa.text("SELECT source_record_id FROM contract WHERE source_record_id LIKE "
                                          "'QYNEW%'")).scalars())
    assert loaded == {"QYNEW0002", "QYNEW0003", "QYNEW0004"}
    # the terminated contract is active only until the day before its termination, for later nights' checks
    known = pipeline.loaded_contracts("contracts", before_batch="~", wh=wh)  # "~" sorts after every batch id
    assert known[known["number"] == ended["协议编号"]]["end"].max() == dt.datetime.combine(day, dt.time()) - \
        dt.timedelta(days=1)
    assert (known["number"] == "XYNEW0004").any() and not (known["number"] == "XYNEW0001").any()


# ---- extraction at its edges (issue 26): resumable parts, a cursor the rows lack -------------------------

def _lab_source(stream: dict):
    from countyhealth.connectors.typing import SqlSource

    src = SqlSource.model_validate({"kind": "sql", "facility_code": "W1", "connection": {"conn_id": "his_pg"},
                                    "streams": {"labs": {"table": "LAB", "batch_size": 100, "dataset": "lab_result",
                                                         "cursor": {"column": "gxsj"}, **stream, "fields": {
        "source_record_id": "jgid", "report_number": "bgdh", "person_source_record_id": "hzid",
        "item_code_local": "xmdm", "report_at": "gxsj", "value_text": {"value": "阴性"},
        "result_status": {"value": "final"}}}}})
    src.source_id, src.path = "his_pg", "sources/his_pg.yaml"
    return src


def _landed_ids(batch_dir) -> list[str]:
    return [v for b in landing.iter_batches(batch_dir) for v in b.column("jgid").to_pylist()]


@pytest.mark.slow
def test_a_sql_extraction_that_dies_midway_resumes_after_its_last_part(postgres_server, duckdb_url, monkeypatch):
    from countyhealth.connectors.base import ExtractError
    from countyhealth.connectors.sql import SqlConnector

    url = postgres_server.create_database("his_resume")
    monkeypatch.setenv("AIRFLOW_CONN_HIS_PG", url)
    eng = sa.create_engine(url)
    t0 = dt.datetime(2026, 3, 1, 8)
    with eng.begin() as c:
        c.exec_driver_sql('CREATE TABLE "LAB" (jgid TEXT, bgdh TEXT, hzid TEXT, xmdm TEXT, gxsj TIMESTAMP)')
        c.execute(sa.text('INSERT INTO "LAB" VALUES (:a, :b, :c, \'A1101\', :t)'),  # three rows share each time
                  [{"a": f"R{i:04d}", "b": f"B{i}", "c": f"P{i % 50}", "t": t0 + dt.timedelta(minutes=i // 3)}
                   for i in range(1000)])
    src = _lab_source({})
    wh = Warehouse(duckdb_url)
    wh.migrate()
    real = SqlConnector._batches

    def dropped_after_four(self, *args):  # the member's VPN drops: the server ends our session mid-read
        for i, batch in enumerate(real(self, *args)):
            if i == 4:
                with eng.connect() as c:
                    c.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                      "'his_resume' AND pid <> pg_backend_pid()")
            yield batch

    monkeypatch.setattr(SqlConnector, "_batches", dropped_after_four)
    with pytest.raises(ExtractError, match="extracting stream 'labs' failed"):
        pipeline.extract("his_pg", "labs", wh=wh, source=src)
    monkeypatch.setattr(SqlConnector, "_batches", real)
    [partial] = landing.incomplete_batches("his_pg", "labs")
    before = landing.read_progress(partial)
    assert 300 <= before["rows"] <= 500 and before["failures"]  # the parts landed before the drop are kept
    assert wh.watermark("his_pg", "labs") is None
    # before the next night: a row read already is corrected (its time moves on), new rows arrive
    with eng.begin() as c:
        c.exec_driver_sql("UPDATE \"LAB\" SET bgdh = 'B0-corrected', gxsj = '2026-03-02 09:00' WHERE jgid = 'R0000'")
        c.execute(sa.text('INSERT INTO "LAB" VALUES (:a, \'B\', \'P1\', \'A1101\', :t)'),
                  [{"a": f"N{i}", "t": dt.datetime(2026, 3, 2, 10) + dt.timedelta(minutes=i)} for i in range(20)])
    m = pipeline.extract("his_pg", "labs", wh=wh, source=src)
    assert m.batch_id == partial.name and m.extra["resumed"]["rows_landed_before"] == before["rows"]
    ids = _landed_ids(partial)
    # every row once, plus the corrected row's new version; none of the landed parts read again
    assert len(ids) == 1000 + 20 + 1 and set(ids) == {f"R{i:04d}" for i in range(1000)} | {f"N{i}" for i in range(20)}
    assert ids.count("R0000") == 2 and len(m.files) > 5
    pipeline.validate(partial, source=src, wh=wh)
    summary = pipeline.load_batch(partial, wh=wh, source=src)
    counts = summary.datasets["lab_result"]
    assert (counts["extracted"], counts["loaded"], counts["duplicate"]) == (1021, 1020, 1)
    with wh.engine.connect() as c:
        assert c.exec_driver_sql("SELECT report_number FROM lab_result WHERE source_record_id = 'R0000'").scalar() == \
            "B0-corrected"
    assert wh.watermark("his_pg", "labs") == "2026-03-02T10:19:00"
    eng.dispose()


def test_an_incomplete_batch_of_another_window_is_not_resumed(postgres_server, duckdb_url, monkeypatch):
    """When the watermark moved (another batch loaded) the parts of a stale window are dropped and read again."""
    url = postgres_server.create_database("his_stale")
    monkeypatch.setenv("AIRFLOW_CONN_HIS_PG", url)
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql('CREATE TABLE "LAB" (jgid TEXT, bgdh TEXT, hzid TEXT, xmdm TEXT, gxsj TIMESTAMP)')
        c.execute(sa.text('INSERT INTO "LAB" VALUES (:a, \'B\', \'P\', \'A1101\', :t)'),
                  [{"a": f"R{i}", "t": dt.datetime(2026, 3, 1) + dt.timedelta(minutes=i)} for i in range(300)])
    eng.dispose()
    src = _lab_source({})
    wh = Warehouse(duckdb_url)
    wh.migrate()
    with landing.BatchWriter("his_pg", "labs", ["lab_result"], cursor_column="gxsj",
                             cursor_start="2026-02-01T00:00:00") as w:
        w.checkpoint({"after": "2026-02-02T00:00:00"}, extra={"window": {"since": "2026-02-01T00:00:00"}})
        stale = w.dir  # left without committing: the parts are kept for a resume
    assert stale.exists() and landing.incomplete_batches("his_pg", "labs") == [stale]
    m = pipeline.extract("his_pg", "labs", wh=wh, source=src)
    assert m.batch_id != stale.name and not stale.exists() and m.rows == 300 and "resumed" not in m.extra


# ---- a drop of files: the bad one aside, the others in; `pipeline run` says when a night was not clean --------

MEMBER_HEADER = ["机构代码", "机构名称", "级别"]


def _member_rows(n, start=0, level="村卫生室"):
    return [[f"C{start + i:05d}", f"永泰县第{start + i}村卫生室", level] for i in range(n)]


def _csv_bytes(rows, encoding="gb18030") -> bytes:
    return ("\r\n".join(",".join(r) for r in [MEMBER_HEADER, *rows]) + "\r\n").encode(encoding)


def _member_sources(root, inbox):
    folder = root / "member_sources"
    folder.mkdir()
    (folder / "members.yaml").write_text(f"""\
kind: file
description: 村卫生室名册 (the townships' clinic lists, GB18030 CSV or XLSX or JSON lines)
streams:
  clinics:
    path: {inbox}
    pattern: "cunweishi_*"
    batch_size: 100
    dataset: facility
    fields:
      source_record_id: 机构代码
      facility_code: 机构代码
      name: 机构名称
      level: {{column: 级别, map: {{村卫生室: village, 乡镇卫生院: township}}}}
""", encoding="utf-8")
    return folder


@pytest.mark.slow
def test_one_unreadable_file_never_blocks_the_good_ones_and_the_night_says_so(tmp_path, monkeypatch):
    import json

    import openpyxl
    from click.testing import CliRunner

    from countyhealth.pipeline_commands import pipeline_command

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "cunweishi_1.csv").write_bytes(_csv_bytes(_member_rows(120)))  # GB18030, as township PCs write
    wb = openpyxl.Workbook()
    wb.active.append(MEMBER_HEADER)
    for r in _member_rows(80, start=200):
        wb.active.append(r)
    wb.save(inbox / "cunweishi_2.xlsx")
    (inbox / "cunweishi_3.xlsx").write_bytes(b"PK\x03\x04 this is not a workbook")  # a broken export
    good_lines = [json.dumps(dict(zip(MEMBER_HEADER, r)), ensure_ascii=False) for r in _member_rows(250, start=400)]
    (inbox / "cunweishi_4.jsonl").write_text("\n".join(good_lines) + "\n{not json\n", encoding="utf-8")  # dies late
    (inbox / "cunweishi_5.csv").write_bytes(_csv_bytes([]))  # header only
    # a key twice with different content in one file: the later row loads, and it is a finding
    (inbox / "cunweishi_6.csv").write_bytes(_csv_bytes([["C09999", "东村卫生室", "村卫生室"],
                                                        ["C09999", "西村卫生室", "村卫生室"],
                                                        ["C09998", "南村卫生室", "村卫生室"],
                                                        ["C09998", "南村卫生室", "村卫生室"]]))  # sent twice
    monkeypatch.setenv("COUNTYHEALTH_SOURCES_DIR", str(_member_sources(tmp_path, inbox)))
    result = CliRunner().invoke(pipeline_command, ["run", "--no-downstream"])
    assert result.exit_code == 0, result.output
    assert "WARNING members/clinics: cunweishi_3.xlsx rejected" in result.output
    assert "WARNING members/clinics: cunweishi_4.jsonl rejected" in result.output
    assert "WARNING members/clinics: cunweishi_5.csv: no data rows" in result.output
    wh = Warehouse()
    with wh.engine.connect() as c:
        codes = set(c.exec_driver_sql("SELECT source_record_id FROM facility").scalars())
        files = dict(c.exec_driver_sql("SELECT file_name, batch_id FROM ingested_file").all())
        audit = c.exec_driver_sql("SELECT rows_extracted, rows_loaded, rows_duplicate, rows_quarantined, rows_flagged "
                                  "FROM batch_audit").one()
        names = dict(c.exec_driver_sql("SELECT source_record_id, name FROM facility WHERE source_record_id LIKE "
                                       "'C0999%'").all())
        findings = c.exec_driver_sql("SELECT source_record_id, rule_id FROM finding").all()
    assert codes == {f"C{i:05d}" for i in [*range(120), *range(200, 280), 9999, 9998]}  # nothing of files 3 and 4
    assert set(files) == {"cunweishi_1.csv", "cunweishi_2.xlsx", "cunweishi_5.csv", "cunweishi_6.csv"}
    assert audit == (120 + 80 + 4, 202, 2, 0, 1)
    assert names["C09999"] == "西村卫生室"
    assert findings == [("C09999", "facility.plausibility.conflicting_duplicate")]
    rejected = tmp_path / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == ["cunweishi_3.xlsx", "cunweishi_3.xlsx.reason.txt",
                                                          "cunweishi_4.jsonl", "cunweishi_4.jsonl.reason.txt"]
    assert "line 251 is not JSON" in (rejected / "cunweishi_4.jsonl.reason.txt").read_text(encoding="utf-8")
    # the members' own rows in clear, kept by us: no other account reads them (the inbox is the member's)
    kept = [rejected, *rejected.iterdir(), tmp_path / "archive", *(tmp_path / "archive").rglob("*")]
    assert len(kept) > 6 and {oct(p.stat().st_mode & 0o777) for p in kept} == {"0o700", "0o600"}
    assert all(p.stat().st_mode & 0o777 == (0o700 if p.is_dir() else 0o600) for p in kept)
    [batch] = landing.list_batches("members", "clinics")
    assert {v for b in landing.iter_batches(batch) for v in b.column("_file").to_pylist()} == {
        "cunweishi_1.csv", "cunweishi_2.xlsx", "cunweishi_6.csv"}  # the 250 rows file 4 landed were rolled back

    # the member fixes one file and drops it again; another township sends a list that is mostly nonsense: that
    # batch is held, and the command says the night was not clean
    (inbox / "cunweishi_4.jsonl").write_text("\n".join(good_lines) + "\n", encoding="utf-8")
    (inbox / "cunweishi_7.csv").write_bytes(_csv_bytes(_member_rows(300, start=900, level="诊所")))
    again = CliRunner().invoke(pipeline_command, ["run", "--no-downstream"])
    assert again.exit_code == 1 and "HELD members/clinics" in again.output, again.output
    with wh.engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM facility WHERE source_record_id LIKE 'C004%' OR "
                                 "source_record_id LIKE 'C005%' OR source_record_id LIKE 'C006%'").scalar() == 0


@pytest.mark.slow
def test_pipeline_run_exits_non_zero_when_a_stream_failed_after_loading_the_rest(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from countyhealth.pipeline_commands import pipeline_command

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "cunweishi_1.csv").write_bytes(_csv_bytes(_member_rows(10)))
    folder = _member_sources(tmp_path, inbox)
    (folder / "gone.yaml").write_text((folder / "members.yaml").read_text(encoding="utf-8").replace(
        str(inbox), str(tmp_path / "no-such-inbox")), encoding="utf-8")
    monkeypatch.setenv("COUNTYHEALTH_SOURCES_DIR", str(folder))
    result = CliRunner().invoke(pipeline_command, ["run", "--no-downstream"])
    assert result.exit_code == 1 and "FAILED gone/clinics" in result.output and "inbox" in result.output
    with Warehouse().engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM facility").scalar() == 10  # the others still loaded


# ---- rows written far behind the watermark: a periodic lookback, and the SQL per-day reconciliation ----------

def _township_his(tmp_path, monkeypatch, cursor_extra: str, stream_extra: str = ""):
    """A vendor-B-like 前置库 in SQLite (text times) with one lab row an hour for ten days, and its source YAML."""
    db = tmp_path / "W1.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE jy_jg (jgid TEXT, bgdh TEXT, hzid TEXT, xmdm TEXT, gxsj TEXT)")
    t0 = dt.datetime(2026, 3, 1)
    con.executemany("INSERT INTO jy_jg VALUES (?, ?, 'P1', 'JY011', ?)",
                    [(f"R{i:04d}", f"B{i}", (t0 + dt.timedelta(hours=i)).strftime("%Y/%m/%d %H:%M"))
                     for i in range(240)])
    con.commit()
    con.close()
    folder = tmp_path / "his_sources"
    folder.mkdir()
    (folder / "his_w1.yaml").write_text(f"""\
kind: sql
facility_code: W350125101
connection: {{conn_id: his_w1}}
streams:
  lab_results:
    table: jy_jg
    cursor: {{column: gxsj, format: "%Y/%m/%d %H:%M"{cursor_extra}}}
{stream_extra}    dataset: lab_result
    fields: {{source_record_id: jgid, report_number: bgdh, person_source_record_id: hzid, item_code_local: xmdm,
             report_at: {{column: gxsj, format: "%Y/%m/%d %H:%M"}}, value_text: {{value: 阴性}},
             result_status: {{value: final}}}}
""", encoding="utf-8")
    monkeypatch.setenv("COUNTYHEALTH_SOURCES_DIR", str(folder))
    monkeypatch.setenv("AIRFLOW_CONN_HIS_W1", f"sqlite:///{db}")
    return db


def _late_row(db, jgid, when, report="B-late"):
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO jy_jg VALUES (?, ?, 'P1', 'JY011', ?)", (jgid, report, when))


def _night(until) -> list:
    """The night's extract and load of the one stream (pipeline.run without identity and the reports)."""
    wh = Warehouse()
    wh.migrate()
    pipeline.extract("his_w1", "lab_results", until=until, wh=wh)
    loads, failed = pipeline.load_pending(wh=wh)
    loads = [s for s in loads if s.status != "skipped"]  # batches of earlier nights
    assert failed == {} and all(s.status == "loaded" for s in loads), failed
    return loads


def _loaded(wh) -> set[str]:
    with wh.engine.connect() as c:
        return set(c.exec_driver_sql("SELECT source_record_id FROM lab_result").scalars())


@pytest.mark.slow
def test_a_lookback_reads_deeper_once_a_week_and_finds_rows_written_behind_the_watermark(tmp_path, monkeypatch):
    db = _township_his(tmp_path, monkeypatch, ", lookback: {depth: 3d, every: 7d}")
    wh = Warehouse()
    _night(dt.datetime(2026, 3, 11))
    assert wh.watermark("his_w1", "lab_results") == "2026-03-10T23:00:00" and len(_loaded(wh)) == 240
    _late_row(db, "L1", "2026/03/09 12:30")  # a member whose clock ran a day and a half behind
    lookback = _night(dt.datetime(2026, 3, 12))  # no deeper read yet: one is due
    assert "L1" in _loaded(wh)
    [s] = lookback
    assert s.datasets["lab_result"]["written"] == 1  # L1; the 73 hourly rows of the 3 days deep are re-read as they were
    assert s.datasets["lab_result"]["unchanged"] == 73
    _late_row(db, "L2", "2026/03/09 13:30")
    quiet = _night(dt.datetime(2026, 3, 13))  # the next deeper read is a week away: the overlap alone misses L2
    assert "L2" not in _loaded(wh)
    assert quiet[0].datasets["lab_result"]["extracted"] == quiet[0].datasets["lab_result"]["unchanged"] == 1  # 23:00
    _night(dt.datetime(2026, 3, 19, 1))  # a week on: read 3 days deep again
    assert "L2" in _loaded(wh)
    with wh.engine.connect() as c:
        assert c.exec_driver_sql("SELECT lookback_at FROM watermark").scalar() == dt.datetime(2026, 3, 19, 1)


@pytest.mark.slow
def test_sql_reconciliation_finds_and_lands_the_days_the_cursor_missed(tmp_path, monkeypatch):
    db = _township_his(tmp_path, monkeypatch, "", "    reconcile: {days: 5}\n")
    wh = Warehouse()
    _night(dt.datetime(2026, 3, 11))
    _late_row(db, "L1", "2026/03/09 12:30")
    _late_row(db, "L3", "2026/03/08 02:10", report=None)  # late, and without a report number: quarantined
    second = _night(dt.datetime(2026, 3, 12))
    manifests = {s.batch_id: landing.read_manifest(landing.batch_dir("his_w1", "lab_results", s.batch_id))
                 for s in second}
    [main] = [s for s in second if "missing_rows" in manifests[s.batch_id].extra["reconciliation"]]
    [again] = [s for s in second if s is not main]
    report = manifests[main.batch_id].extra["reconciliation"]
    assert report["missing_rows"] == 2 and report["days_read_again"] == ["2026-03-08", "2026-03-09"]
    assert report["batch_id"] == again.batch_id and report["source_rows"] == 5 * 24 + 23 + 2
    counts = again.datasets["lab_result"]
    assert (counts["extracted"], counts["written"], counts["unchanged"], counts["quarantined"]) == (50, 1, 48, 1)
    assert "L1" in _loaded(wh) and wh.watermark("his_w1", "lab_results") == "2026-03-10T23:00:00"
    with wh.engine.connect() as c:
        assert c.exec_driver_sql("SELECT source_record_id FROM quarantine").scalars().all() == ["L3"]
    third = _night(dt.datetime(2026, 3, 13))  # nothing missing now: a quarantined row counts as accounted for
    [only] = third
    report = landing.read_manifest(landing.batch_dir("his_w1", "lab_results", only.batch_id)).extra["reconciliation"]
    assert report["missing_rows"] == 0 and "batch_id" not in report
