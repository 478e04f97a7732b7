"""The done-when of issue 26: a vendor API with every habit (OAuth2 client credentials as a form, errors inside
HTTP 200, 429 bursts without Retry-After, cursor paging with a total and a capped page size, a required static
parameter, a mid-run failure) added with one YAML of at most 30 lines and no Python — checked, extracted, loaded
and reconciled against the simulated regional lab centre's API, a real HTTP server (simulate/regional_lab.py)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from countyhealth import landing, pipeline
from countyhealth.connectors.commands import sources
from countyhealth.connectors.config import get_source
from countyhealth.simulate.county import CountyConfig, generate
from countyhealth.warehouse import Warehouse

sys.path.insert(0, str(Path(__file__).parents[1]))
from county_env import defects_by_record, make_env  # noqa: E402

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "sources" / "lis_regional.yaml"
QUARANTINE_KINDS = {"blank_required", "implausible_value", "unknown_code", "future_date"}


@pytest.fixture(scope="module")
def lab_county(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab-county") / "county"
    generate(out, CountyConfig(seed=5, residents=1000, days=2, county_hospitals=1, townships=2,
                               villages_per_township=2, regional_lab=True))
    return out


@pytest.fixture
def env(tmp_path, lab_county, monkeypatch):
    e = make_env(tmp_path, lab_county, monkeypatch)
    # the test's only changes to the example: retries that wait milliseconds, and parts of 200 rows so the
    # failure below comes after several committed parts
    yaml = e.sources / "lis_regional.yaml"
    yaml.write_text(yaml.read_text(encoding="utf-8").replace("batch_size: 5000", "batch_size: 200")
                    + "retry: {attempts: 4, backoff: 0.02, max_backoff: 0.1}\n", encoding="utf-8")
    yield e
    e.stop()


def source_rows(env) -> list[tuple[str, str]]:
    with sqlite3.connect(env.county / "regional_lab" / "lis.sqlite") as db:
        return db.execute("SELECT id, updateTime FROM lis_result ORDER BY updateTime, id").fetchall()


def test_the_example_is_one_yaml_of_at_most_30_lines_without_python():
    text = EXAMPLE.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 30
    src = get_source("lis_regional", EXAMPLE.parent)
    assert src.kind == "rest" and src.auth.type == "oauth2_client_credentials"
    assert src.error_handler and src.paginator.type == "cursor" and src.paginator.total_field
    assert src.rate_limit.requests_per_second and src.streams["results"].cursor.ordered


@pytest.mark.slow
def test_a_vendor_api_with_every_habit_is_checked_extracted_resumed_loaded_and_reconciled(env):
    lab = env.lab.state
    lab.cfg.busy_every, lab.cfg.burst_every, lab.cfg.burst_length = 7, 5, 3
    lab.cfg.max_page_size = 50  # the YAML asks for 200 a page; the platform gives 50 and says so only in its total
    check = CliRunner().invoke(sources, ["check", "lis_regional", "--rows", "3"])
    assert check.exit_code == 0, check.output
    assert "config valid" in check.output and "results:" in check.output and "→ lab_result" in check.output

    rows = source_rows(env)
    assert len(rows) > 1000
    only = {"lis_regional": get_source("lis_regional")}
    wh = Warehouse()
    lab.cfg.fail_at_page = 12  # the platform's gateway fails for good at page 12 of 24
    first = pipeline.run(downstream=False, sources=only)
    assert list(first.failed) == ["lis_regional/results"] and "gave up after 4 attempts" in first.failed[
        "lis_regional/results"]
    assert wh.watermark("lis_regional", "results") is None  # nothing loaded, so nothing moved
    [partial] = landing.incomplete_batches("lis_regional", "results")
    progress = landing.read_progress(partial)
    assert 200 <= progress["rows"] < 11 * 50  # parts committed before page 12 (550 rows)
    assert lab.counts["busy"] > 0 and lab.counts["throttled"] > 0 and lab.counts["failed_pages"] >= 1

    lab.cfg.fail_at_page = None  # the vendor fixes the gateway; the next night resumes the batch
    pages_before = lab.counts["pages"]
    second = pipeline.run(downstream=False, sources=only)
    assert second.failed == {} and second.held == [], second.failed
    assert lab.counts["pages"] - pages_before < 24  # it did not start over
    [loaded] = [s for s in second.loaded if s.source_id == "lis_regional"]
    manifest = landing.read_manifest(landing.batch_dir("lis_regional", "results", loaded.batch_id))
    assert manifest.batch_id == partial.name and manifest.extra["resumed"]["rows_landed_before"] == progress["rows"]
    assert manifest.extra["throttled"] > 0 and manifest.extra["retries"] > 0

    # nothing lost, nothing landed twice: the batch holds every source row once
    ids = [r["id"] for b in landing.iter_batches(partial) for r in b.select(["id"]).to_pylist()]
    assert len(ids) == len(set(ids)) == len(rows) == manifest.rows
    assert sorted(ids) == sorted(r[0] for r in rows)
    with wh.engine.connect() as conn:
        audit = {r.dataset: r for r in conn.execute(sa.text(
            "SELECT * FROM batch_audit WHERE source_id = 'lis_regional'"))}
        in_table = set(conn.execute(sa.text("SELECT source_record_id FROM lab_result WHERE source_id = "
                                            "'lis_regional'")).scalars())
        quarantined = set(conn.execute(sa.text("SELECT source_record_id FROM quarantine WHERE source_id = "
                                               "'lis_regional' AND dataset = 'lab_result'")).scalars())
    lab_audit = audit["lab_result"]
    assert lab_audit.rows_extracted == len(rows)
    assert lab_audit.rows_extracted == lab_audit.rows_loaded + lab_audit.rows_quarantined + lab_audit.rows_duplicate
    assert lab_audit.rows_written == lab_audit.rows_loaded and lab_audit.rows_duplicate == 0  # a first load
    assert in_table | quarantined == {r[0] for r in rows} and not in_table & quarantined
    # every defect the simulator injected is quarantined, nothing else
    expected = {k[1] for k, kinds in defects_by_record(env).items() if k[0] == "lis_regional" and kinds & QUARANTINE_KINDS}
    assert expected and quarantined == expected
    # the person dataset: one patient per resident the LIS knows, repeated on each of their results
    person = audit["person"]
    assert person.rows_extracted == len(rows) and person.rows_duplicate > 0
    assert wh.watermark("lis_regional", "results") == max(r[1] for r in rows).replace(" ", "T")


# ---- each habit on its own, against the same simulated platform ---------------------------------------

@pytest.fixture
def lab_api(lab_county):
    from countyhealth.simulate.regional_lab import LabApiConfig, LabApiServer

    server = LabApiServer(LabApiConfig(db_path=lab_county / "regional_lab" / "lis.sqlite")).start()
    yield server
    server.stop()


def connector(server, *, secret="lis-demo-secret", **changes):
    """The example YAML's connector against ``server``; ``changes`` override top-level keys of the source."""
    import yaml

    from countyhealth.connectors.config import parse_uri
    from countyhealth.connectors.rest import RestConnector
    from countyhealth.connectors.typing import RestSource

    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data.update(retry={"attempts": 4, "backoff": 0.02, "max_backoff": 0.1}, **changes)
    src = RestSource.model_validate(data)
    src.source_id, src.path = "lis_regional", "sources/lis_regional.yaml"
    return RestConnector(src, parse_uri(f"http://lis-regional-demo:{secret}@127.0.0.1:{server.port}"))


