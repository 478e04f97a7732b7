"""FHIR R4 resources for the shared results: Patient, Observation, DiagnosticReport, ImagingStudy, Bundle.

Built as plain JSON and validated by parsing with ``fhir.resources``' R4B models (FHIR 4.3, the R4 line:
Patient, Observation, DiagnosticReport and ImagingStudy are unchanged from 4.0.1 in what we use; the
package ships no 4.0.1 models). Conventions, documented in docs/results.md:

- identifiers use the OIDs of WS/T 500 (patient 2.16.156.10011.1.3 … report number .1.33, specimen .1.14)
  and ``urn:countyhealth:person`` for the EMPI person id;
- an Observation's ``code`` carries LOINC, the county's recognised-item code (``urn:countyhealth:item``)
  and the member's local code (``urn:countyhealth:local:<code system>``);
- quantities are in the item's canonical unit with its UCUM code where one exists; censored values
  (``<0.1``) use ``valueQuantity.comparator``; qualitative results are ``valueString``;
- **互认**: a result recognisable on the export date carries ``meta.tag`` {system
  ``urn:countyhealth:mutual-recognition``, code ``HR``}; one that is not carries code ``not-recognised``
  with the reason in ``display``. The impression of an exam (the doctor's conclusion) is in
  ``DiagnosticReport.conclusion`` and is never part of what is recognised;
- Patient identifiers: the resident ID number (``…1.3.1``: ID card) only when the caller is authorised to
  see it, otherwise a masked display value; phones likewise.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import sqlalchemy as sa

from countyhealth import privacy

log = logging.getLogger(__name__)

HR_SYSTEM = "urn:countyhealth:mutual-recognition"
PERSON_SYSTEM = "urn:countyhealth:person"
ITEM_SYSTEM = "urn:countyhealth:item"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ID_CARD_OID = "urn:oid:2.16.156.10011.1.3.1"
REPORT_OID = "urn:oid:2.16.156.10011.1.33"
SPECIMEN_OID = "urn:oid:2.16.156.10011.1.14"
FACILITY_SYSTEM = "urn:countyhealth:facility"
UCUM_CODES = {"mmol/L": "mmol/L", "umol/L": "umol/L", "g/L": "g/L", "U/L": "U/L", "mg/L": "mg/L", "%": "%",
              "10*9/L": "10*9/L", "10*12/L": "10*12/L", "mIU/L": "m[IU]/L", "s": "s"}
INTERPRETATION = {"H": ("H", "High"), "L": ("L", "Low"), "N": ("N", "Normal"), "A": ("A", "Abnormal"),
                  "HH": ("HH", "Critical high"), "LL": ("LL", "Critical low")}
SEX = {"1": "male", "2": "female", "0": "unknown", "9": "unknown"}
DICOM_MODALITY = {"CT": "CT", "MR": "MR", "DR": "DX", "US": "US", "ECG": "ECG", "NM": "NM"}


def _ts(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat() + "+08:00"  # member systems record Asia/Shanghai time
    return value.isoformat()


def _tag(mark: str | None, reason: str | None) -> dict:
    if mark:
        return {"tag": [{"system": HR_SYSTEM, "code": mark, "display": "检查检验结果互认 / mutually recognised"}]}
    return {"tag": [{"system": HR_SYSTEM, "code": "not-recognised", "display": (reason or "")[:250]}]}


def patient(person_id: str, golden: dict | None, *, show_identifiers: bool = False) -> dict:
    res: dict = {"resourceType": "Patient", "id": person_id,
                 "identifier": [{"system": PERSON_SYSTEM, "value": person_id}]}
    if not golden:
        return res
    if golden.get("name"):
        res["name"] = [{"text": golden["name"], "family": golden["name"][:1], "given": [golden["name"][1:]]
                        if len(golden["name"]) > 1 else []}]
    if golden.get("sex_code"):
        res["gender"] = SEX.get(golden["sex_code"], "unknown")
    if golden.get("birth_date"):
        res["birthDate"] = str(golden["birth_date"])[:10]
    if golden.get("id_number"):
        number = privacy.decrypt(golden["id_number"])
        res["identifier"].append({"system": ID_CARD_OID, "type": {"text": "居民身份证"},
                                  "value": number if show_identifiers else privacy.mask_id(number)})
    if golden.get("health_record_number"):
        res["identifier"].append({"system": "urn:countyhealth:health-record", "value": golden["health_record_number"]})
    if golden.get("phone"):
        phone = privacy.decrypt(golden["phone"])
        res["telecom"] = [{"system": "phone", "value": phone if show_identifiers else privacy.mask_phone(phone)}]
    if golden.get("address"):
        res["address"] = [{"text": golden["address"], "district": golden.get("address_township")}]
    return res


def observation(row: dict) -> dict:
    rid = f"lab-{row['source_id']}-{row['source_record_id']}"
    codings = []
    if row.get("loinc"):
        codings.append({"system": LOINC, "code": row["loinc"], "display": row.get("item_name")})
    if row.get("item_code"):
        codings.append({"system": ITEM_SYSTEM, "code": row["item_code"], "display": row.get("item_name")})
    codings.append({"system": f"urn:countyhealth:local:{row['source_id']}", "code": row["item_code_local"],
                    "display": row.get("item_name_local")})
    obs: dict = {
        "resourceType": "Observation", "id": _fhir_id(rid), "meta": _tag(row.get("mark"), row.get("reason")),
        "status": "corrected" if row.get("result_status") == "corrected" else
        ("final" if row.get("result_status") == "final" else "preliminary"),
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": codings, "text": row.get("item_name") or row.get("item_name_local")},
        "subject": {"reference": f"Patient/{row['person_id']}"},
        "performer": [{"identifier": {"system": FACILITY_SYSTEM, "value": row.get("facility_code")},
                       "display": row.get("facility_name") or row.get("facility_code")}],
        "identifier": [{"system": REPORT_OID, "value": f"{row.get('report_number')}"}],
    }
    if row.get("collected_at"):
        obs["effectiveDateTime"] = _ts(row["collected_at"])
    if row.get("report_at"):
        obs["issued"] = _ts(row["report_at"])
    if row.get("value_numeric") is not None:
        value = row.get("value_canonical") if row.get("value_canonical") is not None else row["value_numeric"]
        unit = row.get("unit_canonical") if row.get("value_canonical") is not None else row.get("unit")
        q: dict = {"value": round(float(value), 4)}
        if unit:
            q["unit"] = unit
            if unit in UCUM_CODES:
                q["system"], q["code"] = UCUM, UCUM_CODES[unit]
        if row.get("value_operator") in ("<", ">", "<=", ">="):
            q["comparator"] = row["value_operator"]
        obs["valueQuantity"] = q
    elif row.get("value_text"):
        obs["valueString"] = row["value_text"]
    if row.get("reference_range"):
        obs["referenceRange"] = [{"text": row["reference_range"]}]
    if row.get("abnormal_flag") in INTERPRETATION:
        code, display = INTERPRETATION[row["abnormal_flag"]]
        obs["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                              "code": code, "display": display}]}]
    if row.get("specimen_number"):
        obs["specimen"] = {"identifier": {"system": SPECIMEN_OID, "value": row["specimen_number"]},
                           "display": row.get("specimen_type")}
    return obs


def lab_report(rows: list[dict]) -> tuple[dict, list[dict]]:
    """A DiagnosticReport grouping one lab report's observations, and the observations."""
    first = rows[0]
    observations = [observation(r) for r in rows]
    rid = _fhir_id(f"labreport-{first['source_id']}-{first['report_number']}")
    report = {
        "resourceType": "DiagnosticReport", "id": rid,
        "meta": _tag("HR" if all(r.get("mark") for r in rows) else None,
                     None if all(r.get("mark") for r in rows) else "部分项目不可互认 / not every result is recognised"),
        "identifier": [{"system": REPORT_OID, "value": first["report_number"]}],
        "status": "corrected" if any(r.get("result_status") == "corrected" for r in rows) else "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
        "code": {"text": "检验报告 / laboratory report"},
        "subject": {"reference": f"Patient/{first['person_id']}"},
        "issued": _ts(first.get("report_at")),
        "performer": [{"identifier": {"system": FACILITY_SYSTEM, "value": first.get("facility_code")},
                       "display": first.get("facility_name") or first.get("facility_code")}],
        "result": [{"reference": f"Observation/{o['id']}"} for o in observations],
    }
    if first.get("collected_at"):
        report["effectiveDateTime"] = _ts(first["collected_at"])
    return report, observations


