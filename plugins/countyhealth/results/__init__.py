"""The shared test-result record (检查检验结果互认): every resident's lab results and exam reports from every
member, keyed by the EMPI ``person_id``, harmonised, and marked recognisable (``HR``) or not, with the reason.

:func:`refresh` rebuilds ``shared_lab_result`` and ``shared_exam_report`` from the canonical tables in one
transaction: local item codes mapped to the county's items and LOINC (``config/harmonisation``), values
converted to each item's canonical unit, a correction superseding the result it corrects, and everything
that decides eligibility *except the date* resolved into columns — on the recognised list
(``config/recognition.yaml``), final, the lab's EQA passed for the item in the report's period (loaded
with ``countyhealth results load-eqa``), images retrievable for CT/MR/DR — plus ``valid_until``.
Eligibility as of a date is then one query (:data:`ELIGIBILITY_SQL`), so "what can this doctor reuse today"
needs no recomputation. On DuckDB, refresh also publishes a read-only snapshot for the read API
(:mod:`.snapshot`), so the API never holds the warehouse file the nightly run writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa

log = logging.getLogger(__name__)

UNIT_KEY_SQL = "lower(replace(replace(replace({col}, 'μ', 'u'), 'µ', 'u'), '^', '*'))"

ELIGIBILITY_SQL = """
SELECT r.*,
       CASE WHEN r.static_reason IS NULL AND CAST(:as_of AS TIMESTAMP) <= r.valid_until THEN :mark END AS mark,
       COALESCE(r.static_reason,
                CASE WHEN CAST(:as_of AS TIMESTAMP) > r.valid_until
                     THEN '已超过有效期 ' || CAST(r.validity_days AS VARCHAR) || ' 天 / past its '
                          || CAST(r.validity_days AS VARCHAR) || '-day validity window (until '
                          || CAST(CAST(r.valid_until AS DATE) AS VARCHAR) || ')' END) AS reason
FROM {table} r
WHERE r.person_id = :person_id
ORDER BY r.report_at DESC, r.source_record_id
"""

REASONS = {
    "unmapped": "本地项目未映射 / local item code not mapped to a county item",
    "not_on_list": "不在互认项目目录 / not on the county's recognised-item list",
    "not_final": "非最终报告 / not a final report",
    "no_eqa": "室间质评未通过或未参加 / the lab has no passed EQA for this item in the report's period",
    "no_images": "无可调阅影像 / no retrievable images (no DICOM study)",
}


@dataclass
class RefreshSummary:
    lab_results: int = 0
    exam_reports: int = 0
    lab_unlinked: int = 0  # results whose patient record has no person yet (identity has not placed it)
    exam_unlinked: int = 0
    lab_superseded: int = 0  # results replaced by a correction that arrived under a new record id
    snapshot: str | None = None
    seconds: float = 0.0


def _lab_sql(final: list[str]) -> str:
    finals = ", ".join(f"'{s}'" for s in final)
    unit_key = UNIT_KEY_SQL.format(col="l.unit")
    return f"""
INSERT INTO shared_lab_result (person_id, source_id, source_record_id, facility_code, facility_name, report_number,
    report_at, collected_at, received_at, tested_at, specimen_number, specimen_type, item_code_local,
    item_name_local, loinc, item_name, value_numeric, value_operator, value_text, unit, value_canonical,
    unit_canonical, reference_range, abnormal_flag, result_status, item_code, on_list, is_final, quality_ok,
    validity_days, valid_until, static_reason, refreshed_at)
SELECT pl.person_id, l.source_id, l.source_record_id, l.facility_code, f.name, l.report_number, l.report_at,
    l.collected_at, l.received_at, l.tested_at, l.specimen_number, l.specimen_type, l.item_code_local,
    l.item_name_local, m.loinc, ri.name, l.value_numeric, l.value_operator, l.value_text, l.unit,
    l.value_numeric * uf.factor, uf.canonical_unit, l.reference_range, l.abnormal_flag, l.result_status,
    m.item_code, ri.item_code IS NOT NULL, l.result_status IN ({finals}), COALESCE(eqa.passed, FALSE),
    ri.validity_days, l.report_at + ri.validity_days * INTERVAL '1 day',
    CASE WHEN m.item_code IS NULL THEN :unmapped
         WHEN ri.item_code IS NULL THEN :not_on_list
         WHEN l.result_status NOT IN ({finals}) OR l.result_status IS NULL THEN :not_final
         WHEN eqa.passed IS NULL THEN :no_eqa END,
    :now
