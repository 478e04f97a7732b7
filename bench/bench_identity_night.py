"""The EMPI's nightly run as the pipeline runs it: ``identity.run`` on a real warehouse (DuckDB file, or
PostgreSQL with ``--postgres``), timed step by step.

    .venv/bin/python bench/bench_identity_night.py [--residents 100000] [--share 0.1] [--postgres]

The simulated population (countyhealth.simulate.person_records, as bench_identity.py) is loaded the way the
pipeline loads it — IDs and phones encrypted, keyed hashes beside them — less a random ``share`` of its records;
a first identity run places those; then the share arrives (most of it records of residents already linked) and a
second run places it: its person rows read, standardised (decrypting their IDs), candidates read from the identity
tables, linked, links and events written, golden records refreshed, committed. bench_identity.py times the
engine alone on frames; this is everything around it. Prints a Markdown section for docs/benchmarks.md.

Each night runs in a process of its own, as Airflow runs a task: nothing the first run standardised (names, pinyin,
addresses are cached per process) is still at hand, and the simulation's memory is not beside it. Its modules are
imported, and the pinyin and OpenCC dictionaries loaded, before the clock starts (a task's imports are not the
night's linking). On DuckDB the night runs ``--nights`` times, each on its own copy of the warehouse as it stood
before the night (the machine is shared: one run says little; the copies' links must all agree), each with the
yardstick timed just before and after it, in processes of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def load_people(wh, rows: list[dict], batch: str) -> float:
    from countyhealth import model, privacy

    t0 = time.perf_counter()
    for start in range(0, len(rows), 100_000):
        chunk = [{**r, "batch_id": batch, "source_updated_at": None} for r in rows[start:start + 100_000]]
        table = model.conform("person", pa.Table.from_pylist(chunk, schema=model.schema("person")))
        wh.load("person", privacy.protect_person(table))
    return time.perf_counter() - t0


def links(wh) -> dict[str, str]:
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source_id || '|' || source_record_id, person_id FROM person_link")).all()
    return dict(rows)


def golden_gaps(wh) -> tuple[int, int]:
    """Active persons without a golden record, and linked records no golden record counts: both 0 after a night
    (a refresh that lost rows would not show in the links' F1)."""
    with wh.engine.connect() as conn:
        missing = conn.execute(sa.text("SELECT count(*) FROM empi_person e WHERE e.status = 'active' AND NOT EXISTS "
                                       "(SELECT 1 FROM golden_person g WHERE g.person_id = e.person_id)")).one()[0]
        uncounted = conn.execute(sa.text("SELECT (SELECT count(*) FROM identity_record) - "
                                         "(SELECT coalesce(sum(records), 0) FROM golden_person)")).one()[0]
    return int(missing), int(uncounted)


def yardstick() -> float:
    """Seconds of a fixed piece of work — a DuckDB hash join of 3M rows and a million Python string hashes — timed
    just before and after the night: the machine is shared, and a night is only comparable across runs as a ratio
    to this."""
    import duckdb

    t0 = time.perf_counter()
    duckdb.sql("SELECT count(*) FROM range(3000000) a JOIN range(3000000) b ON a.range = b.range").fetchall()
    sum(hash(str(i)) for i in range(1_000_000))
    return time.perf_counter() - t0


def night_here(url: str) -> None:
    """One night on the warehouse at ``url``, in this (fresh) process: its summary as JSON."""
    import splink  # noqa: F401 — imported, not timed: what a task process has loaded before it runs
    from scipy.sparse import csgraph  # noqa: F401

    from countyhealth import identity
    from countyhealth.standardise import person as std
    from countyhealth.warehouse import Warehouse

    # the pinyin and traditional→simplified dictionaries load on first use: initialising a library, not linking
    # (a character each; nothing a night's names need is cached by it)
    std.name_pinyin("张")
    std.normalise_name("張")

    wh = Warehouse(url)
    night = identity.run(wh)
    wh.engine.dispose()
    print(json.dumps({"seconds": night.seconds, "steps": night.steps, "records_considered": night.records_considered,
                      "new_persons": night.new_persons, "merges": night.merges, "splits": night.splits,
                      "queued_for_review": night.queued_for_review, "peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's peak resident memory since it began its program (/proc's VmHWM: getrusage's maximum carries
    over from the process that forked it — here the simulation's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def night_apart(url: str) -> dict:
    """The night in a process of its own, the yardstick timed just before and after it, each in a process of its own
    too (its DuckDB instance and memory are not the night's)."""
    before = _apart("--yardstick")
    night = _apart("--night-at", url)
    return {**night, "yardstick": [before, _apart("--yardstick")]}


def _apart(*args: str):
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the process {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--share", type=float, default=0.1)
    ap.add_argument("--postgres", action="store_true", help="a throw-away PostgreSQL cluster instead of DuckDB")
    ap.add_argument("--nights", type=int, default=3, help="DuckDB: the night run this many times, on copies")
    ap.add_argument("--night-at", help=argparse.SUPPRESS)  # (the night's own process)
    ap.add_argument("--yardstick", action="store_true", help=argparse.SUPPRESS)  # (the yardstick's own process)
    args = ap.parse_args()
    if args.night_at:
        return night_here(args.night_at)
    if args.yardstick:
        return print(json.dumps(yardstick()))

    from countyhealth import identity
    from countyhealth.identity import evaluate
    from countyhealth.simulate.person_records import person_records
    from countyhealth.warehouse import Warehouse

    recs, _ = person_records(args.residents, seed=7)
    rows = [r.row for r in recs]
    truth = {f"{r.row['source_id']}|{r.row['source_record_id']}": r.resident_key for r in recs}
    tonight = np.zeros(len(rows), dtype=bool)
    tonight[np.random.default_rng(11).choice(len(rows), int(len(rows) * args.share), replace=False)] = True

    with tempfile.TemporaryDirectory() as tmp:
        pg = None
        if args.postgres:
            from pg import TempPostgres

            pg = TempPostgres().start()
            url = pg.create_database("bench")
        else:
            url = f"duckdb:///{tmp}/warehouse.duckdb"
        try:
            wh = Warehouse(url)
            wh.migrate()
            load_s = load_people(wh, [r for r, t in zip(rows, tonight) if not t], "before")
            first = identity.run(wh)
            before = links(wh)
            night_load_s = load_people(wh, [r for r, t in zip(rows, tonight) if t], "tonight")
            wh.engine.dispose()
            gaps = []
            if args.postgres:
                nights = [night_apart(url)]
                after = [links(wh)]
                gaps.append(golden_gaps(wh))
            else:
                nights, after = [], []
                for i in range(args.nights):
                    copy = Path(tmp) / f"night{i}.duckdb"
                    shutil.copy(Path(tmp) / "warehouse.duckdb", copy)
                    # the copy on disk before the night starts: else the night's commit, syncing the file, writes all
                    # of the copy still in the page cache (a warehouse is not copied moments before its night)
                    os.sync()
                    nights.append(night_apart(f"duckdb:///{copy}"))
                    copy_wh = Warehouse(f"duckdb:///{copy}")
                    after.append(links(copy_wh))
                    gaps.append(golden_gaps(copy_wh))
                    copy_wh.engine.dispose()
                    copy.unlink()
        finally:
            if pg:
                pg.stop()
    if any(links != after[0] for links in after[1:]):
        sys.exit("the nights on copies of one warehouse linked differently")
    if any(missing or uncounted for missing, uncounted in gaps):
        sys.exit(f"golden records incomplete after the night (persons without one, records uncounted): {gaps}")
    after = after[0]
    changed = sum(1 for uid, person in before.items() if after.get(uid) != person)
    score = evaluate.score(after, truth)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    night_peak = max(n["peak_rss_mb"] for n in nights)
    by_time = sorted(nights, key=lambda n: n["seconds"])
    night = by_time[len(by_time) // 2]  # the median night

    def steps(summary) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in summary.steps.items())

    def night_steps(n: dict) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in n["steps"].items())

    print(f"\n### EMPI nightly run on a {'PostgreSQL' if args.postgres else 'DuckDB'} warehouse: {args.residents:,} "
          f"residents, {len(rows):,} records\n")
    print(f"`.venv/bin/python bench/bench_identity_night.py --residents {args.residents} --share {args.share}"
          f"{' --postgres' if args.postgres else ''}`. Person rows loaded (encrypted, hashed) in {load_s:.0f} s "
          f"and {night_load_s:.0f} s.\n")
    print("| run | records placed | against | new persons | merges | splits | queued | time s | steps s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print(f"| first | {first.records_considered:,} | 0 | {first.new_persons:,} | {first.merges} | {first.splits} | "
          f"{first.queued_for_review:,} | {first.seconds:.1f} | {steps(first)} |")
    label = f"night (median of {len(nights)})" if len(nights) > 1 else "night"
    print(f"| {label} | {night['records_considered']:,} | {len(before):,} | "
          f"{night['new_persons']:,} | {night['merges']} | {night['splits']} | {night['queued_for_review']:,} | "
          f"{night['seconds']:.1f} | {night_steps(night)} |")
    runs = ", ".join(f"{n['seconds']:.1f}" for n in nights)
    yards = ", ".join(f"{n['yardstick'][0]:.2f}/{n['yardstick'][1]:.2f}" for n in nights)
    where = "in a fresh process" + (", on its own copy of the warehouse" if not args.postgres else "")
    print(f"\nAfter the night: precision {score.precision:.4f}, recall {score.recall:.4f}, F1 {score.f1:.4f}, "
          f"{score.wrongly_merged_residents} wrongly merged, {score.split_residents} split; records linked before the "
          f"night whose person id changed: {changed:,} (a merge redirects, never renumbers); every active person has "
          f"its golden record, counting all its records. Peak RSS {peak:,.0f} MB "
          f"(the night's own process {night_peak:,.0f} MB). Each night {where}: {runs} s; yardstick (fixed work, "
          f"`yardstick()`) before/after each: {yards} s.")


if __name__ == "__main__":
    main()
