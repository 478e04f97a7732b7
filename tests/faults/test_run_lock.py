"""One run at a time: while a run holds the lock, a second `pipeline run` says who holds it since when and exits
75; the lock is gone once the holder ends (PostgreSQL advisory lock; a flock'd file on DuckDB)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from countyhealth import run_lock
from countyhealth.warehouse import Warehouse


def _second_run(env_extra: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-m", "countyhealth.cli", "pipeline", "run", "--no-downstream"],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_a_second_run_names_the_holder_and_exits_75(engine, request, tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}" if engine == "duckdb" else request.getfixturevalue("pg_url")
    wh = Warehouse(url)
    with run_lock.held(wh):
        with pytest.raises(run_lock.RunLocked) as info:
            with run_lock.held(Warehouse(url)):
                pass
        assert f"pid {os.getpid()}" in str(info.value) and " since 20" in str(info.value)
        if engine == "duckdb":  # the CLI itself, as cron would start it
            out = _second_run({"COUNTYHEALTH_WAREHOUSE_URL": url, "COUNTYHEALTH_DATA_DIR": os.environ[
                "COUNTYHEALTH_DATA_DIR"]})
            assert out.returncode == 75, out.stderr
            assert f"pid {os.getpid()}" in out.stderr and "Traceback" not in out.stderr
            assert len(out.stderr.strip().splitlines()) == 1
    with run_lock.held(Warehouse(url)):  # released with its holder
        pass
