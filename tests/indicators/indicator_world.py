"""Hand-built warehouses for the indicator tests: canonical rows loaded the way the pipeline loads them,
persons linked in the identity tables, shared results written as the results stage writes them."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pyarrow as pa
import sqlalchemy as sa

from countyhealth import model

# a county hospital, two township centres, a village clinic under the first
FACILITIES = [("H1", "县医院", "county", None), ("W1", "甲镇卫生院", "township", None),
              ("W2", "乙镇卫生院", "township", None), ("C1", "甲镇某村卫生室", "village", "W1")]


class World:
    def __init__(self):
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.links: list[tuple[str, str, str]] = []  # (source_id, source_record_id, person_id)
        self.persons: dict[str, dt.date | None] = {}
        self.shared: dict[str, list[dict]] = defaultdict(list)
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n:05d}"

    def _row(self, dataset: str, source: str, facility: str, **values) -> dict:
        row = {"source_id": source, "source_record_id": self._id(dataset[:2]), "facility_code": facility,
               "batch_id": "b", **values}
        self.rows[dataset].append(row)
        return row

    def person(self, person_id: str, *, birth: dt.date | None = None, home: str | None = None) -> str:
        """A resident; ``home``: the primary-care member that keeps their health record."""
        self.persons[person_id] = birth
        if home:
            r = self._row("person", "public_health", home, name="某", birth_date=birth,
                          health_record_number=f"35012510{len(self.persons):09d}")
            self.links.append(("public_health", r["source_record_id"], person_id))
        return person_id

    def _patient(self, source: str, facility: str, person_id: str | None) -> str:
        r = self._row("person", source, facility, name="某")
        if person_id:
            self.links.append((source, r["source_record_id"], person_id))
        return r["source_record_id"]

    def visit(self, person_id: str | None, facility: str, at: dt.datetime, kind: str = "outpatient", *,
              dx: str = "J06.9", other_dx: str | None = None) -> None:
        source = f"his_{facility.lower()}"
        self._row("encounter", source, facility, person_source_record_id=self._patient(source, facility, person_id),
                  encounter_type=kind, start_at=at, diagnosis_code=dx, other_diagnosis_codes=other_dx)

    def contract(self, person_id: str | None, number: str, event: str, sign: dt.date, begin: dt.date, end: dt.date,
                 *, facility: str = "W1", termination: tuple[dt.date, str] | None = None) -> None:
        pid = self._patient("contracts", facility, person_id)  # one export row: a person and a contract record
        self._row("contract", "contracts", facility, source_record_id=pid, person_source_record_id=pid,
                  contract_number=number, event=event, team_code="T1", package_type="01", sign_date=sign,
                  begin_date=begin, end_date=end, status="terminated" if event == "terminate" else "signed",
                  termination_date=termination[0] if termination else None,
                  termination_reason=termination[1] if termination else None)

    def followup(self, person_id: str, condition: str, on: dt.date, mode: str = "1", *, facility: str = "W1",
                 bp: tuple[int, int] | None = None, glucose: float | None = None, unit: str = "mmol/L") -> None:
        self._row("chronic_followup", "public_health", facility, person_source_record_id=self._ph_record(person_id),
                  condition=condition, visit_date=on, visit_mode=mode, sbp=bp[0] if bp else None,
                  dbp=bp[1] if bp else None, fasting_glucose=glucose, glucose_unit=unit if glucose is not None else None)

    def _ph_record(self, person_id: str) -> str:
        for source, record, pid in self.links:
            if source == "public_health" and pid == person_id:
                return record
        raise AssertionError(f"{person_id} has no health record: give them a home")

    def shared_result(self, kind: str, person_id: str, facility: str, item: str, at: dt.datetime, *,
                      validity_days: int, eligible: bool = True, status: str = "final") -> None:
        """A row of shared_lab_result / shared_exam_report as results.refresh writes it."""
        row = {"person_id": person_id, "source_id": f"his_{facility.lower()}", "source_record_id": self._id("S"),
               "facility_code": facility, "report_number": self._id("R"), "report_at": at, "result_status": status,
               "item_code": item, "on_list": True, "is_final": status in ("final", "corrected"), "quality_ok": eligible,
               "validity_days": validity_days, "valid_until": at + dt.timedelta(days=validity_days),
               "static_reason": None if eligible else "室间质评未通过或未参加 / no passed EQA",
               "refreshed_at": at}
        row["collected_at" if kind == "lab" else "exam_at"] = at - dt.timedelta(hours=1)
        self.shared[kind].append(row)

    def build(self, wh) -> None:
        wh.migrate()
        now = dt.datetime(2026, 6, 1)
        for code, name, level, parent in FACILITIES:
            self._row("facility", "registry", code, source_record_id=code, name=name, level=level, parent_code=parent)
        for dataset, rows in self.rows.items():
            wh.load(dataset, model.conform(dataset, pa.Table.from_pylist(rows, schema=model.schema(dataset))))
        with wh.begin() as conn:
            for pid, birth in self.persons.items():
                conn.execute(sa.text("INSERT INTO empi_person VALUES (:p, 'active', NULL, :t, :t)"), {"p": pid, "t": now})
                conn.execute(sa.text("INSERT INTO golden_person (person_id, name, birth_date, records, sources, "
                                     "updated_at) VALUES (:p, '某', :b, 1, 1, :t)"), {"p": pid, "b": birth, "t": now})
            for source, record, pid in self.links:
                conn.execute(sa.text("INSERT INTO identity_record (source_id, source_record_id, person_id, link_kind, "
                                     "match_probability, linked_at, run_id) VALUES (:s, :r, :p, 'deterministic', 1.0, "
                                     ":t, 'r')"), {"s": source, "r": record, "p": pid, "t": now})
            for kind, table in (("lab", "shared_lab_result"), ("exam", "shared_exam_report")):
                for row in self.shared[kind]:
                    cols = ", ".join(row)
                    conn.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + c for c in row)})"),
                                 row)


def values(wh, indicator: str, *, scope: str = "county", unit: str = "*", item: str = "") -> dict:
    """month (YYYY-MM) -> (numerator, denominator, rate, amount_yuan)."""
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT month_start, numerator, denominator, rate, amount_yuan FROM indicator_value WHERE indicator = :i "
            "AND scope = :s AND unit_code = :u AND item_code = :it ORDER BY month_start"),
            {"i": indicator, "s": scope, "u": unit, "it": item}).fetchall()
    return {r[0].isoformat()[:7]: (r[1], r[2], r[3], r[4]) for r in rows}
