"""One pipeline run at a time: a run lock, held for the whole of ``countyhealth pipeline run``.

Two runs at once are safe for the data (keys and watermarks make reruns idempotent) but do the night's work twice
and fight over DuckDB's single writer. So a run takes the lock first; a second run says who holds it since when
and exits 75 (``EX_TEMPFAIL`` in sysexits.h: try again later — what cron wrappers and systemd understand).

- **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) on a connection of its own, held until
  the run ends. The server releases it when that session ends for any reason — a ``kill -9`` of the run included —
  so a lock is never left behind. The holder names itself in ``application_name`` (host, pid, start time), which
  the second run reads from ``pg_stat_activity``.
- **DuckDB**: ``<data dir>/run.lock``, locked with ``fcntl.flock`` and holding the holder's host, pid and start
  time. The kernel drops a flock when its process dies, so a stale file never blocks; the file stays (0600).

In Airflow the DAGs keep ``max_active_runs=1`` (:mod:`countyhealth.orchestration`); the lock is for the CLI and
cron, and for a CLI run started while Airflow's is going on against the same warehouse.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator

import sqlalchemy as sa

from countyhealth import settings

EXIT_LOCKED = 75  # EX_TEMPFAIL
_PG_KEY = 0x636F756E7479  # "county": one advisory lock key for the pipeline run
_APP_PREFIX = "countyhealth run"


class RunLocked(RuntimeError):
    """Another run holds the lock; the message says who and since when."""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": _now()}


def _describe(holder: dict | None, where: str) -> str:
    if not holder:
        return f"another pipeline run holds the run lock ({where}); wait for it to finish, then run again"
    return (f"another pipeline run is in progress: pid {holder.get('pid')} on {holder.get('host')} since "
            f"{holder.get('since')} ({where}); wait for it to finish, then run again")


@contextlib.contextmanager
def _file_lock() -> Iterator[None]:
    path = settings.data_dir() / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
            except ValueError:
                holder = None
            raise RunLocked(_describe(holder, "lock file run.lock in the data dir")) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        os.fsync(fd)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _advisory_lock(engine: sa.Engine) -> Iterator[None]:
    me = _holder()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT set_config('application_name', :a, false)"),
                     {"a": f"{_APP_PREFIX} {me['pid']}@{me['host']}"[:63]})  # PostgreSQL keeps 63 bytes
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_KEY}).scalar()
        conn.commit()
        if not got:
            row = conn.execute(sa.text(
                "SELECT a.application_name, a.pid, a.client_addr, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.objid = (:k & 4294967295) AND l.classid = (:k >> 32)"), {"k": _PG_KEY}).first()
            holder = None
            if row is not None:  # the holder's session began when its run did
                pid, _, host = (row.application_name or "").removeprefix(_APP_PREFIX).strip().partition("@")
                holder = {"pid": pid or f"(server backend {row.pid})", "host": host or row.client_addr or "local",
                          "since": row.backend_start.astimezone(dt.timezone.utc).isoformat(timespec="seconds")}
            raise RunLocked(_describe(holder, "PostgreSQL advisory lock"))
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_KEY})
            conn.commit()


@contextlib.contextmanager
def held(wh) -> Iterator[None]:
    """Hold the run lock of this warehouse for the block; :class:`RunLocked` if another run holds it."""
    lock = _advisory_lock(wh.engine) if wh.dialect == "postgresql" else _file_lock()
    with lock:
        yield


@contextlib.contextmanager
def one_run(wh=None) -> Iterator[None]:
    """For the CLI: hold the lock, or say who holds it (one line, no traceback) and exit 75."""
    from countyhealth.warehouse import Warehouse

    try:
        with held(wh or Warehouse()):
            yield
    except RunLocked as exc:
        print(f"countyhealth: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_LOCKED) from None