def exam_report(row: dict) -> tuple[dict, dict | None]:
    """A DiagnosticReport for an exam, and an ImagingStudy when the exam has images (CT, MR, DR)."""
    rid = _fhir_id(f"exam-{row['source_id']}-{row['source_record_id']}")
    report: dict = {
        "resourceType": "DiagnosticReport", "id": rid, "meta": _tag(row.get("mark"), row.get("reason")),
        "identifier": [{"system": REPORT_OID, "value": row.get("report_number") or row["source_record_id"]}],
        "status": "corrected" if row.get("result_status") == "corrected" else
        ("final" if row.get("result_status") == "final" else "preliminary"),
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}],
                      "text": row.get("exam_category")}],
        "code": {"coding": ([{"system": ITEM_SYSTEM, "code": row["item_code"]}] if row.get("item_code") else []) +
                 [{"system": f"urn:countyhealth:local:{row['source_id']}", "code": row.get("procedure_code_local")}],
                 "text": row.get("procedure_name")},
        "subject": {"reference": f"Patient/{row['person_id']}"},
        "issued": _ts(row.get("report_at")),
        "performer": [{"identifier": {"system": FACILITY_SYSTEM, "value": row.get("facility_code")},
                       "display": row.get("facility_name") or row.get("facility_code")}],
    }
    if row.get("exam_at"):
        report["effectiveDateTime"] = _ts(row["exam_at"])
    if row.get("impression"):
        report["conclusion"] = row["impression"]  # the doctor's conclusion: shown, never recognised
    if row.get("findings"):
        report["text"] = {"status": "generated",
                          "div": f"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{_escape(row['findings'])}</p></div>"}
    study = None
    if row.get("study_uid") and row.get("exam_category") in ("CT", "MR", "DR", "NM"):
        study = {"resourceType": "ImagingStudy", "id": _fhir_id(f"study-{row['source_id']}-{row['source_record_id']}"),
                 "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{row['study_uid']}"}],
                 "status": "available", "subject": {"reference": f"Patient/{row['person_id']}"},
                 "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                               "code": DICOM_MODALITY.get(row["exam_category"], "OT")}],
                 "description": row.get("procedure_name")}
        if row.get("exam_at"):
            study["started"] = _ts(row["exam_at"])
        report["imagingStudy"] = [{"reference": f"ImagingStudy/{study['id']}"}]
    return report, study


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fhir_id(text: str) -> str:
    """FHIR ids: [A-Za-z0-9-.]{1,64}; long or odd ones become a stable hash."""
    import hashlib
    import re

    clean = re.sub(r"[^A-Za-z0-9\-.]", "-", text)
    return clean if len(clean) <= 64 else clean[:40] + "-" + hashlib.sha1(text.encode()).hexdigest()[:16]