def extract_ids(conn) -> list[str]:
    from countyhealth.connectors.base import ExtractWindow

    return [v for b in conn.extract("results", ExtractWindow()).batches for v in b.column("id").to_pylist()]


def lab_ids(lab_county) -> list[str]:
    with sqlite3.connect(lab_county / "regional_lab" / "lis.sqlite") as db:
        return [r[0] for r in db.execute("SELECT id FROM lis_result")]


def test_token_endpoint_refusing_the_encoding_is_told_from_refused_credentials(lab_api):
    from countyhealth.connectors.base import ExtractError

    lab_api.state.cfg.token_encoding = "json"  # this gateway reads JSON bodies only; the YAML sends a form
    with pytest.raises(ExtractError, match=r"refused the token request sent as a form .* but accepts it as JSON "
                                           r"\(application/json\) — set `auth.request_format: json`"):
        connector(lab_api).check()
    connector(lab_api, auth={**connector(lab_api).source.auth.model_dump(), "request_format": "json"}).check()
    with pytest.raises(ExtractError, match=r"refused our credentials \(HTTP 401: 客户端认证失败\) — check the client "
                                           r"id \(login\) and secret \(password\) of connection 'lis_regional'.*not "
                                           r"the encoding"):
        connector(lab_api, secret="wrong", auth={**connector(lab_api).source.auth.model_dump(),
                                                 "request_format": "json"}).check()


