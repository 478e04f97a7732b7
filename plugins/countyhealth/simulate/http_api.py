"""What the simulated county's HTTP platforms share: a JSON request handler, a sliding-window rate limit and a
server started on a loopback port in a thread (tests) or in the foreground (CLI).

Built on the standard library's ThreadingHTTPServer: small, no dependency. Each platform (public_health.py,
regional_lab.py) writes its own endpoints and habits on top.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def platform_db(path, tables: dict[str, list[str]], *, fresh: bool):
    """A platform's SQLite store: made anew (text columns) when ``fresh``, else opened as it is."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    if fresh and path.exists():
        path.unlink()
    db = sqlite3.connect(path)
    if fresh:
        for name, columns in tables.items():
            db.execute(f"CREATE TABLE {name} ({', '.join(c + ' TEXT' for c in columns)})")
    return db


class SlidingWindow:
    """At most ``limit`` events in any second (thread-safe): the platforms' own rate limit."""

    def __init__(self, limit: float):
        self.limit = limit
        self.events: list[float] = []
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.events = [t for t in self.events if now - t < 1.0]
            if len(self.events) >= self.limit:
                return False
            self.events.append(now)
            return True


def credentials(key_var: str, secret_var: str, key: str, secret: str) -> tuple[str, str]:
    """A platform's credentials from two environment variables, or the demo's."""
    import os

    return os.environ.get(key_var, key), os.environ.get(secret_var, secret)


class ApiState:
    """What a running platform keeps: its settings (changeable while it runs), issued tokens, its rate window."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.tokens: dict[str, float] = {}
        self.lock = threading.Lock()
        self.window = SlidingWindow(cfg.rate_limit)


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON (or an HTML error page, as gateways do) and reads form or JSON bodies."""

    def log_message(self, *args):  # quiet: tests and the demo run many requests
        pass

    def _send(self, status: int, body: dict | str, headers: dict | None = None, truncate: bool = False):
        raw = (json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body).encode("utf-8")
        if truncate:
            raw = raw[: max(1, len(raw) // 2)]
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8" if isinstance(body, dict)
                         else "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(raw) if not truncate else len(raw) * 2))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)
        if truncate:
            self.close_connection = True

    def _body(self) -> tuple[str, dict | None]:
        """The request body as (its encoding, its fields): ``json``, ``form`` or ``other``; None if unreadable."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                data = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return "json", None
            return "json", data if isinstance(data, dict) else None
        if kind == "application/x-www-form-urlencoded":
            return "form", {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        return "other", None


class ApiServer:
    """Serve a handler class on 127.0.0.1:port (0: a free port) in a background thread or in the foreground."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0, host: str = "127.0.0.1"):
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ApiServer":
        # a short poll: stop() returns within 50 ms instead of the default half second
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
