"""``countyhealth demo``: the nightly job, run by Airflow itself, on a freshly simulated county.

1. simulate a county shaped like the default sources/ (3 county-level hospitals, 20 township centres);
2. start its public-health platform (a real HTTP server) and give Airflow the county's connections;
3. load the labs' EQA results (互认 needs them);
4. for each simulated day: ``airflow dags test countyhealth_nightly`` for that day's data interval
   (metadata in SQLite under data/airflow), then move the county forward a day;
5. print what the warehouse holds, where the run report is, and one resident's shared results gathered
   from several members.

Everything lives under the data directory (``COUNTYHEALTH_DATA_DIR``, default ``data/``) and is replaced on
each demo run; stop the platform server is done by PID on the way out, whatever happens.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click

from countyhealth import settings

DEMO_PARTS = ("county", "landing", "airflow", "reports", "results", "warehouse.duckdb", "warehouse.duckdb.wal")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def airflow_env(data: Path, county: Path) -> dict[str, str]:
    home = settings.project_home()
    env = dict(os.environ)
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "COUNTYHEALTH_HOME": str(home), "COUNTYHEALTH_DATA_DIR": str(data), "COUNTYHEALTH_COUNTY_DIR": str(county),
        "AIRFLOW_HOME": str(data / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4", "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })
    for line in (county / "connections.env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    return env


def _nights(bar, county: Path, days: int, start: dt.date, env: dict, outcomes: list, echo) -> None:
    """One ``airflow dags test`` per simulated night, moving the county forward a day between them."""
    from countyhealth.simulate.county import County, load_config

    for day in range(days):
        if day:
            County(county, load_config(county)).advance(1)
        date = start + dt.timedelta(days=day)
        # the run for `date` covers [date 02:00, date+1 02:00) Asia/Shanghai; its logical date ends the interval
        logical = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(2, 0)).isoformat() + "+08:00"
        t1 = time.monotonic()
        proc = subprocess.run([_bin("airflow"), "dags", "test", "countyhealth_nightly", logical], env=env,
                              capture_output=True, text=True)
        ok = proc.returncode == 0
        outcomes.append((date, ok))
        echo(f"night of {date}: airflow dags test countyhealth_nightly {logical} → "
             f"{'success' if ok else 'finished with failures (see the run report)'} "
             f"({time.monotonic() - t1:.0f}s)")
        if not ok:
            tail = "\n".join(l for l in (proc.stdout + proc.stderr).splitlines() if "ERROR" in l or "failed" in l)
            echo("  " + "\n  ".join(tail.splitlines()[-8:]))
        bar.advance(f"night of {date}")


def run_demo(residents: int, days: int, seed: int, start: dt.date, *, history: int = 7, echo=click.echo) -> dict:
    from countyhealth.simulate.county import CountyConfig, generate

    data = settings.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    for part in DEMO_PARTS:
        target = data / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    county = data / "county"
    t0 = time.monotonic()
    # a week of history before the first night: the first run loads it all (no watermark yet), the next
    # nights load one day each
    first = start - dt.timedelta(days=history)
    generate(county, CountyConfig(seed=seed, residents=residents, days=history + 1, start_date=first))
    echo(f"simulated a county of {residents:,} residents with {history} days of history "
         f"({time.monotonic() - t0:.0f}s): {county}")
    env = airflow_env(data, county)
    port = _free_port()
    server = subprocess.Popen([_bin("countyhealth"), "simulate", "serve-public-health", "--county", str(county),
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    key = env.get("COUNTYHEALTH_PH_APP_KEY", "countyhealth-demo")
    secret = env.get("COUNTYHEALTH_PH_APP_SECRET", "demo-secret")
    env["AIRFLOW_CONN_PUBLIC_HEALTH"] = f"http://{key}:{secret}@127.0.0.1:{port}"
    outcomes = []
    try:
        subprocess.run([_bin("airflow"), "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run([_bin("countyhealth"), "warehouse", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([_bin("countyhealth"), "results", "load-eqa", str(county / "registry" / "eqa.csv")], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        from countyhealth.progress import steps

        with steps(days, "demo nights") as bar:
            _nights(bar, county, days, start, env, outcomes, echo)
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
    return {"outcomes": outcomes, "env": env}


def summary(echo=click.echo) -> str | None:
    import sqlalchemy as sa

    from countyhealth import model
    from countyhealth.warehouse import Warehouse

    wh = Warehouse()
    with wh.engine.connect() as conn:
        echo("\nwarehouse " + settings.warehouse_url())
        for dataset in model.DATASET_NAMES:
            echo(f"  {dataset:<18} {wh.count(dataset):>9,}")
        q = conn.execute(sa.text("SELECT count(DISTINCT batch_id || '#' || CAST(row_number AS VARCHAR)), "
                                 "count(DISTINCT rule_id) FROM quarantine")).fetchall()[0]
        held = conn.execute(sa.text("SELECT count(DISTINCT batch_id) FROM batch_audit WHERE status = 'held'")).scalar()
        bad = conn.execute(sa.text("SELECT count(*) FROM batch_audit WHERE status NOT IN ('held', 'superseded') AND rows_extracted <> "
                                   "rows_loaded + rows_quarantined + rows_duplicate")).scalar()
        persons = conn.execute(sa.text("SELECT count(*) FROM empi_person WHERE status = 'active'")).scalar()
        review = conn.execute(sa.text("SELECT count(*) FROM identity_review WHERE status = 'open'")).scalar()
        labs = conn.execute(sa.text("SELECT count(*) FROM shared_lab_result")).scalar()
        exams = conn.execute(sa.text("SELECT count(*) FROM shared_exam_report")).scalar()
        echo(f"  quarantined rows   {q[0]:>9,} (by {q[1]} rules); held batches {held}; reconciliation "
             f"{'exact for every batch' if bad == 0 else f'MISMATCH in {bad} batches'}")
        echo(f"  persons (EMPI)     {persons:>9,}; {review} pairs waiting for review")
        echo(f"  shared results     {labs:>9,} lab results, {exams:,} exam reports")
        pick = conn.execute(sa.text(
            "SELECT person_id FROM (SELECT person_id, facility_code FROM shared_lab_result UNION "
            "SELECT person_id, facility_code FROM shared_exam_report) x GROUP BY person_id "
            "ORDER BY count(DISTINCT facility_code) DESC, person_id LIMIT 1")).scalar()
    report = settings.reports_dir() / "run-report.html"
    echo(f"  run report         {report}" if report.exists() else "  (no run report written)")
    return pick


@click.command()
@click.option("--residents", default=3000, show_default=True, help="Size of the simulated county.")
@click.option("--days", default=3, show_default=True, help="Nights to run, one simulated day each.")
@click.option("--seed", default=42, show_default=True)
@click.option("--start-date", type=click.DateTime(["%Y-%m-%d"]), default="2026-03-01", show_default=True)
def demo(residents: int, days: int, seed: int, start_date) -> None:
    """Simulate a county and run the nightly DAG through Airflow for several days; show what came out."""
    result = run_demo(residents, days, seed, start_date.date())
    person = summary()
    if person:
        click.echo(f"\none resident's shared results, gathered from several members "
                   f"(countyhealth results {person} --as-of {start_date.date() + dt.timedelta(days=days)}):\n")
        proc = subprocess.run([_bin("countyhealth"), "results", person, "--as-of",
                               (start_date.date() + dt.timedelta(days=days)).isoformat()],
                              env=result["env"], capture_output=True, text=True)
        click.echo(proc.stdout or proc.stderr)