def bundle_for(person_id: str, golden: dict | None, labs: list[dict], exams: list[dict], *,
               show_identifiers: bool = False, bundle_type: str = "collection") -> dict:
    """A Bundle of the person's Patient, lab DiagnosticReports with their Observations and exam reports with
    ImagingStudies, from rows already marked (:func:`countyhealth.results.marked` / ``eligible``)."""
    entries = [patient(person_id, golden, show_identifiers=show_identifiers)]
    by_report: dict[tuple, list] = {}
    for r in labs:
        by_report.setdefault((r["source_id"], r["report_number"]), []).append(r)
    for rows in by_report.values():
        report, observations = lab_report(rows)
        entries += [report, *observations]
    for r in exams:
        report, study = exam_report(r)
        entries.append(report)
        if study:
            entries.append(study)
    return {"resourceType": "Bundle", "type": bundle_type, "id": _fhir_id(f"person-{person_id}"),
            "timestamp": _ts(dt.datetime.now()), "total": len(entries) if bundle_type == "searchset" else None,
            "entry": [{"fullUrl": f"urn:countyhealth:{e['resourceType']}/{e['id']}", "resource": e} for e in entries]}


def person_bundle(conn, person_id: str, *, as_of: dt.datetime | None = None, show_identifiers: bool = False) -> dict:
    """The person's collection Bundle from the warehouse — validated by fhir.resources before it is returned."""
    from countyhealth import results

    golden = conn.execute(sa.text("SELECT * FROM golden_person WHERE person_id = :p"), {"p": person_id}).mappings().first()
    bundle = bundle_for(person_id, dict(golden) if golden else None,
                        results.eligible(conn, person_id, as_of, kind="lab"),
                        results.eligible(conn, person_id, as_of, kind="exam"), show_identifiers=show_identifiers)
    bundle.pop("total")
    validate(bundle)
    return bundle


def validate(bundle: dict) -> None:
    """Parse with fhir.resources (R4B): raises pydantic's ValidationError naming the bad element."""
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)


def export_person(wh, person_id: str, out_dir: Path, *, as_of=None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    with wh.engine.connect() as conn:
        bundle = person_bundle(conn, person_id, as_of=as_of)
    path = out_dir / f"{person_id}.json"
    path.write_text(json.dumps(bundle, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def export_day(wh, day: dt.date, out_dir: Path, *, as_of=None) -> int:
    """One Bundle per person with a result reported on ``day``; returns how many were written."""
    start = dt.datetime.combine(day, dt.time())
    with wh.engine.connect() as conn:
        persons = [r[0] for r in conn.execute(sa.text(
            "SELECT person_id FROM shared_lab_result WHERE report_at >= :s AND report_at < :e UNION "
            "SELECT person_id FROM shared_exam_report WHERE report_at >= :s AND report_at < :e"),
            {"s": start, "e": start + dt.timedelta(days=1)}).all()]
    for person_id in sorted(persons):
        export_person(wh, person_id, out_dir, as_of=as_of or start + dt.timedelta(days=1))
    log.info("FHIR: %d bundle(s) for %s in %s", len(persons), day, out_dir)
    return len(persons)
