"""kind: rest against real HTTP servers: the simulated public-health platform (token auth, paging,
updated_since, 429 + Retry-After, injected 5xx / slow / truncated responses) and a small server for the other
paginators."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pyarrow as pa
import pytest

from countyhealth.connectors.base import ExtractError, ExtractWindow
from countyhealth.connectors.config import parse_uri
from countyhealth.connectors.rest import RestConnector
from countyhealth.connectors.typing import RestSource
from countyhealth.simulate.public_health import RECORD_COLUMNS, PublicHealthServer, ServerConfig

N = 1234
T0 = dt.datetime(2026, 3, 1, 8, 0)


@pytest.fixture(scope="module")
def platform_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("ph") / "platform.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE health_record ({', '.join(c + ' TEXT' for c in RECORD_COLUMNS)})")
    db.execute("CREATE TABLE followup (sfid TEXT, updated_at TEXT)")
    for i in range(N):
        db.execute(f"INSERT INTO health_record VALUES ({','.join('?' * len(RECORD_COLUMNS))})",
                   [f"35012510100{i:06d}", f"居民{i}", "1", "1960-01-01", None, None, "永泰县", "W350125101",
                    "2020-01-01", "在册", (T0 + dt.timedelta(minutes=i)).isoformat(timespec="seconds")])
    db.commit()
    db.close()
    return path


def serve(db, **cfg):
    server = PublicHealthServer(ServerConfig(db_path=db, seed=7, **cfg)).start()
    return server


def connector(server, *, secret="demo-secret", size=100, attempts=8, timeout=5.0, expires_field="expires_in",
              total_field="data.total"):
    src = RestSource.model_validate({
        "kind": "rest", "connection": {"conn_id": "public_health"},
        "auth": {"type": "bearer_token", "token_path": "/api/v1/auth/token", "expires_in_field": expires_field},
        "paginator": {"type": "page_number", "size": size, "total_field": total_field},
        "timeout": timeout, "retry": {"attempts": attempts, "backoff": 0.05, "max_backoff": 0.2},
        "streams": {"records": {"path": "/api/v1/health-records", "records_field": "data.records",
                                "since_param": "updated_since", "batch_size": 250,
                                "cursor": {"column": "updated_at", "format": "%Y-%m-%dT%H:%M:%S"},
                                "dataset": "person", "fields": {"source_record_id": "dabh", "name": "xm",
                                                                "facility_code": "jddw"}}}})
    src.source_id, src.path = "public_health", "sources/public_health.yaml"
    conn = parse_uri(f"http://countyhealth-demo:{secret}@127.0.0.1:{server.port}")
    return RestConnector(src, conn)


def extract_all(conn, window=ExtractWindow()):
    ex = conn.extract("records", window)
    batches = list(ex.batches)
    return pa.Table.from_batches(batches), batches, ex.extra


def test_pages_are_complete_without_duplicates_in_bounded_batches(platform_db):
    server = serve(platform_db)
    try:
        conn = connector(server)
        table, batches, extra = extract_all(conn)
        ids = table.column("dabh").to_pylist()
        assert len(ids) == N and len(set(ids)) == N
        assert max(b.num_rows for b in batches) <= 250
        assert conn.count("records") == N
        assert extra["requests"] >= N // 100
    finally:
        server.stop()


def test_a_platform_capping_the_page_size_loses_nothing_when_it_gives_a_total(platform_db):
    server = serve(platform_db, max_page_size=100)  # we ask for 300 a page; it answers 100 without saying so
    try:
        table, _, extra = extract_all(connector(server, size=300))
        assert sorted(table.column("dabh").to_pylist()) == sorted(set(table.column("dabh").to_pylist()))
        assert table.num_rows == N and extra["reported_total"] == N
        # without a total a short page can only mean the last one: the YAML's page size must not exceed the cap
        table, _, _ = extract_all(connector(server, size=300, total_field=None))
        assert table.num_rows == 100
    finally:
        server.stop()


def test_since_and_until_bound_the_window(platform_db):
    server = serve(platform_db)
    try:
        since, until = T0 + dt.timedelta(minutes=100), T0 + dt.timedelta(minutes=300)
        table, _, extra = extract_all(connector(server), ExtractWindow(since=since, until=until))
        times = [dt.datetime.fromisoformat(v) for v in table.column("updated_at").to_pylist()]
        assert min(times) >= since and max(times) < until
        assert len(times) == 199  # updated_since is exclusive on this API; the overlap makes that harmless
        assert extra["rows_after_window"] == N - 300  # left for the next interval, not lost
    finally:
        server.stop()


def test_rate_limit_429_is_waited_out_not_failed(platform_db):
    server = serve(platform_db, rate_limit=4)
    try:
        conn = connector(server, size=200)
        t0 = time.monotonic()
        table, _, extra = extract_all(conn)
        assert table.num_rows == N
        assert extra["throttled"] > 0 and time.monotonic() - t0 >= 1.0  # Retry-After: 1 honoured
    finally:
        server.stop()


@pytest.mark.parametrize("fault", ["fault_5xx", "fault_truncate"])
def test_server_errors_and_truncated_bodies_are_retried(platform_db, fault):
    server = serve(platform_db, **{fault: 0.3})
    try:
        conn = connector(server)
        table, _, extra = extract_all(conn)
        assert sorted(table.column("dabh").to_pylist()) == sorted(set(table.column("dabh").to_pylist()))
        assert table.num_rows == N and extra["retries"] > 0
    finally:
        server.stop()


def test_slow_responses_time_out_and_are_retried(platform_db):
    server = serve(platform_db, fault_slow=0.2, slow_seconds=1.0)
    try:
        conn = connector(server, size=400, timeout=0.5)
        table, _, extra = extract_all(conn)
        assert table.num_rows == N and extra["retries"] > 0
    finally:
        server.stop()


def test_persistent_outage_gives_up_with_a_clear_message(platform_db):
    server = serve(platform_db, fault_5xx=1.0)
    try:
        with pytest.raises(ExtractError, match="gave up after 3 attempts.*catches up on the next run"):
            extract_all(connector(server, attempts=3))
    finally:
        server.stop()


def test_wrong_secret_fails_at_once_naming_the_connection(platform_db):
    server = serve(platform_db)
    try:
        with pytest.raises(ExtractError, match="refused our credentials \\(401\\).*'public_health'"):
            extract_all(connector(server, secret="wrong"))
    finally:
        server.stop()


def test_expired_token_is_renewed_once(platform_db):
    server = serve(platform_db, token_ttl_s=1)
    try:
        conn = connector(server, expires_field=None)  # the client believes the token lasts an hour
        conn.check()
        time.sleep(1.2)
        table, _, _ = extract_all(conn)
        assert table.num_rows == N
    finally:
        server.stop()


# ---- the other paginators, on a small server written here ------------------------------------------------

ITEMS = [{"id": i, "name": f"n{i}", "meta": {"org": "W1"}} for i in range(57)]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        headers = {}
        if q.get("org") != "W1":  # the static parameter every paginator must send (next links carry it too)
            self.send_response(400)
            self.end_headers()
            return
        if self.headers.get("X-API-Key") != "k1":
            self.send_response(401)
            self.end_headers()
            return
        if url.path == "/offset":
            off, lim = int(q.get("offset", 0)), int(q.get("limit", 10))
            body = {"items": ITEMS[off:off + lim], "total": len(ITEMS)}
        elif url.path == "/cursor":
            start = int(q.get("cursor", 0))
            nxt = start + 10 if start + 10 < len(ITEMS) else None
            body = {"items": ITEMS[start:start + 10], "next": nxt}
        elif url.path == "/link":
            page = int(q.get("p", 0))
            body = {"items": ITEMS[page * 20:(page + 1) * 20]}
            if (page + 1) * 20 < len(ITEMS):
                headers["Link"] = f'<http://127.0.0.1:{self.server.server_address[1]}/link?p={page + 1}&org=W1>; rel="next"'
        else:
            self.send_response(404)
            self.end_headers()
            return
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)


@pytest.mark.parametrize("path,paginator", [
    ("/offset", {"type": "offset", "limit": 10, "total_field": "total"}),
    ("/cursor", {"type": "cursor", "next_field": "next"}),
    ("/link", {"type": "link_header"}),
])
def test_offset_cursor_and_link_header_pagination_with_api_key_and_static_params(path, paginator):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        src = RestSource.model_validate({
            "kind": "rest", "connection": {"conn_id": "x"}, "auth": {"type": "api_key", "name": "X-API-Key"},
            "paginator": {**paginator, "params": {"org": "W1"}}, "streams": {"s": {"path": path, "records_field": "items", "dataset": "facility",
                                                      "fields": {"source_record_id": "id", "name": "name",
                                                                 "level": {"value": "village"},
                                                                 "facility_code": "meta.org"}}}})
        src.source_id, src.path = "x", "sources/x.yaml"
        conn = RestConnector(src, parse_uri(f"http://user:k1@127.0.0.1:{httpd.server_address[1]}"))
        table = pa.Table.from_batches(list(conn.extract("s", ExtractWindow()).batches))
        assert sorted(int(v) for v in table.column("id").to_pylist()) == list(range(57))
        assert set(table.column("meta.org").to_pylist()) == {"W1"}  # nested fields flatten to dotted names
    finally:
        httpd.shutdown()
        httpd.server_close()
