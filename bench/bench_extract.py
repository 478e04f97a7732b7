"""Extraction + landing throughput per connector kind on the simulated county, through the pipeline's own
``pipeline.extract`` (connector → Arrow record batches → Parquet landing with manifest, fsync, rename).

    .venv/bin/python bench/bench_extract.py [--residents 380000] [--days 3] [--workdir DIR]

Kinds, as the county runs them: ``sql`` — every member's HIS (SQLite files through SQLAlchemy, server-side
cursors, incremental predicate); ``rest`` — the public-health platform, a real HTTP server in this process's
threads (token auth, paging, its default request-rate limit and Retry-After); ``file`` — the contract
platform's GB18030 CSV and XLSX drops (checksummed, parsed, archived). Each stream is extracted once from the
start (no watermark), into a fresh landing area. Rows/s is rows landed ÷ wall seconds for the kind's streams;
peak RSS is the whole process (county generation included when it runs here).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=380_000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="keep (or reuse) the county here")
    args = ap.parse_args()
    from _county import running_county

    with running_county(args.residents, args.days, args.workdir, prefix="bench-extract-") as (root, county):
        from countyhealth import pipeline
        from countyhealth.connectors.config import load_sources
        from countyhealth.warehouse import Warehouse

        wh = Warehouse(f"duckdb:///{root / 'bench-extract-warehouse.duckdb'}")
        wh.migrate()
        per_kind: dict[str, dict] = defaultdict(lambda: {"rows": 0, "seconds": 0.0, "streams": 0})
        slowest: dict[str, tuple[float, str, int]] = {}
        for source_id, source in load_sources().items():
            for stream_name, stream in source.streams.items():
                if not stream.enabled:
                    continue
                t0 = time.perf_counter()
                manifest = pipeline.extract(source_id, stream_name, wh=wh, source=source)
                secs = time.perf_counter() - t0
                k = per_kind[source.kind]
                k["rows"] += manifest.rows
                k["seconds"] += secs
                k["streams"] += 1
                if manifest.rows and secs > slowest.get(source.kind, (0.0, "", 0))[0]:
                    slowest[source.kind] = (secs, f"{source_id}/{stream_name}", manifest.rows)
        wh.engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n### Extraction and landing: {args.residents:,} residents, {args.days} day(s)\n")
    print(f"`.venv/bin/python bench/bench_extract.py --residents {args.residents} --days {args.days}`\n")
    print("| kind | streams | rows landed | seconds | rows/s | slowest stream |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for kind in sorted(per_kind):
        k = per_kind[kind]
        s = slowest.get(kind)
        slow = f"{s[1]}: {s[2]:,} rows in {s[0]:.1f} s" if s else ""
        print(f"| {kind} | {k['streams']} | {k['rows']:,} | {k['seconds']:.1f} | {k['rows'] / max(k['seconds'], 1e-9):,.0f} "
              f"| {slow} |")
    print(f"\nPeak RSS {peak:,.0f} MB.")


if __name__ == "__main__":
    main()
