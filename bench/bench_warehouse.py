"""Warehouse loader throughput: upserting lab_result rows on DuckDB and PostgreSQL.

    .venv/bin/python bench/bench_warehouse.py [--rows 1000000]

Loads N synthetic lab results in 100k-row record batches (first load = inserts), then loads the same
rows again (all conflicts = updates), and reports rows/s and peak RSS. PostgreSQL runs on a throw-away
cluster started here (tests/pg.py) and stopped by PID. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pg import TempPostgres  # noqa: E402

from countyhealth import model  # noqa: E402
from countyhealth.warehouse import Warehouse  # noqa: E402


def batches(n: int, size: int = 100_000):
    base = dt.datetime(2026, 3, 1)
    for start in range(0, n, size):
        k = min(size, n - start)
        idx = range(start, start + k)
        yield pa.record_batch(
            {
                "source_id": pa.array(["his_a_350125001"] * k),
                "source_record_id": pa.array([f"L{i:09d}" for i in idx]),
                "facility_code": pa.array(["350125001"] * k),
                "batch_id": pa.array(["bench"] * k),
                "source_updated_at": pa.array([base] * k, model.TS),
                "person_source_record_id": pa.array([f"P{i % 380000}" for i in idx]),
                "report_number": pa.array([f"R{i // 8}" for i in idx]),
                "report_at": pa.array([base] * k, model.TS),
                "item_code_local": pa.array(["GLU"] * k),
                "value_numeric": pa.array([5.0 + (i % 100) / 10 for i in idx]),
                "unit": pa.array(["mmol/L"] * k),
                "result_status": pa.array(["final"] * k),
            }
        )


def run(url: str, n: int) -> tuple[float, float]:
    wh = Warehouse(url)
    wh.migrate()
    t0 = time.perf_counter()
    wh.load("lab_result", batches(n))
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    wh.load("lab_result", batches(n))
    update_s = time.perf_counter() - t0
    assert wh.count("lab_result") == n
    return n / insert_s, n / update_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("DuckDB", *run(f"duckdb:///{tmp}/w.duckdb", args.rows)))
    pg = TempPostgres().start()
    try:
        rows.append(("PostgreSQL", *run(pg.create_database("bench"), args.rows)))
    finally:
        pg.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.rows:,} lab_result rows, 100k-row batches; peak RSS {peak_mb:,.0f} MB\n")
    print("| engine | insert rows/s | re-load (upsert) rows/s |\n| --- | ---: | ---: |")
    for name, ins, upd in rows:
        print(f"| {name} | {ins:,.0f} | {upd:,.0f} |")


if __name__ == "__main__":
    main()
