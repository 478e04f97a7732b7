"""Simulated county generation: time and peak memory, and rows per day per dataset.

    .venv/bin/python bench/bench_simulate.py [--residents 380000] [--days 3]

Generates the county into a temporary folder (SQLite HIS databases, the platform store, contract exports,
ground truth) and reports seconds, peak RSS and the rows each source holds per simulated day. Memory is bounded
by the population (residents and each member's patient index), not by the number of days: rows are written
day by day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=380_000)
    ap.add_argument("--days", type=int, default=3)
    args = ap.parse_args()
    from countyhealth.simulate.county import CountyConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(Path(tmp) / "county", CountyConfig(residents=args.residents, days=args.days,
                                                    start_date=dt.date(2026, 3, 1)))
        secs = time.perf_counter() - t0
        counts = json.loads((Path(tmp) / "county" / "truth" / "expected_counts.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    totals: dict[str, int] = {}
    kinds = {"PAT_MASTER_INDEX": "HIS patients", "hz_jbxx": "HIS patients", "PAT_VISIT": "visits",
             "mz_jzjl": "visits", "LAB_RESULT": "lab results", "jy_jg": "lab results", "EXAM_REPORT": "exam reports",
             "jc_bg": "exam reports", "health_record": "health records", "followup": "follow-ups",
             "contracts": "contract rows", "facilities": "facilities"}
    for tables in counts["rows"].values():
        for table, n in tables.items():
            totals[kinds.get(table, table)] = totals.get(kinds.get(table, table), 0) + n
    print(f"\n### Simulated county: {args.residents:,} residents, {args.days} day(s)\n")
    print(f"`.venv/bin/python bench/bench_simulate.py --residents {args.residents} --days {args.days}`: "
          f"{secs:.0f} s, peak RSS {peak:,.0f} MB.\n")
    print("| source rows | total | note |\n| --- | ---: | --- |")
    notes = {"health records": "backlog: ~92% of residents", "follow-ups": "backlog + due each day",
             "facilities": "the registry", "HIS patients": "registered at first visit",
             "contract rows": "backlog + daily events"}
    for k, v in sorted(totals.items()):
        print(f"| {k} | {v:,} | {notes.get(k, f'~{v // max(1, args.days):,} per day')} |")


if __name__ == "__main__":
    main()
