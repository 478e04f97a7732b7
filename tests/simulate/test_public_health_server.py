"""The public-health platform as a real HTTP server: auth, paging, filtering, rate limit, injected faults —
and `countyhealth simulate serve-public-health` as a process started and stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from countyhealth.simulate.public_health import PublicHealthServer, ServerConfig


def token(url, key="countyhealth-demo", secret="demo-secret"):
    r = requests.post(f"{url}/api/v1/auth/token", json={"app_key": key, "app_secret": secret}, timeout=5)
    return r


def test_auth_paging_and_updated_since(county):
    out, _ = county
    srv = PublicHealthServer(ServerConfig(db_path=out / "public_health" / "platform.sqlite", token_ttl_s=2)).start()
    try:
        assert token(srv.url, secret="nope").status_code == 401
        assert requests.get(f"{srv.url}/api/v1/health-records", timeout=5).status_code == 401
        t = token(srv.url).json()
        assert t["expires_in"] == 2
        h = {"Authorization": f"Bearer {t['access_token']}"}
        first = requests.get(f"{srv.url}/api/v1/health-records", params={"page_size": 300}, headers=h, timeout=5).json()
        total = first["data"]["total"]
        ids, page = [], 1
        while True:
            body = requests.get(f"{srv.url}/api/v1/health-records", params={"page": page, "page_size": 300},
                                headers=h, timeout=5).json()["data"]
            ids += [r["dabh"] for r in body["records"]]
            if len(body["records"]) < 300:
                break
            page += 1
        assert len(ids) == total == len(set(ids))
        pivot = body["records"][0]["updated_at"] if body["records"] else first["data"]["records"][-1]["updated_at"]
        later = requests.get(f"{srv.url}/api/v1/health-records", params={"updated_since": pivot, "page_size": 500},
                             headers=h, timeout=5).json()["data"]["records"]
        assert all(r["updated_at"] > pivot for r in later)  # exclusive
        time.sleep(2.2)
        assert requests.get(f"{srv.url}/api/v1/followups", headers=h, timeout=5).status_code == 401  # expired
    finally:
        srv.stop()


def test_rate_limit_and_faults_are_observable(county):
    out, _ = county
    db = out / "public_health" / "platform.sqlite"
    srv = PublicHealthServer(ServerConfig(db_path=db, rate_limit=3)).start()
    try:
        h = {"Authorization": f"Bearer {token(srv.url).json()['access_token']}"}
        codes = [requests.get(f"{srv.url}/api/v1/followups", headers=h, timeout=5) for _ in range(8)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited and limited[0].headers["Retry-After"] == "1"
    finally:
        srv.stop()
    srv = PublicHealthServer(ServerConfig(db_path=db, fault_5xx=1.0)).start()
    try:
        assert token(srv.url).status_code == 503
    finally:
        srv.stop()


def test_truncated_body_is_really_cut(county):
    out, _ = county
    srv = PublicHealthServer(ServerConfig(db_path=out / "public_health" / "platform.sqlite")).start()
    tok = token(srv.url).json()["access_token"]
    srv.stop()
    srv = PublicHealthServer(ServerConfig(db_path=out / "public_health" / "platform.sqlite", fault_truncate=1.0))
    srv.state.tokens[tok] = time.time() + 60
    srv.start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(f"GET /api/v1/followups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        head, body = raw.split(b"\r\n\r\n", 1)
        length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")).split(b":")[1])
        assert len(body) < length
        try:
            json.loads(body)
            raise AssertionError("a truncated body must not be valid JSON")
        except json.JSONDecodeError:
            pass
    finally:
        srv.stop()


def test_cli_server_starts_and_stops_by_pid(county):
    out, _ = county
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "countyhealth"
    proc = subprocess.Popen([str(exe), "simulate", "serve-public-health", "--county", str(out), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        assert token(f"http://127.0.0.1:{port}").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
