"""A real Airflow 3 for tests: API server, scheduler and DAG processor as separate processes (LocalExecutor,
SQLite metadata in a temp AIRFLOW_HOME), started by the test and stopped by PID (each in its own process
group, so the executor's forked workers go with them). Talks to Airflow only through its REST API with a
JWT from /auth/token, as an operator's tooling would.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowUnderTest:
    def __init__(self, home: Path, dags_folder: Path, extra_env: dict[str, str] | None = None):
        self.home = home
        self.port = free_port()
        self.password = secrets.token_urlsafe(12)
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ)
        self.env.update({
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "3",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # tests unpause what they run
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        })
        self.env.update(extra_env or {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _airflow(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        return out.stdout

    def start(self, timeout: float = 180) -> "AirflowUnderTest":
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({"admin": self.password}))
        self._airflow("db", "migrate")
        for name, args in (("api-server", ["api-server", "--port", str(self.port)]),
                           ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"])):
            log = (self.home / f"{name}.log").open("w")
            self.procs[name] = subprocess.Popen([str(BIN / "airflow"), *args], env=self.env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow API did not come up in {timeout}s; see {self.home}/api-server.log")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.home / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():  # whatever ignored SIGTERM, and its forked workers
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    # ---- REST API -----------------------------------------------------------------------------------------
    def token(self) -> str:
        r = requests.post(f"{self.url}/auth/token", json={"username": "admin", "password": self.password}, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]

    def api(self, method: str, path: str, **kw):
        r = requests.request(method, f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {self.token()}"},
                             timeout=30, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                return self.api("GET", f"/dags/{dag_id}")
            except RuntimeError:
                time.sleep(2)
        raise TimeoutError(f"DAG {dag_id} not parsed in {timeout}s; see {self.home}/dag-processor.log")

    def trigger(self, dag_id: str, *, logical_date: str | None, conf: dict | None = None,
                data_interval: tuple[str, str] | None = None) -> str:
        body: dict = {"logical_date": logical_date, "conf": conf or {}}
        if data_interval:
            body["data_interval_start"], body["data_interval_end"] = data_interval
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900, after_clear: bool = False) -> dict:
        deadline = time.monotonic() + timeout
        seen_running = not after_clear
        while time.monotonic() < deadline:
            self._check_alive()
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("queued", "running"):
                seen_running = True
            elif run["state"] in ("success", "failed") and seen_running:
                return run
            time.sleep(3)
        raise TimeoutError(f"run {run_id} of {dag_id} did not finish in {timeout}s")

    def wait_for_backfill(self, dag_id: str, backfill_id, *, expected: int, timeout: float = 900) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            runs = [r for r in self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
                    if r.get("run_type") == "backfill"]
            if len(runs) >= expected and all(r["state"] in ("success", "failed") for r in runs):
                return runs
            time.sleep(5)
        raise TimeoutError(f"backfill {backfill_id} of {dag_id} did not finish in {timeout}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        out = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return {ti["task_id"]: ti["state"] for ti in out["task_instances"]}
