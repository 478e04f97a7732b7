"""Alerts to a group-chat robot: the JSON shapes 企业微信 and 钉钉 expect, posted to a real local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from countyhealth.notify import CountyAlertNotifier, payload, send


@pytest.fixture
def robot():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 18410), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:18410/cgi-bin/webhook/send?key=test", received
    server.shutdown()
    server.server_close()


def test_a_failed_member_task_reaches_the_wecom_robot(robot, monkeypatch):
    url, received = robot
    monkeypatch.setenv("COUNTYHEALTH_ALERT_WEBHOOK", url)
    monkeypatch.delenv("COUNTYHEALTH_ALERT_KIND", raising=False)
    context = {"task_instance": SimpleNamespace(task_id="member_his_w350125101.extract_lab_results"),
               "dag_run": SimpleNamespace(run_id="scheduled__2026-03-04"),
               "exception": TimeoutError("his_w350125101/lab_results missed the night's cut-off; resident "
                                         "350125199001011234 phone 13800138000")}
    CountyAlertNotifier().notify(context)
    assert len(received) == 1 and received[0]["msgtype"] == "markdown"
    content = received[0]["markdown"]["content"]
    assert "his_w350125101 failed at extract_lab_results" in content and "missed the night's cut-off" in content
    assert "350125199001011234" not in content and "13800138000" not in content  # scrubbed before it leaves
    assert "countyhealth status" in content


def test_the_dingtalk_shape_and_held_batches(robot):
    url, received = robot
    assert send("countyhealth: the night of 2026-03-03", ["held (circuit breaker): his_w350125102/lab_results b1"],
                url=url, kind="dingtalk")
    body = received[0]
    assert body["msgtype"] == "markdown" and body["markdown"]["title"] == "countyhealth: the night of 2026-03-03"
    assert "his_w350125102/lab_results" in body["markdown"]["text"]


def test_no_webhook_no_alert_and_a_wrong_kind_names_the_fix(monkeypatch):
    monkeypatch.delenv("COUNTYHEALTH_ALERT_WEBHOOK", raising=False)
    assert send("x", ["y"]) is False
    with pytest.raises(ValueError, match="wecom, dingtalk"):
        payload("slack", "x", ["y"])


def test_every_task_and_the_final_check_carry_the_notifier():
    from countyhealth.orchestration import build_nightly_dag

    dag = build_nightly_dag()
    for task_id in ("member_his_w350125101.extract_lab_results", "load", "check_members"):
        callbacks = dag.get_task(task_id).on_failure_callback
        assert any(isinstance(c, CountyAlertNotifier) for c in callbacks), task_id
