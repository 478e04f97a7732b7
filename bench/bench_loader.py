"""The warehouse loader side by side with dlt, pandas and the engines' own bulk paths, on the same rows.

    .venv/bin/pip install -e '.[bench]'          # dlt, for this bench only (not a runtime dependency)
    .venv/bin/python bench/bench_loader.py [--rows 1000000] [--engines duckdb,postgresql] [--svg docs/img/loader.svg]

The same N ``lab_result`` rows (every column a county's LIS fills, realistic widths, 100k-row Arrow batches) go
into the same primary key (``source_id, source_record_id``) on DuckDB and PostgreSQL by:

- **countyhealth** — ``Warehouse.load``: the first load into an empty table, then the same rows again (every key
  present, nothing changed: a night's overlap re-read), then with 10 % of the rows changed;
- **dlt merge** — ``write_disposition="merge"`` on the same primary key (dlt's default ``delete-insert``
  strategy), first into an empty dataset, then the same rows again; **dlt append** — the first load only; dlt
  gets its fastest documented file format per destination (Parquet for DuckDB, CSV/COPY for PostgreSQL);
- **pandas** ``DataFrame.to_sql`` (``method="multi"``, chunks as large as PostgreSQL's 65,535 bind parameters allow) — appends, the first load only, on
  ``--pandas-rows`` rows (it is slow; its rate is what is compared);
- **the limit** — the engine's own bulk path into the same (migrated, empty) table: DuckDB ``INSERT … SELECT``
  from the Arrow batches, PostgreSQL ``COPY … FROM STDIN`` of their CSV.

Each measurement runs in a fresh process (no warm caches or memory carried between contenders) on a fresh
database; the rows are read from one Parquet file before the clock starts. Prints rows/s, the ratios the issue
sets targets for (ours ≥ 3× dlt merge, ≥ 40 % of the limit) and peak RSS, and writes an SVG bar chart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

KEY = ("source_id", "source_record_id")
BATCH = 100_000


def make_rows(n: int, path: Path, *, changed_share: float = 0.0) -> None:
    """N lab results as a LIS sends them, written to ``path``; ``changed_share`` of them with a new value and
    a later update time (what a night's corrections look like)."""
    import numpy as np

    from countyhealth import model

    rng = np.random.default_rng(7)
    base = dt.datetime(2026, 3, 1, 8)
    items = np.array(["GLU", "K", "NA", "CL", "CREA", "UREA", "ALT", "AST", "TBIL", "HBA1C", "WBC", "HGB"])
    units = np.array(["mmol/L", "mmol/L", "mmol/L", "mmol/L", "umol/L", "mmol/L", "U/L", "U/L", "umol/L", "%",
                      "10^9/L", "g/L"])
    writer = None
    for start in range(0, n, BATCH):
        k = min(BATCH, n - start)
        idx = np.arange(start, start + k)
        item = rng.integers(0, len(items), k)
        value = np.round(rng.normal(5.0, 1.5, k), 2)
        updated = np.array([base + dt.timedelta(minutes=int(i // 50)) for i in idx], dtype="datetime64[us]")
        if changed_share:
            changed = rng.random(k) < changed_share
            value = np.where(changed, value + 0.5, value)
            updated = np.where(changed, updated + np.timedelta64(1, "D"), updated)
        report_at = updated - np.timedelta64(2, "h")
        facility = np.array([f"35012510{i % 10}" for i in idx // 40_000])
        cols = {
            "source_id": pa.array([f"his_w{f}" for f in facility]),
            "source_record_id": pa.array([f"LR{i:010d}" for i in idx]),
            "facility_code": pa.array(facility),
            "batch_id": pa.array(["20260301T020000-bench"] * k),
            "source_updated_at": pa.array(updated, model.TS),
            "person_source_record_id": pa.array([f"P{i % 380_000:08d}" for i in idx]),
            "report_number": pa.array([f"R{i // 8:09d}" for i in idx]),
            "report_at": pa.array(report_at, model.TS),
            "request_number": pa.array([f"Q{i // 8:09d}" for i in idx]),
            "outpatient_number": pa.array([f"MZ{i // 24:08d}" for i in idx]),
            "diagnosis_code": pa.array(np.where(item % 3 == 0, "E11.900", "I10.x00")),
            "specimen_number": pa.array([f"S{i // 8:09d}" for i in idx]),
            "specimen_type": pa.array(np.where(item < 10, "血清", "全血")),
            "collected_at": pa.array(report_at - np.timedelta64(3, "h"), model.TS),
            "received_at": pa.array(report_at - np.timedelta64(150, "m"), model.TS),
            "tested_at": pa.array(report_at - np.timedelta64(1, "h"), model.TS),
            "item_code_local": pa.array(items[item]),
            "item_name_local": pa.array([f"项目{c}" for c in items[item]]),
            "item_code_standard": pa.array(np.where(item < 6, "2345-7", "4548-4")),
            "category": pa.array(np.where(item < 10, "生化", "血常规")),
            "value_numeric": pa.array(value),
            "value_text": pa.array(value.astype(str)),
            "unit": pa.array(units[item]),
            "reference_range": pa.array(["3.9-6.1"] * k),
            "abnormal_flag": pa.array(np.where(value > 6.1, "H", np.where(value < 3.9, "L", "N"))),
            "result_status": pa.array(["final"] * k),
            "instrument": pa.array(np.where(item < 10, "AU5800", "XN-1000")),
        }
        table = model.conform("lab_result", pa.table(cols))
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


# ---- contenders: each runs in its own process (``--one``) ---------------------------------------------------

def _batches(path: Path) -> list[pa.Table]:
    return [pa.Table.from_batches([b]) for b in pq.ParquetFile(path).iter_batches(batch_size=BATCH)]


def _fresh_warehouse(url: str):
    from countyhealth.warehouse import Warehouse

    wh = Warehouse(url)
    wh.migrate()
    return wh


def ours(url: str, data: Path, again: Path | None, changed: Path | None) -> dict:
    wh = _fresh_warehouse(url)
    out = {}
    for label, path in (("first", data), ("unchanged", again), ("changed 10%", changed)):
        if path is None:
            continue
        tables = _batches(path)
        t0 = time.perf_counter()
        wh.load("lab_result", iter(tables))
        out[label] = time.perf_counter() - t0
    return out


def limit(url: str, data: Path) -> dict:
    """The engine's own bulk path into the same empty, migrated table."""
    import io

    import pyarrow.csv as pacsv

    wh = _fresh_warehouse(url)
    tables = _batches(data)
    cols = ", ".join(tables[0].column_names)
    t0 = time.perf_counter()
    with wh.engine.begin() as conn:
        raw = conn.connection.driver_connection
        if wh.dialect == "duckdb":
            for t in tables:
                raw.register("_in", t)
                raw.execute(f"INSERT INTO lab_result ({cols}) SELECT {cols} FROM _in").fetchall()
                raw.unregister("_in")
        else:
            with raw.cursor() as cur:
                for t in tables:
                    buf = io.BytesIO()
                    pacsv.write_csv(t, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
                    with cur.copy(f"COPY lab_result ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
                        copy.write(buf.getvalue())
    return {"first": time.perf_counter() - t0}


def pandas_to_sql(url: str, data: Path, rows: int) -> dict:
    import sqlalchemy as sa

    wh = _fresh_warehouse(url)
    frame = pq.read_table(data).slice(0, rows).to_pandas()
    t0 = time.perf_counter()
    with wh.engine.begin() as conn:
        frame.to_sql("lab_result", conn, if_exists="append", index=False, method="multi",
                     chunksize=65_000 // len(frame.columns))  # PostgreSQL takes at most 65,535 bind parameters
    seconds = time.perf_counter() - t0
    with wh.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lab_result")).scalar() == rows
    return {"first": seconds}


def dlt_load(url: str, data: Path, disposition: str, tmp: Path) -> dict:
    import dlt

    os.environ["DLT_DATA_DIR"] = str(tmp / "dlt-data")
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["DLT_TELEMETRY_DISABLED"] = "1"
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    if url.startswith("duckdb"):
        destination = dlt.destinations.duckdb(url.removeprefix("duckdb:///"))
        file_format = "parquet"
    else:
        # dlt insists on a password; the throw-away cluster trusts loopback and ignores it
        destination = dlt.destinations.postgres(url.replace("postgresql+psycopg://postgres@", "postgresql://postgres:bench@"))
        file_format = "csv"
    pipeline = dlt.pipeline(pipeline_name=f"bench_{disposition}", destination=destination, dataset_name="dlt_bench",
                            pipelines_dir=str(tmp / "dlt-pipelines"))
    out = {}
    for label in ("first", "unchanged") if disposition == "merge" else ("first",):
        tables = _batches(data)

        @dlt.resource(name="lab_result", write_disposition=disposition,
                      primary_key=KEY if disposition == "merge" else None)
        def rows():
            yield from tables

        t0 = time.perf_counter()
        pipeline.run(rows(), loader_file_format=file_format)
        out[label] = time.perf_counter() - t0
    return out


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run_one(args) -> None:
    spec = json.loads(args.one)
    url, data = spec["url"], Path(spec["data"])
    kind = spec["kind"]
    if kind == "ours":
        out = ours(url, data, Path(spec["again"]), Path(spec["changed"]))
    elif kind == "limit":
        out = limit(url, data)
    elif kind == "pandas":
        out = pandas_to_sql(url, data, spec["pandas_rows"])
    else:
        out = dlt_load(url, data, kind.removeprefix("dlt_"), Path(spec["tmp"]))
    out["peak_mb"] = _peak_mb()
    print(json.dumps(out))


def _in_process(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"{spec['kind']} on {spec['url'].split(':')[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the comparison --------------------------------------------------------------------------------------

def svg_chart(results: dict, rows: int) -> str:
    """Horizontal bars, rows/s of each contender's first load, one group per engine (inline SVG, no library)."""
    labels = [("limit", "engine bulk path (the limit)"), ("ours", "countyhealth Warehouse.load"),
              ("dlt_append", "dlt append"), ("dlt_merge", "dlt merge"), ("pandas", "pandas to_sql")]
    engines = list(results)
    top = max(v["rate"] for e in engines for v in results[e].values())
    bar, gap, left, width = 18, 6, 250, 420
    height = 40 + len(engines) * (len(labels) * (bar + gap) + 36)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 130}" height="{height}" '
           'font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="14" font-weight="bold">First load of {rows:,} lab_result rows, '
           'rows per second (higher is better)</text>']
    y = 40
    for engine in engines:
        out.append(f'<text x="10" y="{y + 12}" font-weight="bold">{engine}</text>')
        y += 20
        for key, label in labels:
            if key not in results[engine]:
                continue
            rate = results[engine][key]["rate"]
            w = max(1, int(width * rate / top))
            colour = "#2b6cb0" if key == "ours" else ("#718096" if key == "limit" else "#ed8936")
            out.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{label}</text>')
            out.append(f'<rect x="{left}" y="{y}" width="{w}" height="{bar}" fill="{colour}"/>')
            out.append(f'<text x="{left + w + 6}" y="{y + 13}">{rate:,.0f}</text>')
            y += bar + gap
        y += 16
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pandas-rows", type=int, default=100_000, help="rows pandas.to_sql loads (its rate is compared)")
    ap.add_argument("--engines", default="duckdb,postgresql")
    ap.add_argument("--skip-dlt", action="store_true")
    ap.add_argument("--svg", type=Path, default=None, help="write the bar chart here")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    os.environ.setdefault("DLT_TELEMETRY_DISABLED", "1")
    if args.one:
        return _run_one(args)
    if not args.skip_dlt:
        try:
            import dlt  # noqa: F401
        except ImportError:
            raise SystemExit("dlt is not installed: `.venv/bin/pip install -e '.[bench]'` (or pass --skip-dlt)")
    from pg import TempPostgres

    kinds = ["limit", "ours", "pandas"] + ([] if args.skip_dlt else ["dlt_append", "dlt_merge"])
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp_name:
        tmp = Path(tmp_name)
        data, changed = tmp / "rows.parquet", tmp / "changed.parquet"
        make_rows(args.rows, data)
        make_rows(args.rows, changed, changed_share=0.1)
        pg = TempPostgres().start() if "postgresql" in args.engines else None
        try:
            for engine in args.engines.split(","):
                results[engine] = {}
                for kind in kinds:
                    name = f"{kind}_{len(results[engine])}"
                    url = (f"duckdb:///{tmp / name}.duckdb" if engine == "duckdb" else pg.create_database(name))
                    spec = {"kind": kind, "url": url, "data": str(data), "again": str(data), "changed": str(changed),
                            "pandas_rows": min(args.pandas_rows, args.rows), "tmp": str(tmp / name)}
                    t = _in_process(spec)
                    n = spec["pandas_rows"] if kind == "pandas" else args.rows
                    results[engine][kind] = {"rate": n / t["first"], **t}
                    print(f"{engine:<10} {kind:<10} " + "  ".join(f"{k} {v:,.1f}" for k, v in t.items()), flush=True)
        finally:
            if pg:
                pg.stop()
    print(f"\n{args.rows:,} lab_result rows (pandas: {min(args.pandas_rows, args.rows):,}), 100k-row batches, "
          "each contender in a fresh process on a fresh database\n")
    print("| engine | contender | first load rows/s | first load s | same rows again s | 10 % changed s | peak RSS MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for engine, by_kind in results.items():
        for kind, r in by_kind.items():
            cell = lambda k: f"{r[k]:.1f}" if k in r else "—"  # noqa: E731
            print(f"| {engine} | {kind} | {r['rate']:,.0f} | {r['first']:.1f} | {cell('unchanged')} | "
                  f"{cell('changed 10%')} | {r['peak_mb']:,.0f} |")
    print("\n| engine | ours ÷ dlt merge (first) | ours ÷ dlt merge (same rows again) | ours ÷ limit | "
          "ours ÷ pandas |\n| --- | ---: | ---: | ---: | ---: |")
    for engine, r in results.items():
        o = r["ours"]
        merge = r.get("dlt_merge")
        first = f"{o['rate'] / merge['rate']:.1f}×" if merge else "—"
        again = f"{merge['unchanged'] / o['unchanged']:.1f}×" if merge else "—"
        print(f"| {engine} | {first} | {again} | {100 * o['rate'] / r['limit']['rate']:.0f} % | "
              f"{o['rate'] / r['pandas']['rate']:.0f}× |")
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(svg_chart(results, args.rows), encoding="utf-8")
        print(f"\nchart: {args.svg}")


if __name__ == "__main__":
    main()
