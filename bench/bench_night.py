"""The nightly job's cost through ``countyhealth pipeline run``: a first run, a night, and a run with nothing new.

A simulated county (``countyhealth.simulate``: HIS databases, the public-health platform over HTTP, the
contract platform's files) is generated, then ``pipeline run`` is invoked three times, each in a fresh process
(so every run pays what a real nightly invocation pays — imports, GX start-up, connections):

1. **first run** — the county's history;
2. **a night** — the county simulated one day further, then ``pipeline run``;
3. **nothing new** — ``pipeline run`` again at once.

Each run's wall time is split by stage (extract, validate, load, identity, shared results, reports) by timing
the pipeline's own stage functions inside that process; ``other`` is imports and start-up. Usage::

    .venv/bin/python bench/bench_night.py --residents 20000 [--days 30] [--workdir DIR] [--markdown]

The real-Airflow-scheduler column is measured by the operations bench (hook: ``--runner`` names the command
that runs one night; default ``pipeline``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "plugins"))

STAGES = {  # stage -> (module, function) timed inside the `pipeline run` process
    "extract": ("countyhealth.pipeline", "extract"),
    "validate": ("countyhealth.pipeline", "validate_batches"),
    "load": ("countyhealth.pipeline", "load_pending"),
    "identity": ("countyhealth.identity", "run"),
    "shared results": ("countyhealth.results", "refresh"),
    "reports": ("countyhealth.pipeline", "publish_run_reports"),
}


def _one_run(out: Path) -> None:
    """Inside the run's own process: time the stages, then invoke the `pipeline run` command as a user would."""
    import importlib

    t0 = time.perf_counter()
    spent = {k: 0.0 for k in STAGES}
    calls = {k: 0 for k in STAGES}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t
                calls[name] += 1
        return wrapper

    from countyhealth import pipeline

    for name, (mod, fn) in STAGES.items():
        m = importlib.import_module(mod)
        setattr(m, fn, timed(name, getattr(m, fn)))
    from countyhealth.pipeline_commands import run_command

    code = 0
    try:
        run_command.main(args=[], standalone_mode=False)
    except SystemExit as e:
        code = int(e.code or 0)
    total = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps({"total": total, "spent": spent, "calls": calls, "exit": code, "rss_mb": rss}))


def _run_apart(env: dict) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--one-run", str(out)], env=env, check=True)
    wall = time.perf_counter() - t
    data = json.loads(out.read_text())
    out.unlink()
    data["wall"] = wall
    return data


def _rows(county_env_data: Path) -> dict:
    import duckdb

    db = county_env_data / "warehouse.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT 'rows', sum(rows_extracted) FROM batch_audit").fetchall())
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--residents", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=30, help="days of history in the first run")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--one-run", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_run:
        _one_run(args.one_run)
        return 0

    from _county import running_county

    from countyhealth.simulate.county import County, load_config

    t = time.perf_counter()
    with running_county(args.residents, args.days, args.workdir, prefix="bench-night-") as (root, county):
        print(f"county ready in {time.perf_counter() - t:.0f} s ({root})", flush=True)
        env = dict(os.environ)
        runs = []
        for label in ("first run", "a night", "nothing new"):
            if label == "a night":
                County(county, load_config(county)).advance(1)
            data = _run_apart(env)
            rows = _rows(root / "data")["rows"]
            data["label"], data["rows_total"] = label, int(rows or 0)
            runs.append(data)
            stages = ", ".join(f"{k} {v:.1f}" for k, v in data["spent"].items())
            print(f"{label}: {data['wall']:.1f} s (exit {data['exit']}; {stages}; peak RSS {data['rss_mb']:.0f} MB)",
                  flush=True)
    before = 0
    lines = ["| run | rows extracted | wall s | extract | validate | load | identity | shared results | reports | "
             "other | peak RSS MB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in runs:
        s = r["spent"]
        extract = s["extract"]
        other = r["wall"] - sum(s.values())
        lines.append(f"| {r['label']} | {r['rows_total'] - before:,} | {r['wall']:.1f} | {extract:.1f} | "
                     f"{s['validate']:.1f} | {s['load']:.1f} | {s['identity']:.1f} | {s['shared results']:.1f} | "
                     f"{s['reports']:.1f} | {other:.1f} | {r['rss_mb']:,.0f} |")
        before = r["rows_total"]
    ratio = runs[2]["wall"] / runs[0]["wall"]
    lines.append(f"\nnothing new ÷ first run: {100 * ratio:.0f} %")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