FROM (SELECT x.*, row_number() OVER (PARTITION BY x.source_id, x.report_number, x.item_code_local
                                      ORDER BY x.source_updated_at DESC NULLS LAST, x.source_record_id DESC) AS _version
      FROM lab_result x) l
JOIN person_link pl ON pl.source_id = l.source_id AND pl.source_record_id = l.person_source_record_id
LEFT JOIN source_registry s ON s.source_id = l.source_id
LEFT JOIN lab_item_map m ON m.code_system = s.code_system AND m.local_code = l.item_code_local
LEFT JOIN recognised_item ri ON ri.item_code = m.item_code AND ri.kind = 'lab'
LEFT JOIN lab_unit_factor uf ON uf.item_code = m.item_code AND uf.unit_key = {unit_key}
LEFT JOIN (SELECT facility_code, min(name) AS name FROM facility GROUP BY facility_code) f
       ON f.facility_code = l.facility_code
LEFT JOIN (SELECT DISTINCT e.facility_code, e.item_code, e.period_start, e.period_end, TRUE AS passed
           FROM eqa_certification e WHERE e.passed) eqa
       ON eqa.facility_code = l.facility_code AND eqa.item_code = m.item_code
      AND CAST(l.report_at AS DATE) BETWEEN eqa.period_start AND eqa.period_end
WHERE l._version = 1
"""


def _exam_sql(final: list[str]) -> str:
    finals = ", ".join(f"'{s}'" for s in final)
    return f"""
INSERT INTO shared_exam_report (person_id, source_id, source_record_id, facility_code, facility_name, report_number,
    report_at, exam_at, exam_category, procedure_code_local, procedure_code, procedure_name, body_site, findings,
    impression, study_uid, device, result_status, item_code, on_list, is_final, quality_ok, validity_days,
    valid_until, static_reason, refreshed_at)
SELECT pl.person_id, e.source_id, e.source_record_id, e.facility_code, f.name, e.report_number, e.report_at,
    e.exam_at, e.exam_category, e.procedure_code_local, m.procedure_code, e.procedure_name, e.body_site, e.findings,
    e.impression, e.study_uid, e.device, e.result_status, m.item_code, ri.item_code IS NOT NULL,
    e.result_status IN ({finals}), NOT COALESCE(ri.requires_images, FALSE) OR e.study_uid IS NOT NULL,
    ri.validity_days, e.report_at + ri.validity_days * INTERVAL '1 day',
    CASE WHEN m.item_code IS NULL THEN :unmapped
         WHEN ri.item_code IS NULL THEN :not_on_list
         WHEN e.result_status NOT IN ({finals}) OR e.result_status IS NULL THEN :not_final
         WHEN ri.requires_images AND e.study_uid IS NULL THEN :no_images END,
    :now
FROM exam_report e
JOIN person_link pl ON pl.source_id = e.source_id AND pl.source_record_id = e.person_source_record_id
LEFT JOIN source_registry s ON s.source_id = e.source_id
LEFT JOIN exam_item_map m ON m.code_system = s.code_system AND m.local_code = e.procedure_code_local
LEFT JOIN recognised_item ri ON ri.item_code = m.item_code AND ri.kind = 'exam'
LEFT JOIN (SELECT facility_code, min(name) AS name FROM facility GROUP BY facility_code) f
       ON f.facility_code = e.facility_code
