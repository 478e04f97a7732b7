"""kind: sql on real databases: SQLite files (text cursors, as a 前置库) and PostgreSQL (timestamp cursors)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa

from countyhealth.connectors.base import CursorTracker, ExtractError, ExtractWindow
from countyhealth.connectors.config import ResolvedConnection, parse_uri
from countyhealth.connectors.sql import SqlConnector
from countyhealth.connectors.typing import SqlSource


def make_source(table="jy_jg", *, query=None, cursor_format="%Y/%m/%d %H:%M", batch_size=100):
    stream = {"primary_key": "jgid", "batch_size": batch_size, "dataset": "lab_result",
              "cursor": {"column": "gxsj", "format": cursor_format} if cursor_format is not False else {"column": "gxsj"},
              "fields": {"report_number": "bgdh", "person_source_record_id": "hzid", "item_code_local": "xmdm",
                         "report_at": "gxsj", "result_status": {"value": "final"}}}
    stream.update({"query": query} if query else {"table": table})
    src = SqlSource.model_validate({"kind": "sql", "facility_code": "W1", "connection": {"conn_id": "x"},
                                    "streams": {"labs": stream}})
    src.source_id, src.path = "his_w1", "sources/his_w1.yaml"
    return src


@pytest.fixture
def sqlite_his(tmp_path):
    url = f"sqlite:///{tmp_path / 'his.sqlite'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE jy_jg (jgid TEXT, bgdh TEXT, hzid TEXT, xmdm TEXT, jg TEXT, gxsj TEXT)")
        rows = [{"jgid": f"R{i:04d}", "bgdh": f"B{i // 5}", "hzid": f"P{i % 40}", "xmdm": "JY011", "jg": f"{i}.5",
                 "gxsj": (dt.datetime(2026, 3, 1) + dt.timedelta(minutes=7 * i)).strftime("%Y/%m/%d %H:%M")}
                for i in range(1000)]
        c.execute(sa.text("INSERT INTO jy_jg VALUES (:jgid, :bgdh, :hzid, :xmdm, :jg, :gxsj)"), rows)
    return parse_uri(url)


def rows_of(extraction):
    batches = list(extraction.batches)
    return batches, pa.Table.from_batches(batches) if batches else None


def test_full_extraction_streams_bounded_text_batches(sqlite_his):
    conn = SqlConnector(make_source(batch_size=128), sqlite_his)
    conn.check()
    batches, table = rows_of(conn.extract("labs", ExtractWindow()))
    assert table.num_rows == 1000 and max(b.num_rows for b in batches) <= 128 and len(batches) == 8
    assert all(t == pa.string() for t in table.schema.types)
    assert table.column("jg").to_pylist()[:2] == ["0.5", "1.5"]
    assert conn.count("labs") == 1000


def test_incremental_window_on_a_text_cursor(sqlite_his):
    conn = SqlConnector(make_source(), sqlite_his)
    since, until = dt.datetime(2026, 3, 1, 7, 0), dt.datetime(2026, 3, 1, 14, 0)
    _, table = rows_of(conn.extract("labs", ExtractWindow(since=since, until=until)))
    times = [dt.datetime.strptime(v, "%Y/%m/%d %H:%M") for v in table.column("gxsj").to_pylist()]
    assert min(times) >= since and max(times) < until
    assert len(times) == sum(1 for i in range(1000) if since <= dt.datetime(2026, 3, 1) + dt.timedelta(minutes=7 * i) < until)
    tracker = CursorTracker(conn.source.streams["labs"].cursor)
    for b in table.to_batches():
        tracker.see(b)
    assert tracker.value == max(times).isoformat()
    assert conn.count("labs", ExtractWindow(since=since, until=until)) == len(times)


def test_query_streams_get_the_predicate_with_bound_parameters(sqlite_his):
    conn = SqlConnector(make_source(query="SELECT * FROM jy_jg WHERE xmdm = 'JY011'"), sqlite_his)
    _, table = rows_of(conn.extract("labs", ExtractWindow(since=dt.datetime(2026, 3, 5))))
    assert 0 < table.num_rows < 1000
    with pytest.raises(ValueError, match="must be a SELECT"):
        make_source(query="DELETE FROM jy_jg")


def test_unknown_table_and_unsafe_names_fail_clearly(sqlite_his):
    with pytest.raises(ExtractError, match="table 'JY_JG_X' not found.*check `table:`"):
        SqlConnector(make_source("JY_JG_X"), sqlite_his).check()
    with pytest.raises(ExtractError, match="not a plain table or schema name"):
        SqlConnector(make_source("jy_jg; DROP TABLE jy_jg"), sqlite_his).check()
    bad = SqlConnector(make_source(), ResolvedConnection("sqlite", schema="/nonexistent/dir/x.sqlite"))
    with pytest.raises(ExtractError, match="cannot connect"):
        bad.check()


def test_postgres_timestamp_cursor_and_server_side_cursor(postgres_server):
    url = postgres_server.create_database("his_pg")
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql('CREATE TABLE "LAB" (jgid TEXT PRIMARY KEY, bgdh TEXT, hzid TEXT, xmdm TEXT, '
                          "value NUMERIC(14,4), gxsj TIMESTAMP)")
        c.execute(sa.text('INSERT INTO "LAB" VALUES (:a, :b, :c, :d, :v, :t)'),
                  [{"a": f"R{i}", "b": "B", "c": "P", "d": "A1101", "v": 5.25 + i, "t": dt.datetime(2026, 3, 1, 8) +
                    dt.timedelta(hours=i)} for i in range(300)])
    conn = SqlConnector(make_source("LAB", cursor_format=False, batch_size=100), parse_uri(url))
    conn.check()
    batches, table = rows_of(conn.extract("labs", ExtractWindow(since=dt.datetime(2026, 3, 2, 8))))
    assert table.num_rows == 300 - 24 and all(b.num_rows <= 100 for b in batches)
    assert table.column("value").to_pylist()[0] == "29.25"  # NUMERIC as exact text, no float noise
    assert table.column("gxsj").to_pylist()[0] == "2026-03-02 08:00:00"
    eng.dispose()


def test_a_cursor_column_the_rows_do_not_have_is_an_error_not_a_nightly_full_read(sqlite_his):
    for src in (make_source(), make_source(query="SELECT jgid, bgdh, hzid, xmdm, jg, gxsj FROM jy_jg")):
        src.streams["labs"].cursor.column = "update_time"  # the 前置库 calls it gxsj
        conn = SqlConnector(src, sqlite_his)
        with pytest.raises(ExtractError, match=r"cursor column 'update_time' is not a column of .*gxsj"):
            conn.check()
        with pytest.raises(ExtractError, match="cursor column 'update_time'"):
            list(conn.extract("labs", ExtractWindow()).batches)
