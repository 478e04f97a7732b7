"""kill -9 mid-night, then rerun: the warehouse ends exactly as a clean night leaves it.

A child process runs the night and sends itself SIGKILL at a chosen point — inside an extract (some streams
landed, none validated), inside a load transaction (a batch's rows written, not committed) and inside identity
(persons written, their records not) — and the next run recovers from what the dead one left behind (its run
lock, landed batches, an open transaction). The kills come one after another, each in the rerun of the last,
so recovery itself is crashed too. Then one clean rerun, and every data table, quarantine, finding, watermark,
identity cluster and shared result is compared, order-independently, with a clean night on its own county.
Person ids are compared by cluster (which records share one), as two runs may number persons differently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa

from countyhealth import model
from countyhealth.simulate.county import CountyConfig, generate
from county_env import make_env

# Where the child kills itself: (module, function, which call). The wrapped function runs its body for the
# calls before and the process dies as the chosen call starts, so earlier work is on disk or in an open
# transaction.
KILL_POINTS = {
    "extract": ("countyhealth.pipeline", "extract", 3),  # two streams landed, the night's validation not begun
    "load": ("countyhealth.pipeline", "_load_batch_in", 2),  # mid-transaction: one batch's rows written
    "identity": ("countyhealth.identity.linking", "_write_records", 1),  # persons written, their records not
}

_CHILD = textwrap.dedent("""
    import importlib, os, signal, sys
    from countyhealth import pipeline_commands  # noqa: F401 - the CLI's run: the lock, then the night
    point = sys.argv[1]
    if point != "none":
        module, name, nth = sys.argv[2], sys.argv[3], int(sys.argv[4])
        mod = importlib.import_module(module)
        real, calls = getattr(mod, name), []
        def dying(*args, **kwargs):
            calls.append(1)
            if len(calls) >= nth:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        setattr(mod, name, dying)
    from countyhealth.cli import main
    sys.argv = ["countyhealth", "pipeline", "run"]
    main()
""")


def _night(kill_at: str | None, script) -> subprocess.CompletedProcess:
    # a script file, not ``python -c``: pyspark (imported by splink) takes a main module without a file for
    # its doctest runner and exits 0 on import
    script.write_text(_CHILD)
    args = [kill_at or "none", *map(str, KILL_POINTS.get(kill_at, ()))]
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=os.environ,
                          timeout=900)


def _state(url: str) -> dict:
    """The warehouse's content with run-specific values (batch ids, load times, person numbers) left out."""
    engine = sa.create_engine(url)
    out: dict = {}
    try:
        with engine.connect() as conn:
            def rows(sql):
                return Counter(tuple(_plain(v) for v in r) for r in conn.exec_driver_sql(sql))

            for ds in model.DATASET_NAMES:
                names = [f.name for f in model.fields(ds) if f.name != "batch_id"]
                out[ds] = rows(f"SELECT {', '.join(names)} FROM {ds}")
            for table in ("quarantine", "finding"):
                out[table] = rows(f"SELECT dataset, source_id, source_record_id, rule_id, column_name FROM {table}")
            out["watermark"] = rows("SELECT source_id, stream, cursor_value FROM watermark")
            clusters = defaultdict(set)
            for sid, rid, pid in conn.exec_driver_sql(
                    "SELECT source_id, source_record_id, person_id FROM identity_record"):
                clusters[pid].add((sid, rid))
            out["identity clusters"] = Counter(frozenset(c) for c in clusters.values())
            out["shared lab results"] = rows("SELECT source_id, source_record_id FROM shared_lab_result")
            out["shared exam reports"] = rows("SELECT source_id, source_record_id FROM shared_exam_report")
    finally:
        engine.dispose()
    return out


def _plain(value):
    return round(value, 6) if isinstance(value, float) else value


@pytest.fixture(scope="module")
def small_county(tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "county"
    generate(out, CountyConfig(seed=11, residents=300, days=2, county_hospitals=1, townships=1,
                               villages_per_township=2))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_kill_9_at_extract_load_and_identity_then_rerun_equals_a_clean_night(engine, tmp_path, small_county,
                                                                            monkeypatch, request):
    def url(name):
        if engine == "duckdb":
            return f"duckdb:///{tmp_path / name / 'warehouse.duckdb'}"
        return request.getfixturevalue("postgres_server").create_database(f"kill_{name}_{os.getpid()}")

    # one county key for both nights, so sealed ID numbers and their keyed hashes compare equal
    monkeypatch.setenv("COUNTYHEALTH_SECRET_KEY", "kill-and-rerun-test-county-key-0123456789")
    states = {}
    for name, kills in (("clean", []), ("crashed", list(KILL_POINTS))):
        wh_url = url(name)
        monkeypatch.setenv("COUNTYHEALTH_WAREHOUSE_URL", wh_url)
        env = make_env(tmp_path / name, small_county, monkeypatch)
        try:
            for point in kills:
                night = _night(point, tmp_path / "night.py")
                assert night.returncode == -signal.SIGKILL, (point, night.returncode, night.stdout[-3000:], night.stderr[-3000:])
            night = _night(None, tmp_path / "night.py")
            assert night.returncode == 0, (night.stdout[-3000:], night.stderr[-3000:])
            assert "shared results" in night.stderr  # the night ran to its end
        finally:
            env.stop()
        states[name] = _state(wh_url)
    clean, crashed = states["clean"], states["crashed"]
    # the clean night is not empty, so equality says something
    assert sum(clean["lab_result"].values()) > 10 and sum(clean["identity clusters"].values()) > 50
    assert sum(clean["shared lab results"].values()) > 0
    for part in clean:
        assert crashed[part] == clean[part], (part, (crashed[part] - clean[part]), (clean[part] - crashed[part]))
