"""FHIR export validates; the read API served by a real uvicorn server: tokens, audit, merged ids, and the
pipeline refreshing while the API serves."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time

import pytest
import requests
import sqlalchemy as sa

from countyhealth.results import api, fhir
from countyhealth.warehouse import Warehouse

from conftest import lab, load_county
from test_shared_results import EQA


def exam(rid, category="CT", uid="1.2.156.1.1"):
    return {"source_id": "his_h350125001", "source_record_id": rid, "facility_code": "H350125001", "batch_id": "b",
            "person_source_record_id": "X9", "report_number": rid, "report_at": dt.datetime(2026, 3, 2, 11),
            "exam_at": dt.datetime(2026, 3, 2, 10), "exam_category": category,
            "procedure_code_local": {"CT": "CT01", "US": "US04"}[category], "procedure_name": "头颅CT平扫",
            "findings": "未见明显异常密度影。", "impression": "头颅CT平扫未见明显异常", "result_status": "final",
            "study_uid": uid}


@pytest.fixture
def county_wh(warehouse_url):
    """The same small county on DuckDB (the API reads published snapshots) and on PostgreSQL (production: the API
    reads the warehouse itself and keeps its tokens and audit there)."""
    wh = Warehouse(warehouse_url)
    wh.test_url = warehouse_url
    load_county(wh, [lab("L1", "JY011", 126.0, "mg/dL"), lab("L2", "JY061", 0.5, "mg/L", op="<", text="<0.5"),
                     lab("L3", "JY091", None, None, text="阴性", report="R2")],
                exams=[exam("E1"), exam("E2", uid=None)], eqa=EQA)
    return wh


def test_python_marking_equals_the_eligibility_sql(county_wh):
    from countyhealth import results

    for as_of in (dt.date(2026, 3, 3), dt.date(2026, 3, 20), dt.date(2026, 6, 1)):
        with county_wh.engine.connect() as conn:
            by_sql = results.eligible(conn, "P0000000001", as_of)
            raw = [dict(r) for r in conn.execute(sa.text("SELECT * FROM shared_lab_result WHERE person_id = :p"),
                                                 {"p": "P0000000001"}).mappings()]
        by_python = results.marked(raw, as_of)
        assert [(r["source_record_id"], r["mark"], r["reason"]) for r in by_sql] == \
            [(r["source_record_id"], r["mark"], r["reason"]) for r in by_python]


def test_exported_bundles_validate_and_carry_the_hr_mark(county_wh, tmp_path):
    path = fhir.export_person(county_wh, "P0000000001", tmp_path, as_of=dt.datetime(2026, 3, 3))
    bundle = json.loads(path.read_text())
    fhir.validate(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Patient") == 1 and kinds.count("Observation") == 3 and kinds.count("ImagingStudy") == 1
    obs = {e["resource"]["id"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"}
    glucose = next(o for o in obs.values() if any(c["code"] == "1558-6" for c in o["code"]["coding"]))
    assert glucose["valueQuantity"]["unit"] == "mmol/L" and glucose["valueQuantity"]["code"] == "mmol/L"
    assert glucose["meta"]["tag"][0]["code"] == "HR"
    crp = next(o for o in obs.values() if "valueQuantity" in o and o["valueQuantity"].get("comparator"))
    assert crp["valueQuantity"]["comparator"] == "<"
    assert any(o.get("valueString") == "阴性" for o in obs.values())
    reports = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    ct_without_images = next(r for r in reports if r.get("conclusion") and "imagingStudy" not in r)
    assert ct_without_images["meta"]["tag"][0]["code"] == "not-recognised"
    patient = bundle["entry"][0]["resource"]
    assert "350125198001011238" not in json.dumps(patient) and patient["birthDate"] == "1980-01-01"
    assert fhir.export_day(county_wh, dt.date(2026, 3, 2), tmp_path / "day") == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(county_wh, tmp_path, monkeypatch):
    import uvicorn

    url = county_wh.test_url
    monkeypatch.setenv("COUNTYHEALTH_WAREHOUSE_URL", url)
    store = url if url.startswith("postgresql") else f"sqlite:///{tmp_path / 'api.sqlite'}"
    app = api.create_app(warehouse_url=url, store=store, token_cache_seconds=0)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", store, county_wh
    srv.should_exit = True
    thread.join(timeout=10)


def test_tokens_are_required_hashed_and_tied_to_their_facility(server):
    url, store, wh = server
    token = api.create_token("W350125101", "zhangcheng-his", url=store)
    assert requests.get(f"{url}/fhir/Observation", params={"patient": "P0000000001"}, timeout=5).status_code == 401
    bad = requests.get(f"{url}/fhir/Observation", params={"patient": "P0000000001"},
                       headers={"Authorization": "Bearer chk_wrong"}, timeout=5)
    assert bad.status_code == 401 and bad.json()["resourceType"] == "OperationOutcome"
    other = requests.get(f"{url}/fhir/Observation", params={"patient": "P0000000001"},
                         headers={"Authorization": f"Bearer {token}", "X-Facility-Code": "H350125001"}, timeout=5)
    assert other.status_code == 403
    ok = requests.get(f"{url}/fhir/Observation", params={"patient": "Patient/P0000000001"},
                      headers={"Authorization": f"Bearer {token}", "X-Facility-Code": "W350125101"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["total"] == 3
    engine = api.store_engine(store)
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT token_hash FROM api_token")).scalars().all()
        audit = conn.execute(sa.text("SELECT facility_code, endpoint, person_id, status, resources FROM access_audit "
                                     "ORDER BY id")).all()
    assert token not in hashes and api.hash_token(token) in hashes
    assert [a[3] for a in audit] == [401, 401, 403, 200]
    assert audit[-1][:3] == ("W350125101", "GET /fhir/Observation", "P0000000001") and audit[-1][4] == 3
    assert api.revoke_token("zhangcheng-his", url=store) == 1
    assert requests.get(f"{url}/fhir/Observation", params={"patient": "P0000000001"},
                        headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 401


def test_patient_and_reports_follow_merges_and_mask_ids(server):
    url, store, wh = server
    token = api.create_token("H350125001", "county-hospital", url=store)
    h = {"Authorization": f"Bearer {token}"}
    patient = requests.get(f"{url}/fhir/Patient/P0000000002", headers=h, timeout=5).json()  # merged id
    assert patient["id"] == "P0000000001" and patient["link"][0]["other"]["reference"] == "Patient/P0000000002"
    assert "350125198001011238" not in json.dumps(patient)
    reports = requests.get(f"{url}/fhir/DiagnosticReport", params={"patient": "P0000000001"}, headers=h, timeout=5)
    assert reports.status_code == 200 and reports.json()["total"] == 4  # 2 lab reports + 2 exams
    full = api.create_token("H350125001", "county-hospital-mpi", can_see_identifiers=True, url=store)
    unmasked = requests.get(f"{url}/fhir/Patient/P0000000001", headers={"Authorization": f"Bearer {full}"}, timeout=5)
    assert "350125198001011238" in unmasked.text
    assert requests.get(f"{url}/fhir/Patient/P9999999999", headers=h, timeout=5).status_code == 404
    everything = requests.get(f"{url}/fhir/Patient/P0000000002/$everything", headers=h, timeout=5).json()
    fhir.validate(everything)
    kinds = [e["resource"]["resourceType"] for e in everything["entry"]]
    assert kinds[0] == "Patient" and kinds.count("Observation") == 3 and kinds.count("ImagingStudy") == 1


def test_the_pipeline_can_refresh_while_the_api_serves(server):
    url, store, wh = server
    token = api.create_token("W350125101", "w", url=store)
    h = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{url}/fhir/Observation", params={"patient": "P0000000001"}, headers=h, timeout=5).json()[
        "total"] == 3
    # the nightly load writes the warehouse (the API must not be holding it) and publishes a new snapshot
    wh.load("lab_result", __import__("pyarrow").Table.from_pylist(
        [lab("L9", "JY041", 4.4, "mmol/L", report="R9")],
        schema=__import__("countyhealth").model.schema("lab_result")))
    from countyhealth import results

    results.refresh(wh)
    time.sleep(1.1)  # the API checks for a new snapshot at most once a second
    after = requests.get(f"{url}/fhir/Observation", params={"patient": "P0000000001"}, headers=h, timeout=5).json()
    assert after["total"] == 4


def test_tokens_expire_rotate_with_a_grace_period_and_name_a_registered_facility(server):
    from click.testing import CliRunner

    from countyhealth.results.commands import results

    url, store, wh = server
    q = {"patient": "P0000000001"}
    old = api.create_token("W350125101", "w-his", url=store)
    assert requests.get(f"{url}/fhir/Observation", params=q, headers={"Authorization": f"Bearer {old}"},
                        timeout=5).status_code == 200
    new = api.rotate_token("w-his", grace_hours=0, url=store)  # the old one stops at once
    assert requests.get(f"{url}/fhir/Observation", params=q, headers={"Authorization": f"Bearer {old}"},
                        timeout=5).status_code == 401
    assert requests.get(f"{url}/fhir/Observation", params=q, headers={"Authorization": f"Bearer {new}"},
                        timeout=5).status_code == 200
    engine = api.store_engine(store)
    with engine.begin() as conn:  # the new one reaches its expiry
        conn.execute(api.API_TOKEN.update().where(api.API_TOKEN.c.token_hash == api.hash_token(new))
                     .values(expires_at=dt.datetime.now() - dt.timedelta(seconds=1)))
        expiries = conn.execute(sa.select(api.API_TOKEN.c.expires_at)).scalars().all()
    engine.dispose()
    assert all(e is not None for e in expiries)
    refused = requests.get(f"{url}/fhir/Observation", params=q, headers={"Authorization": f"Bearer {new}"}, timeout=5)
    assert refused.status_code == 401 and "expired" in refused.text
    runner = CliRunner()
    unknown = runner.invoke(results, ["token", "create", "--facility", "W999999999"], env={
        "COUNTYHEALTH_API_STORE_URL": store})
    assert unknown.exit_code != 0 and "not in the facility registry" in unknown.output
    assert "Traceback" not in unknown.output
    made = runner.invoke(results, ["token", "create", "--facility", "W350125101", "--days", "7"],
                         env={"COUNTYHEALTH_API_STORE_URL": store})
    assert made.exit_code == 0 and made.output.startswith("chk_")
