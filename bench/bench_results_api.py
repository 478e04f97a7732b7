"""Read API latency: one person's full result history over HTTP, on a warehouse shaped like the 380k county.

    .venv/bin/python bench/bench_results_api.py [--persons 380000] [--labs-per-person 14] [--requests 2000]

Builds the shared tables at that scale directly in a DuckDB warehouse (SQL over range(): persons with golden
records, ~14 lab results and ~1.3 exam reports per person on average, skewed — the chronically ill have many —
across the county's 23 labs), publishes the API snapshot as the nightly refresh does, starts
``countyhealth results serve`` as a separate process, and times GET /fhir/Observation?patient=… and
GET /fhir/DiagnosticReport?patient=… for random persons with a real HTTP client (httpx, keep-alive, one
client like a hospital system). Reports p50 / p95 / p99 in ms. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(data: Path, persons: int, labs_per_person: int) -> dict:
    os.environ["COUNTYHEALTH_DATA_DIR"] = str(data)
    from countyhealth.results import snapshot
    from countyhealth.warehouse import Warehouse

    wh = Warehouse()
    wh.migrate()
    import duckdb

    con = duckdb.connect(str(data / "warehouse.duckdb"))
    t0 = time.perf_counter()
    con.execute(f"""
        INSERT INTO empi_person SELECT 'P' || lpad(CAST(i AS VARCHAR), 10, '0'), 'active', NULL, now(), now()
        FROM range(1, {persons + 1}) t(i)""")
    con.execute(f"""
        INSERT INTO golden_person (person_id, name, sex_code, birth_date, records, sources, updated_at)
        SELECT 'P' || lpad(CAST(i AS VARCHAR), 10, '0'), '居民' || CAST(i AS VARCHAR), CAST(1 + i % 2 AS VARCHAR),
               DATE '1940-01-01' + CAST(i % 25000 AS INTEGER), 2, 2, now()
        FROM range(1, {persons + 1}) t(i)""")
    # skewed: most people have a few results, the chronically ill many (≈ labs_per_person on average)
    con.execute(f"""
        INSERT INTO shared_lab_result (person_id, source_id, source_record_id, facility_code, facility_name,
            report_number, report_at, collected_at, item_code_local, item_name_local, loinc, item_name, value_numeric,
            value_text, unit, value_canonical, unit_canonical, reference_range, abnormal_flag, result_status,
            item_code, on_list, is_final, quality_ok, validity_days, valid_until, static_reason, refreshed_at)
        SELECT 'P' || lpad(CAST(p AS VARCHAR), 10, '0'), 'his_w350125' || CAST(101 + p % 20 AS VARCHAR),
               'L' || CAST(p AS VARCHAR) || '-' || CAST(k AS VARCHAR), 'W350125' || CAST(101 + p % 20 AS VARCHAR),
               '卫生院', 'R' || CAST(p AS VARCHAR) || '-' || CAST(k // 4 AS VARCHAR),
               TIMESTAMP '2025-03-01' + to_minutes(CAST((p * 7919 + k * 104729) % 525600 AS BIGINT)),
               TIMESTAMP '2025-03-01' + to_minutes(CAST((p * 7919 + k * 104729) % 525600 AS BIGINT)),
               'JY011', '空腹血糖', '1558-6', '空腹血糖', 126.0, '126.00', 'mg/dL', 6.99, 'mmol/L', '70-110', 'H',
               'final', 'HR-GLU', TRUE, TRUE, TRUE, 30,
               TIMESTAMP '2025-03-31' + to_minutes(CAST((p * 7919 + k * 104729) % 525600 AS BIGINT)), NULL, now()
        FROM range(1, {persons + 1}) t(p), range(0, 200) u(k)
        WHERE k < CASE WHEN p % 10 = 0 THEN {labs_per_person * 5} ELSE {max(1, labs_per_person * 5 // 9)} END""")
    con.execute(f"""
        INSERT INTO shared_exam_report (person_id, source_id, source_record_id, facility_code, facility_name,
            report_number, report_at, exam_at, exam_category, procedure_code_local, procedure_name, body_site,
            findings, impression, study_uid, result_status, item_code, on_list, is_final, quality_ok, validity_days,
            valid_until, static_reason, refreshed_at)
        SELECT 'P' || lpad(CAST(p AS VARCHAR), 10, '0'), 'his_h350125001', 'E' || CAST(p AS VARCHAR) || '-' ||
               CAST(k AS VARCHAR), 'H350125001', '永泰县医院', 'E' || CAST(p AS VARCHAR) || '-' || CAST(k AS VARCHAR),
               TIMESTAMP '2025-06-01' + to_days(CAST(k * 30 + p % 200 AS BIGINT)),
               TIMESTAMP '2025-06-01' + to_days(CAST(k * 30 + p % 200 AS BIGINT)), 'CT', 'CT01', '头颅CT平扫', '头颅',
               '头颅扫描，所见结构清晰。', '头颅CT平扫未见明显异常', '1.2.156.1.' || CAST(p AS VARCHAR), 'final',
               'HR-CT-HEAD', TRUE, TRUE, TRUE, 90, TIMESTAMP '2025-09-01' + to_days(CAST(k * 30 AS BIGINT)), NULL, now()
        FROM range(1, {persons + 1}) t(p), range(0, 6) u(k)
        WHERE k < CASE WHEN p % 4 = 0 THEN 4 ELSE 0 END + CASE WHEN p % 7 = 0 THEN 2 ELSE 0 END""")
    labs = con.execute("SELECT count(*) FROM shared_lab_result").fetchone()[0]
    exams = con.execute("SELECT count(*) FROM shared_exam_report").fetchone()[0]
    con.close()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    snapshot.publish(wh)
    return {"labs": labs, "exams": exams, "build_s": build_s, "snapshot_s": time.perf_counter() - t0,
            "snapshot_mb": snapshot.path().stat().st_size / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=380_000)
    ap.add_argument("--labs-per-person", type=int, default=14)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        facts = build(data, args.persons, args.labs_per_person)
        env = dict(os.environ, COUNTYHEALTH_DATA_DIR=str(data))
        from countyhealth.results import api

        token = api.create_token("W350125101", "bench", url=f"sqlite:///{data / 'results' / 'api.sqlite'}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exe = Path(sys.executable).parent / "countyhealth"
        server = subprocess.Popen([str(exe), "results", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                                  timeout=30)
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            rng = random.Random(7)
            timings = {"Patient/$everything": [], "Observation": [], "DiagnosticReport": []}
            sizes = []
            for path in ("Observation", "DiagnosticReport"):  # warm up: the first requests open the snapshot
                client.get(f"/fhir/{path}", params={"patient": "P0000000001"})
            for _ in range(args.requests):
                person = f"P{rng.randint(1, args.persons):010d}"
                for path in timings:
                    t0 = time.perf_counter()
                    if path.startswith("Patient"):
                        r = client.get(f"/fhir/Patient/{person}/$everything")
                    else:
                        r = client.get(f"/fhir/{path}", params={"patient": person})
                    timings[path].append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, r.text[:200]
                    if path == "Observation":
                        sizes.append(r.json()["total"])
            both = [a + b for a, b in zip(timings["Observation"], timings["DiagnosticReport"])]
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)

    def pct(xs, q):
        return statistics.quantiles(xs, n=100)[q - 1]

    print(f"\n### Read API: {args.persons:,} persons, {facts['labs']:,} lab results, {facts['exams']:,} exam reports\n")
    print(f"`.venv/bin/python bench/bench_results_api.py --persons {args.persons} --requests {args.requests}`. "
          f"Shared tables built in {facts['build_s']:.0f} s; snapshot published in {facts['snapshot_s']:.1f} s "
          f"({facts['snapshot_mb']:.0f} MB). {args.requests:,} random persons (observations per person: median "
          f"{statistics.median(sizes):.0f}, max {max(sizes)}), one keep-alive client, server = `countyhealth results "
          f"serve` (uvicorn, one process).\n")
    print("| request | p50 ms | p95 ms | p99 ms |\n| --- | ---: | ---: | ---: |")
    for name, xs in (*timings.items(), ("Observation + DiagnosticReport, two requests", both)):
        print(f"| {name} | {pct(xs, 50):.1f} | {pct(xs, 95):.1f} | {pct(xs, 99):.1f} |")


if __name__ == "__main__":
    main()
