"""A throw-away PostgreSQL cluster for tests: initdb in a temp dir, a free loopback port, stopped by PID.

Found via ``pg_ctl`` on PATH or Debian's ``/usr/lib/postgresql/<ver>/bin``; ``make test`` installs the
Debian packages when neither exists. PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    def __init__(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL not found (no pg_ctl): run `make test`, which installs it with apt-get")
        self.bindir = bindir
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="countyhealth-pg-"))
        self.datadir = self.tmp / "data"
        self.pid: int | None = None
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> "TempPostgres":
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.tmp} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", opts, "-l", str(self.tmp / "log"),
                  "-w", "-t", "60", "start")
        self.pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not listen on port {self.port}; see its log in {self.tmp}")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGINT)  # fast shutdown
                for _ in range(100):
                    os.kill(self.pid, 0)
                    time.sleep(0.1)
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.pid = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def _has_c_utf8() -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.lower()
    return "c.utf8" in out or "c.utf-8" in out
