"""The simulated county: residents, registry, noise at its rates, truth that matches the sources exactly."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import json
import sqlite3

import pytest
import sqlalchemy as sa

from countyhealth import resident_id
from countyhealth.simulate.county import County, CountyConfig, generate, load_config
from countyhealth.simulate.facilities import make_facilities
from countyhealth.simulate.noise import NoiseRates
from countyhealth.simulate.residents import ResidentMaker, make_residents

from simulate_config import small_config


def read_csv(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_registry_default_shape_is_yongtai_like():
    import random

    fs = make_facilities("350125", "永泰县", 3, 20, 13, random.Random(1))
    levels = collections.Counter(f.level for f in fs)
    assert levels == {"county": 3, "township": 20, "village": 260}
    assert {f.his_vendor for f in fs if f.level == "county"} == {"A"}
    assert {f.his_vendor for f in fs if f.level == "township"} == {"B"}
    assert all(f.parent_code and f.parent_code.startswith("W") for f in fs if f.level == "village")
    assert fs[0].name == "永泰县医院" and fs[1].name == "永泰县中医院" and fs[2].name == "永泰县妇幼保健院"


def test_residents_have_valid_ids_agreeing_with_birth_and_sex():
    import random

    fs = make_facilities("350125", "永泰县", 2, 3, 4, random.Random(1))
    people = make_residents(5000, ResidentMaker(random.Random(3), fs, "350125", dt.date(2026, 3, 1)))
    with_id = [r for r in people if r.id_number]
    assert 0.85 < len(with_id) / len(people) < 1.0  # infants and some young children have none yet
    for r in with_id:
        p = resident_id.parse(r.id_number)
        assert p.valid and p.birth_date == r.birth_date and p.sex == r.sex, r.key
    assert sum(r.id_number[:6] == "350125" for r in with_id) / len(with_id) > 0.85  # the county's region code
    households = collections.defaultdict(list)
    for r in people:
        households[r.household].append(r)
    multi = [h for h in households.values() if len(h) > 1]
    assert all(len({m.address for m in h}) == 1 for h in multi)
    shared_phone = sum(len({m.phone for m in h if m.phone}) < len([m for m in h if m.phone]) for h in multi)
    assert shared_phone / len(multi) > 0.5  # usually a shared phone
    couples = [h for h in multi if len(h) >= 2 and h[0].sex != h[1].sex]
    assert sum(h[0].name[0] != h[1].name[0] for h in couples) / len(couples) > 0.7  # wives keep their surnames
    assert sum(1 for r in people if r.twin_of) >= 2
    adults = [r for r in people if r.age(dt.date(2026, 3, 1)) >= 35]
    assert 0.15 < sum(r.hypertension for r in adults) / len(adults) < 0.45
    assert 0.05 < sum(r.diabetes for r in adults) / len(adults) < 0.2


def test_generation_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, small_config(residents=600, days=2))
    generate(b, small_config(residents=600, days=2))
    for rel in ("truth/records.csv", "truth/defects.csv", "truth/expected_counts.json", "registry/facilities.csv"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_advancing_day_by_day_equals_generating_at_once(tmp_path):
    once, stepwise = tmp_path / "once", tmp_path / "step"
    generate(once, small_config(residents=800, days=4))
    generate(stepwise, small_config(residents=800, days=1))
    County(stepwise, load_config(stepwise)).advance(2)
    County(stepwise, load_config(stepwise)).advance(1)
    for path in sorted(p for p in once.rglob("*") if p.is_file()):
        rel = path.relative_to(once)
        if rel.name.startswith(".") or rel.name.startswith("connections") or rel.name == "county.json":
            continue
        other = stepwise / rel
        if path.suffix == ".sqlite":
            dump = lambda p: "\n".join(sqlite3.connect(p).iterdump())  # noqa: E731
            assert dump(path) == dump(other), rel
        else:
            assert path.read_bytes() == other.read_bytes(), rel


def test_truth_counts_equal_what_each_source_holds(county):
    out, manifest = county
    counts = json.loads((out / "truth" / "expected_counts.json").read_text())["rows"]
    for sid, info in manifest["his"].items():
        eng = sa.create_engine(f"sqlite:///{out / info['url']}")
        with eng.connect() as conn:
            for table, n in counts[sid].items():
                assert conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar() == n, (sid, table)
    db = sqlite3.connect(out / "public_health" / "platform.sqlite")
    for table, n in counts["public_health"].items():
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n
    rows = 0
    for f in sorted((out / "contracts" / "inbox").iterdir()):
        if f.suffix == ".csv":
            rows += len(f.read_bytes().decode("gb18030").strip().split("\r\n")) - 1
        else:
            import openpyxl

            rows += openpyxl.load_workbook(f, read_only=True).worksheets[0].max_row - 1
    assert rows == counts["contracts"]["contracts"]
    # every record belongs to exactly one true resident (a re-sent record is the same resident again)
    owners = collections.defaultdict(set)
    for r in read_csv(out / "truth" / "records.csv"):
        owners[(r["source_id"], r["table"], r["source_record_id"])].add(r["resident_key"])
    assert max(len(v) for v in owners.values()) == 1


def test_vendors_differ_in_shape_codes_units_and_dates(county):
    out, manifest = county
    a = sa.create_engine(f"sqlite:///{out / 'his' / 'H350125001.sqlite'}")
    b = sa.create_engine(f"sqlite:///{out / 'his' / 'W350125101.sqlite'}")
    assert set(sa.inspect(a).get_table_names()) == {"PAT_MASTER_INDEX", "PAT_VISIT", "LAB_RESULT", "EXAM_REPORT"}
    assert set(sa.inspect(b).get_table_names()) == {"hz_jbxx", "mz_jzjl", "jy_jg", "jc_bg"}
    with a.connect() as ca, b.connect() as cb:
        assert set(ca.execute(sa.text("SELECT DISTINCT SEX FROM PAT_MASTER_INDEX")).scalars()) <= {"M", "F", "U", "X"}
        assert set(cb.execute(sa.text("SELECT DISTINCT xb FROM hz_jbxx")).scalars()) <= {"男", "女", "未知", "X"}
        assert ca.execute(sa.text("SELECT DATE_OF_BIRTH FROM PAT_MASTER_INDEX LIMIT 1")).scalar()[4] == "-"
        csrq = cb.execute(sa.text("SELECT csrq FROM hz_jbxx LIMIT 1")).scalar()
        assert len(csrq) == 8 and csrq.isdigit()
        glu_units = set(cb.execute(sa.text("SELECT DISTINCT dw FROM jy_jg WHERE xmdm = 'JY011'")).scalars())
        assert glu_units <= {"mg/dL", "mmol/dl"} and "mg/dL" in glu_units
        texts = set(ca.execute(sa.text("SELECT RESULT FROM LAB_RESULT")).scalars()) | \
            set(cb.execute(sa.text("SELECT jg FROM jy_jg")).scalars())
        assert texts & {"阴性", "-", "+", "弱阳性", "++", "阳性"}


def test_lab_values_include_censored_and_qualitative_results():
    import random

    from countyhealth import reference
    from countyhealth.simulate import his

    rng = random.Random(5)
    items = reference.lab_items()
    crp = [his.lab_value(items["HR-CRP"], rng) for _ in range(2000)]
    alt = [his.lab_value(items["HR-ALT"], rng) for _ in range(5000)]
    hbsag = {his.lab_value(items["HR-HBSAG"], rng)[1] for _ in range(500)}
    assert any(t == "<0.5" for _, t in crp) and any(t == ">1000" for _, t in alt)
    assert {"阴性", "弱阳性", "+"} <= hbsag
    glu = items["HR-GLU"]
    values = [his.lab_value(glu, rng)[0] for _ in range(2000)]
    assert all(glu.phys_low <= v <= glu.phys_high for v in values)  # plausible, never the limits themselves


def test_each_noise_kind_appears_at_about_its_rate(tmp_path):
    out = tmp_path / "noisy"
    generate(out, small_config(residents=4000, days=2, noise=NoiseRates.scaled(3.0)))
    counts = json.loads((out / "truth" / "expected_counts.json").read_text())
    noise = counts["identity_noise"]
    records = sum(1 for r in read_csv(out / "truth" / "records.csv") if r["table"] in
                  ("PAT_MASTER_INDEX", "hz_jbxx", "health_record", "contracts"))
    for kind in ("name_homophone", "name_traditional", "name_spaces", "id_missing", "id_15_digit", "id_one_digit",
                 "id_transposition", "id_lowercase_x", "guardian_id", "lunar_birth_date", "phone_missing"):
        assert noise.get(kind, 0) > 0, kind
    assert 0.5 * 0.09 < noise["name_homophone"] / records < 1.5 * 0.09
    defects = collections.Counter()
    for src in counts["defects"].values():
        for kinds in src.values():
            defects.update(kinds)
    for kind in ("blank_required", "implausible_value", "unknown_code", "future_date"):
        assert defects[kind] > 0, kind


def test_a_clean_county_has_no_noise(tmp_path):
    out = tmp_path / "clean"
    generate(out, small_config(residents=600, days=2, noise=NoiseRates.scaled(0)))
    counts = json.loads((out / "truth" / "expected_counts.json").read_text())
    assert counts["defects"] == {}
    assert set(counts["identity_noise"]) <= {"id_missing", "guardian_id", "lunar_birth_date", "id_lowercase_x"}


def test_contract_exports_are_gb18030_csv_or_xlsx_and_complete(county):
    out, _ = county
    files = sorted((out / "contracts" / "inbox").iterdir())
    assert {f.suffix for f in files} <= {".csv", ".xlsx"} and any(f.suffix == ".csv" for f in files)
    csv_file = next(f for f in files if f.suffix == ".csv")
    with pytest.raises(UnicodeDecodeError):
        csv_file.read_bytes().decode("utf-8")
    header = csv_file.read_bytes().decode("gb18030").split("\r\n")[0].split(",")
    assert header[:4] == ["记录号", "协议编号", "事件", "居民姓名"] and "解约原因" in header


def test_connections_files_name_every_source(county):
    out, manifest = county
    env = dict(line.split("=", 1) for line in (out / "connections.env").read_text().splitlines())
    for sid in manifest["his"]:
        assert env[f"AIRFLOW_CONN_{sid.upper()}"].startswith("sqlite:////")
    assert env["AIRFLOW_CONN_PUBLIC_HEALTH"].startswith("http://")
    assert set(json.loads((out / "connections.json").read_text())) == set(manifest["his"]) | {"public_health"}


def test_postgres_his(postgres_server, tmp_path):
    url = postgres_server.create_database("probe").rsplit("/", 1)[0] + "/his_{facility}"
    out = tmp_path / "pg"
    manifest = generate(out, small_config(residents=400, days=1, townships=1, county_hospitals=1, his_url_template=url))
    counts = json.loads((out / "truth" / "expected_counts.json").read_text())["rows"]
    eng = sa.create_engine(url.format(facility="w350125101"))
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM hz_jbxx")).scalar() == counts["his_w350125101"]["hz_jbxx"]
    eng.dispose()
    assert manifest["his"]["his_w350125101"]["url"] is None