def test_expires_in_is_honoured_and_an_in_body_expired_token_is_renewed(lab_api, lab_county):
    import time

    state = lab_api.state
    state.cfg.token_ttl_s = 1  # "expires_in": "1", as text
    conn = connector(lab_api)
    conn.check()
    time.sleep(1.2)  # past the lifetime: the client must renew before asking, not after a refusal
    assert len(extract_ids(conn)) == len(lab_ids(lab_county))
    assert state.counts["expired_tokens_presented"] == 0 and state.counts["tokens_issued"] >= 2
    state.cfg.token_ttl_s = 3600
    conn = connector(lab_api)
    conn.check()
    state.tokens.clear()  # the platform restarted and forgot its tokens: it answers code 40101 inside HTTP 200
    assert len(extract_ids(conn)) == len(lab_ids(lab_county)) and conn.tokens_fetched == 2


def test_in_body_errors_retry_or_fail_showing_the_platforms_message_masked(lab_api, lab_county):
    from countyhealth.connectors.base import ExtractError

    lab_api.state.cfg.busy_every = 2  # every other page is "系统繁忙" with "list": null — retried, never "no rows"
    conn = connector(lab_api)
    ids = extract_ids(conn)
    assert sorted(ids) == sorted(lab_ids(lab_county)) and conn.retries >= 10
    lab_api.state.cfg.busy_every = 0
    no_params = connector(lab_api, paginator={**conn.source.paginator.model_dump(), "params": {}})
    with pytest.raises(ExtractError, match=r"code=40003: 缺少参数 orgCode\)? — a value `error_handler` does not list"):
        extract_ids(no_params)
    # a declared failure code: the platform's message shown, an ID number in it masked
    refusing = connector(lab_api, error_handler={**conn.source.error_handler.model_dump(), "response_filters": [
        {"values": ["40003"], "action": "fail", "error_message": "add the county's orgCode to `paginator.params`"}]})
    lab_api.state.cfg.max_page_size = 100
    with pytest.raises(ExtractError, match=r"refused the request \(HTTP 200, code=40003: 缺少参数 orgCode\) — add the "
                                           "county's orgCode"):
        extract_ids(connector(lab_api, error_handler=refusing.source.error_handler.model_dump(),
                              paginator={**conn.source.paginator.model_dump(), "params": {}}))


def test_platform_messages_never_show_an_id_number(lab_api):
    from countyhealth.connectors.base import ExtractError

    lab_api.state.cfg.refuse_with = ("40009", "患者 350125198001011234 无查询权限，电话 13912345678")
    with pytest.raises(ExtractError, match="code=40009") as err:
        extract_ids(connector(lab_api))
    assert "350125198001011234" not in str(err.value) and "13912345678" not in str(err.value)


def test_client_rate_and_a_cap_on_consecutive_429s_not_a_total(lab_api, lab_county):
    from countyhealth.connectors.base import ExtractError

    state = lab_api.state
    state.cfg.max_page_size = 200
    state.window.limit = 10  # the platform allows 10 requests a second; the client keeps to 5
    conn = connector(lab_api, rate_limit={"requests_per_second": 5, "max_consecutive_throttled": 3})
    assert len(extract_ids(conn)) == len(lab_ids(lab_county)) and state.counts["throttled"] == 0
    state.window.limit = 1000
    state.cfg.burst_every, state.cfg.burst_length = 5, 3  # bursts of three 429s without Retry-After, often
    conn = connector(lab_api, rate_limit={"max_consecutive_throttled": 3})
    assert len(extract_ids(conn)) == len(lab_ids(lab_county)) and conn.throttled > 3  # many in all, 3 at most in a row
    state.cfg.burst_length = 4
    with pytest.raises(ExtractError, match=r"'too many requests' 4 times in a row — lower "
                                           r"`rate_limit.requests_per_second`"):
        extract_ids(connector(lab_api, rate_limit={"max_consecutive_throttled": 3}))


@pytest.mark.slow
def test_the_vendor_api_runs_as_a_process_stopped_by_pid(lab_county):
    import os
    import signal
    import socket
    import subprocess
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "countyhealth"
    proc = subprocess.Popen([str(exe), "simulate", "serve-regional-lab", "--county", str(lab_county), "--port",
                             str(port), "--token-encoding", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ))
    try:
        for _ in range(150):
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        body = {"client_id": "lis-regional-demo", "client_secret": "lis-demo-secret", "grant_type": "client_credentials"}
        assert requests.post(f"http://127.0.0.1:{port}/oauth/token", data=body, timeout=5).status_code == 401
        assert requests.post(f"http://127.0.0.1:{port}/oauth/token", json=body, timeout=5).json()["data"]["access_token"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