"""


def refresh(wh, *, publish_snapshot: bool = True) -> RefreshSummary:
    """Rebuild the shared tables (one transaction); on DuckDB publish the API's snapshot afterwards."""
    from countyhealth.results import config

    started = time.monotonic()
    cfg = config.load()
    summary = RefreshSummary()
    now = dt.datetime.now()
    params = {**REASONS, "now": now}
    wh.migrate()
    with wh.begin() as conn:
        config.load_into_warehouse(wh, conn, cfg)
        conn.execute(sa.text("DELETE FROM shared_lab_result"))
        conn.execute(sa.text("DELETE FROM shared_exam_report"))
        conn.execute(sa.text(_lab_sql(cfg.final_statuses)), params)
        conn.execute(sa.text(_exam_sql(cfg.final_statuses)), params)
        counts = conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM shared_lab_result), (SELECT count(*) FROM shared_exam_report), "
            "(SELECT count(*) FROM lab_result l WHERE NOT EXISTS (SELECT 1 FROM person_link pl WHERE "
            " pl.source_id = l.source_id AND pl.source_record_id = l.person_source_record_id)), "
            "(SELECT count(*) FROM exam_report e WHERE NOT EXISTS (SELECT 1 FROM person_link pl WHERE "
            " pl.source_id = e.source_id AND pl.source_record_id = e.person_source_record_id)), "
            "(SELECT count(*) FROM lab_result)")).fetchall()[0]
        summary.lab_results, summary.exam_reports, summary.lab_unlinked, summary.exam_unlinked = counts[:4]
        summary.lab_superseded = counts[4] - summary.lab_unlinked - summary.lab_results
    if publish_snapshot and wh.dialect == "duckdb":
        from countyhealth.results import snapshot

        summary.snapshot = str(snapshot.publish(wh))
    summary.seconds = round(time.monotonic() - started, 2)
    log.info("shared results: %d lab results, %d exam reports (%d + %d waiting for identity, %d superseded by a "
             "correction) in %.1fs", summary.lab_results, summary.exam_reports, summary.lab_unlinked,
             summary.exam_unlinked, summary.lab_superseded, summary.seconds)
    return summary


def _as_of(as_of) -> dt.datetime:
    as_of = as_of or dt.datetime.now()
    if isinstance(as_of, dt.date) and not isinstance(as_of, dt.datetime):
        as_of = dt.datetime.combine(as_of, dt.time(23, 59, 59))
    return as_of


def marked(rows: list[dict], as_of=None, *, mark: str = "HR") -> list[dict]:
    """Add ``mark`` and ``reason`` as of a date — the same rule as :data:`ELIGIBILITY_SQL` (a test keeps the
    two equal), in Python for readers that fetched rows by person id (the API's fast path)."""
    as_of = _as_of(as_of)
    for r in rows:
        valid_until = r.get("valid_until")
        if r.get("static_reason"):
            r["mark"], r["reason"] = None, r["static_reason"]
        elif valid_until is not None and as_of <= valid_until:
            r["mark"], r["reason"] = mark, None
        elif valid_until is not None:
            days = r.get("validity_days")
            r["mark"] = None
            r["reason"] = (f"已超过有效期 {days} 天 / past its {days}-day validity window (until "
                           f"{valid_until.date().isoformat()})")
        else:
            r["mark"], r["reason"] = None, None
    rows.sort(key=lambda r: r.get("source_record_id") or "")  # newest first, ties by record id (as the SQL)
    rows.sort(key=lambda r: r.get("report_at") or dt.datetime.min, reverse=True)
    return rows


def eligible(conn, person_id: str, as_of: dt.datetime | dt.date | None = None, *, kind: str = "lab",
             mark: str = "HR") -> list[dict]:
    """A person's shared results with their 互认 mark and reason as of a date (default now), newest first.
    ``conn`` is a connection to the warehouse or to the API snapshot."""
    table = {"lab": "shared_lab_result", "exam": "shared_exam_report"}[kind]
    rows = conn.execute(sa.text(ELIGIBILITY_SQL.format(table=table)),
                        {"as_of": _as_of(as_of), "person_id": person_id, "mark": mark}).mappings().all()
    return [dict(r) for r in rows]
