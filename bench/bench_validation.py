"""Validation throughput: the GX suites (our implementation) vs the same rules as plain pandas masks, and
validation's share of validate + load.

    .venv/bin/python bench/bench_validation.py [--scale 1.0] [--datasets lab_result,person] [--no-load]

For each canonical dataset, synthesises realistic canonical rows (a 380k-resident county's shapes: IDs and
lab codes repeating per patient, mixed units, censored values, ~3 % defects of every kind the suites catch),
then times

- ``gx``: :func:`countyhealth.validation.validate_dataset` — the dataset's GX suite in 200k-row chunks with
  COMPLETE row-level results, issues collected and masked, clean rows split off (what the pipeline runs);
- ``pandas``: the same rules as plain pandas boolean masks over the same frame (built-in expectations
  re-implemented as masks, custom ones calling the same ``row_checks`` functions), no GX;
- ``load``: loading the clean rows into a fresh DuckDB warehouse (``Warehouse.load``), the stage validation
  must stay small against.

Both validation paths must find the same failing rows (checked). The validation share printed is
validate ÷ (validate + DuckDB load): an upper bound on its share of end-to-end time, which also includes
extract, landing, mapping, identity and shared results. Prints Markdown for docs/benchmarks.md.

    .venv/bin/python bench/bench_validation.py --county 380000 [--days 3] [--nights 1] [--workdir DIR]

End to end instead: simulates a county of that many residents (``countyhealth.simulate``: its HIS databases,
its public-health platform as a real HTTP server, its contract files), then runs the whole pipeline
(``pipeline.run``: extract, validate, load, identity, shared results) on a fresh DuckDB warehouse — the first
run, then one run per simulated night — and reports the time spent inside ``validate_dataset`` (plus GX's
one-off start-up) against each whole run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from countyhealth import model, resident_id  # noqa: E402

LOAD_TIME = dt.datetime(2026, 3, 10, 2, 0)
CODE_SYSTEM = "his_vendor_b"
BASE_ROWS = {"facility": 300, "person": 400_000, "encounter": 300_000, "lab_result": 1_000_000,
             "exam_report": 100_000, "chronic_followup": 150_000, "contract": 150_000}
DEFECT_RATE = 0.03


# ---- synthetic canonical rows ---------------------------------------------------------------------------------

def _pick(rng, values, n, p=None):
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p)]


def _spoil(rng, n) -> np.ndarray:
    return rng.random(n) < DEFECT_RATE


def _ids(rng, n_people: int) -> np.ndarray:
    births = dt.date(1930, 1, 1) + np.array([dt.timedelta(days=int(d)) for d in rng.integers(0, 33000, n_people)])
    return np.array([resident_id.make(f"3501{25 + i % 3:02d}", b, int(s))
                     for i, (b, s) in enumerate(zip(births, rng.integers(0, 999, n_people)))], dtype=object), births


def synthesise(dataset: str, n: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2026-03-01T08:00")
    mins = rng.integers(0, 60 * 24 * 8, n).astype("timedelta64[m]")
    cols: dict = {"source_id": np.full(n, "his_w350125101", object),
                  "source_record_id": np.array([f"{dataset[:2]}{i:09d}" for i in range(n)], object),
                  "facility_code": _pick(rng, [f"W3501251{i:02d}" for i in range(1, 21)] + ["H350125001"], n),
                  "batch_id": np.full(n, "bench", object)}
    patients = np.array([f"P{i:07d}" for i in rng.integers(0, max(n // 3, 1), n)], object)
    bad = _spoil(rng, n)
    if dataset == "facility":
        cols.update(name=np.array([f"卫生院{i}" for i in range(n)], object), level=_pick(rng, ["township", "village"], n))
        cols["level"][bad] = "clinic"
    elif dataset == "person":
        ids, births = _ids(rng, n)
        kind = rng.integers(0, 6, n)
        ids[bad & (kind == 0)] = [i[:17] + ("0" if i[17] != "0" else "1") for i in ids[bad & (kind == 0)]]
        births = births.astype("datetime64[D]")
        births[bad & (kind == 1)] += np.timedelta64(30, "D")  # lunar birthday: a finding
        cols.update(name=_pick(rng, ["陈伟", "林丽", "黄秀英", "张玮", "郑莉"], n), sex_code=_pick(rng, ["1", "2"], n),
                    birth_date=births, id_type_code=np.full(n, "01", object), id_number=ids,
                    health_record_number=np.array([f"35012510{i:09d}" for i in range(n)], object),
                    phone=np.array([f"139{i:08d}" for i in rng.integers(0, 10**8, n)], object))
        cols["sex_code"] = np.array([resident_id.parse(i).sex or "1" for i in ids], object)
        cols["sex_code"][bad & (kind == 2)] = "5"
        cols["phone"][bad & (kind == 3)] = "1391234"
        cols["name"][bad & (kind == 4)] = None
    elif dataset == "encounter":
        start = t0 + mins
        kind = rng.integers(0, 4, n)
        cols.update(person_source_record_id=patients, encounter_type=_pick(rng, ["outpatient", "inpatient"], n, [.9, .1]),
                    start_at=start, end_at=start + rng.integers(60, 60 * 24 * 10, n).astype("timedelta64[m]"),
                    diagnosis_code=_pick(rng, ["I10", "E11.9", "J06.9", "K29.7", "M54.5"], n))
        cols["diagnosis_code"][bad & (kind == 0)] = "高血压"
        cols["end_at"][bad & (kind == 1)] = start[bad & (kind == 1)] - np.timedelta64(1, "D")
        cols["encounter_type"][bad & (kind == 2)] = None
        cols["start_at"][bad & (kind == 3)] = np.datetime64("2026-04-01T00:00")
    elif dataset == "lab_result":
        items = [("JY001", "10*9/L", 6.0, 2), ("JY011", "mg/dL", 95.0, 15), ("JY041", "mmol/L", 4.2, .4),
                 ("JY021", "U/L", 30.0, 10), ("JY031", "umol/L", 80.0, 20), ("JY051", "mg/dL", 180.0, 30),
                 ("JY003", "g/L", 135.0, 15), ("JY091", None, None, None)]
        pick = rng.integers(0, len(items), n)
        collected = t0 + mins
        value = np.array([items[k][2] if items[k][2] is not None else np.nan for k in pick])
        spread = np.array([items[k][3] if items[k][3] is not None else 0 for k in pick])
        value = np.round(value + rng.normal(0, 1, n) * spread, 2)
        kind = rng.integers(0, 5, n)
        cols.update(person_source_record_id=patients, report_number=np.array([f"R{i // 6:08d}" for i in range(n)], object),
                    collected_at=collected, received_at=collected + np.timedelta64(20, "m"),
                    tested_at=collected + np.timedelta64(60, "m"), report_at=collected + np.timedelta64(180, "m"),
                    item_code_local=np.array([items[k][0] for k in pick], object), value_numeric=value,
                    value_text=np.array([None if np.isnan(v) else str(v) for v in value], object),
                    unit=np.array([items[k][1] for k in pick], object), result_status=np.full(n, "final", object))
        cols["value_text"][pick == 7] = "阴性"
        cols["value_numeric"][bad & (kind == 0) & (pick != 7)] *= 1000
        cols["unit"][bad & (kind == 1) & (pick != 7)] = "mmol/dl"
        cols["received_at"][bad & (kind == 2)] = collected[bad & (kind == 2)] - np.timedelta64(5, "m")
        cols["result_status"][bad & (kind == 3)] = "done"
        cols["report_at"][bad & (kind == 4)] = np.datetime64("NaT")
        cens = (~bad) & (pick == 3) & (rng.random(n) < .05)
        cols["value_numeric"][cens], cols["value_text"][cens] = 5.0, "<5"
        cols["value_operator"] = np.where(cens, "<", None).astype(object)
    elif dataset == "exam_report":
        exam = t0 + mins
        kind = rng.integers(0, 3, n)
        cols.update(person_source_record_id=patients, report_number=np.array([f"E{i:08d}" for i in range(n)], object),
                    exam_at=exam, report_at=exam + np.timedelta64(120, "m"),
                    exam_category=_pick(rng, ["CT", "DR", "US", "ECG"], n), findings=np.full(n, "未见异常", object),
                    impression=np.full(n, "未见明显异常", object), result_status=np.full(n, "final", object))
        cols["exam_category"][bad & (kind == 0)] = "XR"
        cols["findings"][bad & (kind == 1)] = None
        cols["impression"][bad & (kind == 1)] = None
        cols["report_at"][bad & (kind == 2)] = exam[bad & (kind == 2)] - np.timedelta64(60, "m")
    elif dataset == "chronic_followup":
        visit = np.datetime64("2026-03-01") + rng.integers(0, 8, n).astype("timedelta64[D]")
        sbp = rng.integers(110, 170, n)
        kind = rng.integers(0, 4, n)
        cols.update(person_source_record_id=patients, condition=_pick(rng, ["hypertension", "diabetes"], n),
                    visit_date=visit, visit_mode=_pick(rng, ["1", "2", "3"], n), sbp=sbp,
                    dbp=sbp - rng.integers(30, 60, n), heart_rate=rng.integers(55, 100, n),
                    weight_kg=np.round(rng.normal(62, 9, n), 1), fasting_glucose=np.round(rng.normal(7, 1.5, n), 1),
                    glucose_unit=np.full(n, "mmol/L", object), adherence=_pick(rng, ["1", "2", "3"], n),
                    next_visit_date=visit + np.timedelta64(90, "D"))
        cols["sbp"] = cols["sbp"].astype(float)
        cols["sbp"][bad & (kind == 0)] = 400
        cols["dbp"] = cols["dbp"].astype(float)
        cols["dbp"][bad & (kind == 1)] = cols["sbp"][bad & (kind == 1)] + 5
        cols["glucose_unit"][bad & (kind == 2)] = None
        cols["visit_date"][bad & (kind == 3)] = np.datetime64("2026-05-01")
        cols["next_visit_date"][bad & (kind == 3)] = np.datetime64("NaT")
    elif dataset == "contract":
        begin = np.datetime64("2026-01-01") + rng.integers(0, 60, n).astype("timedelta64[D]")
        kind = rng.integers(0, 3, n)
        cols.update(person_source_record_id=patients, contract_number=np.array([f"XY{i:08d}" for i in range(n)], object),
                    team_code=_pick(rng, [f"T{i:05d}" for i in range(40)], n), package_type=_pick(rng, ["01", "02", "03"], n),
                    sign_date=begin, begin_date=begin, end_date=begin + np.timedelta64(364, "D"),
                    status=np.full(n, "signed", object), resident_key=np.array([f"k{i:09d}" for i in range(n)], object))
        cols["end_date"][bad & (kind == 0)] = begin[bad & (kind == 0)] - np.timedelta64(1, "D")
        cols["termination_date"] = np.where(bad & (kind == 1), begin + np.timedelta64(30, "D"), np.datetime64("NaT"))
        dup = np.flatnonzero(bad & (kind == 2))
        cols["resident_key"][dup] = cols["resident_key"][np.maximum(dup - 1, 0)]  # a second active contract
    schema = model.schema(dataset)
    arrays = {}
    for name, values in cols.items():
        typ = schema.field(name).type
        if isinstance(values, np.ndarray) and values.dtype.kind in "Mm":
            mask = np.isnat(values)
            arrays[name] = pa.array(values.astype("datetime64[us]" if pa.types.is_timestamp(typ) else "datetime64[D]"),
                                    mask=mask).cast(typ)
        elif isinstance(values, np.ndarray) and values.dtype.kind == "f" and not pa.types.is_floating(typ):
            arrays[name] = pa.array(values, mask=np.isnan(values)).cast(typ)
        else:
            arrays[name] = pa.array(values, from_pandas=True).cast(typ)
    table = model.conform(dataset, pa.table(arrays))
    return table.append_column("_row", pa.array(np.arange(n, dtype=np.int64)))


# ---- the same rules as plain pandas masks ----------------------------------------------------------------------

def _param(value, params):
    return params[value["$PARAMETER"]] if isinstance(value, dict) and "$PARAMETER" in value else value


def pandas_failing_rows(dataset: str, table: pa.Table, context) -> dict[str, np.ndarray]:
    """rule_id -> failing ``_row`` values, computed with pandas masks only (GX not involved)."""
    import pandas as pd
    from countyhealth import validation
    from countyhealth.validation import row_checks, suites

    frame = validation._frame(dataset, table, context)
    params = {"now": pd.Timestamp(context.load_time), "code_system": context.code_system,
              "earliest_birth_date": pd.Timestamp(validation.EARLIEST_BIRTH_DATE)}
    out = {}
    for rule in suites.load_rules(dataset):
        kw, t = rule.kwargs, rule.expectation_type
        scope = frame.eval(kw["row_condition"], engine="python") if "row_condition" in kw else True
        col = frame[kw["column"]] if "column" in kw else None
        cols = [frame[c] for c in kw.get("column_list", [])]
        if t == "expect_column_values_to_not_be_null":
            bad = col.isna()
        elif t == "expect_column_values_to_be_in_set":
            bad = col.notna() & ~col.isin(kw["value_set"])
        elif t == "expect_column_values_to_be_between":
            lo, hi = _param(kw.get("min_value"), params), _param(kw.get("max_value"), params)
            bad = col.notna() & (((col < lo) if lo is not None else False) | ((col > hi) if hi is not None else False))
        elif t == "expect_column_values_to_match_regex":
            rx = re.compile(kw["regex"])
            bad = col.notna() & ~col.map(lambda v, rx=rx: bool(rx.search(str(v))) if v is not None else True).astype(bool)
        elif t == "expect_column_pair_values_a_to_be_greater_than_b":
            a, b = frame[kw["column_A"]], frame[kw["column_B"]]
            bad = a.notna() & b.notna() & ((a < b) if kw.get("or_equal") else (a <= b))
        elif t == "expect_column_values_to_be_valid_resident_id":
            bad = col.notna() & ~row_checks.resident_id_valid(col)
        elif t == "expect_column_values_to_not_be_legacy_resident_id":
            bad = col.notna() & ~row_checks.resident_id_not_legacy(col)
        elif t == "expect_resident_id_to_agree_with_birth_date_and_sex":
            bad = ~row_checks.resident_id_agrees(*cols)
        elif t == "expect_columns_to_be_both_present_or_both_absent":
            bad = ~row_checks.both_present_or_absent(pd.concat(cols, axis=1))
        elif t == "expect_any_of_columns_to_be_present":
            bad = ~row_checks.any_present(pd.concat(cols, axis=1))
        elif t == "expect_lab_values_within_physiological_limits":
            bad = ~row_checks.lab_within_limits(*cols, params["code_system"])
        elif t == "expect_lab_units_allowed_for_item":
            bad = ~row_checks.lab_unit_allowed(*cols, params["code_system"])
        elif t == "expect_no_overlapping_active_intervals_per_key":
            bad = ~row_checks.no_overlapping_active(*cols, inactive_values=kw.get("inactive_values", ()))
        else:
            raise NotImplementedError(f"{rule.rule_id}: {t} has no pandas version in this benchmark")
        bad = bad & scope
        out[rule.rule_id] = frame.index.to_numpy()[np.asarray(bad, dtype=bool)]
    return out


# ---- timing -----------------------------------------------------------------------------------------------------

def _gx_failing(outcome) -> dict[str, set]:
    got: dict[str, set] = {}
    for r, rule in zip(outcome.issues.column("_row").to_pylist(), outcome.issues.column("rule_id").to_pylist()):
        got.setdefault(rule, set()).add(r)
    return got


def bench(datasets, scale: float, load: bool) -> list[dict]:
    from countyhealth.validation import ValidationContext, suites, validate_dataset

    t = time.perf_counter()
    suites.runner()  # GX import + context + suites: once per process
    startup = time.perf_counter() - t
    results = []
    tmp = tempfile.TemporaryDirectory(prefix="bench-validation-")
    wh = None
    if load:
        from countyhealth.warehouse import Warehouse

        wh = Warehouse(f"duckdb:///{Path(tmp.name) / 'warehouse.duckdb'}")
        wh.migrate()
    for dataset in datasets:
        n = max(1, int(BASE_ROWS[dataset] * scale))
        table = synthesise(dataset, n)
        # birth dates for "events after birth": every patient known, as when the pipeline supplies them
        people = {f"P{i:07d}": dt.date(1950, 1, 1) for i in range(max(n // 3, 1))}
        ctx = ValidationContext(source_id="his_w350125101", batch_id="bench", load_time=LOAD_TIME,
                                code_system=CODE_SYSTEM, birth_dates=people)
        gc.collect()
        t = time.perf_counter()
        outcome = validate_dataset(dataset, table, ctx)
        gx_s = time.perf_counter() - t
        gc.collect()
        t = time.perf_counter()
        masks = pandas_failing_rows(dataset, table, ctx)
        pd_s = time.perf_counter() - t
        got = _gx_failing(outcome)
        differ = [r for r in masks if set(masks[r].tolist()) != got.get(r, set())]
        if differ:
            raise SystemExit(f"{dataset}: GX and pandas disagree on {differ}")
        load_s = None
        if wh is not None:
            clean = outcome.clean.drop_columns(["_row"])
            t = time.perf_counter()
            wh.load(dataset, [b for b in clean.to_batches(max_chunksize=100_000)])
            load_s = time.perf_counter() - t
        results.append({"dataset": dataset, "rows": n, "rules": len(suites.load_rules(dataset)), "gx_s": gx_s,
                        "pandas_s": pd_s, "load_s": load_s, "failing": outcome.rows_quarantined,
                        "flagged": outcome.rows_flagged})
        print(f"{dataset:<17} {n:>9,} rows  gx {gx_s:6.2f}s ({n / gx_s:>9,.0f} rows/s)  pandas {pd_s:6.2f}s "
              f"({n / pd_s:>10,.0f} rows/s)  ×{gx_s / pd_s:4.1f}"
              + (f"  load {load_s:6.2f}s ({n / load_s:>8,.0f} rows/s)" if load_s else "")
              + f"  quarantined {outcome.rows_quarantined:,} flagged {outcome.rows_flagged:,}", flush=True)
    tmp.cleanup()
    results.append({"startup_s": startup})
    return results


def markdown(results: list[dict]) -> str:
    startup = results[-1]["startup_s"]
    rows = results[:-1]
    out = ["| dataset | rows | rules | GX (ours) rows/s | plain pandas rows/s | GX ÷ pandas | DuckDB load rows/s "
           "| validation share of validate + load |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    tg = tp = tl = 0.0
    for r in rows:
        share = f"{100 * r['gx_s'] / (r['gx_s'] + r['load_s']):.0f}%" if r["load_s"] else ""
        out.append(f"| {r['dataset']} | {r['rows']:,} | {r['rules']} | {r['rows'] / r['gx_s']:,.0f} | "
                   f"{r['rows'] / r['pandas_s']:,.0f} | {r['gx_s'] / r['pandas_s']:.1f}× | "
                   + (f"{r['rows'] / r['load_s']:,.0f}" if r["load_s"] else "") + f" | {share} |")
        tg += r["gx_s"]
        tp += r["pandas_s"]
        tl += r["load_s"] or 0
    n = sum(r["rows"] for r in rows)
    out.append(f"| **all** | {n:,} | | {n / tg:,.0f} | {n / tp:,.0f} | {tg / tp:.1f}× | "
               + (f"{n / tl:,.0f} | {100 * tg / (tg + tl):.0f}% |" if tl else " | |"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.append(f"\nGX start-up per process (import, context, suites): {startup:.1f} s. Peak RSS: {peak:,.0f} MB.")
    return "\n".join(out)


def county_run(residents: int, days: int, nights: int = 0, workdir: Path | None = None) -> str:
    """The whole pipeline on a simulated county — the first run, then ``nights`` nightly runs each after
    simulating one more day — returning Markdown with validation's share of each run. ``workdir`` keeps the
    county and its warehouse (a workdir that already holds them is reused: its next run is incremental)."""
    from _county import running_county

    from countyhealth.simulate.county import County, load_config

    county_ctx = running_county(residents, days, workdir, prefix="bench-validation-county-")
    root, county = county_ctx.__enter__()
    residents = load_config(county).residents
    from countyhealth import pipeline, validation, settings
    from countyhealth.validation import suites

    spent = {"validate": 0.0, "calls": 0, "rows": 0}
    real = validation.validate_dataset

    def timed(dataset, table, *a, **kw):
        t0 = time.perf_counter()
        try:
            return real(dataset, table, *a, **kw)
        finally:
            spent["validate"] += time.perf_counter() - t0
            spent["calls"] += 1
            spent["rows"] += table.num_rows

    lines = ["| run | residents | rows extracted | validate_dataset calls | rows validated | end to end | "
             "validation | share |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    validation.validate_dataset = timed
    try:
        t = time.perf_counter()
        suites.runner()  # GX import + context + suites: once per process, counted in the first run
        startup = time.perf_counter() - t
        for night in range(nights + 1):
            label = "first run" if not (settings.data_dir() / "warehouse.duckdb").exists() else "next run"
            if night:
                County(county, load_config(county)).advance(1)
                label = f"night {night} (+1 day)"
            spent.update(validate=0.0, calls=0, rows=0)
            t = time.perf_counter()
            summary = pipeline.run(downstream=True)
            run_s = time.perf_counter() - t
            first = startup if night == 0 else 0.0
            total, val = run_s + first, spent["validate"] + first
            rows = sum(summary.extracted.values())
            print(f"{label}: {rows:,} rows extracted; failed {summary.failed or 'none'}; held {len(summary.held)}; "
                  f"{total:.1f} s, validation {val:.1f} s", flush=True)
            lines.append(f"| {label} | {residents:,} | {rows:,} | {spent['calls']} | {spent['rows']:,} | {total:.0f} s | "
                         f"{val:.1f} s" + (f" (incl. {first:.1f} s GX start-up)" if first else "")
                         + f" | {100 * val / total:.0f}% |")
    finally:
        validation.validate_dataset = real
        county_ctx.__exit__(None, None, None)
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the rows per dataset (1.0 ≈ 2.1M rows)")
    ap.add_argument("--datasets", default=",".join(model.DATASET_NAMES))
    ap.add_argument("--no-load", action="store_true", help="skip the DuckDB load comparison")
    ap.add_argument("--county", type=int, default=None, metavar="RESIDENTS",
                    help="run the whole pipeline on a simulated county of this size instead")
    ap.add_argument("--days", type=int, default=3, help="days of activity in the simulated county")
    ap.add_argument("--nights", type=int, default=0, help="after the first run, simulate and run this many nights")
    ap.add_argument("--workdir", type=Path, default=None, help="keep (or reuse) the county and warehouse here")
    args = ap.parse_args()
    if args.county or args.workdir:
        print(county_run(args.county or 0, args.days, args.nights, args.workdir))
        return 0
    # the harmonisation map and suites of this checkout; data, reports and the key go to a scratch dir
    scratch = tempfile.TemporaryDirectory(prefix="bench-validation-data-")
    os.environ.setdefault("COUNTYHEALTH_DATA_DIR", scratch.name)
    results = bench([d.strip() for d in args.datasets.split(",") if d.strip()], args.scale, not args.no_load)
    scratch.cleanup()
    print()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
