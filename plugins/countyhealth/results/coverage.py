"""Harmonisation coverage: local lab and exam codes the county has not mapped, per member, most frequent
first — the county IT team's to-do list (add rows to config/harmonisation/*.csv, then refresh)."""

from __future__ import annotations

import sqlalchemy as sa

SQL = """
SELECT facility_code, code_system, kind, local_code, local_name, results FROM (
  SELECT l.facility_code, s.code_system, 'lab' AS kind, l.item_code_local AS local_code,
         min(l.item_name_local) AS local_name, count(*) AS results
  FROM lab_result l LEFT JOIN source_registry s ON s.source_id = l.source_id
  WHERE NOT EXISTS (SELECT 1 FROM lab_item_map m WHERE m.code_system = s.code_system
                    AND m.local_code = l.item_code_local)
  GROUP BY l.facility_code, s.code_system, l.item_code_local
  UNION ALL
  SELECT e.facility_code, s.code_system, 'exam', e.procedure_code_local, min(e.procedure_name), count(*)
  FROM exam_report e LEFT JOIN source_registry s ON s.source_id = e.source_id
  WHERE e.procedure_code_local IS NOT NULL AND NOT EXISTS (SELECT 1 FROM exam_item_map m
        WHERE m.code_system = s.code_system AND m.local_code = e.procedure_code_local)
  GROUP BY e.facility_code, s.code_system, e.procedure_code_local
) u ORDER BY results DESC, facility_code, local_code
LIMIT :limit
"""


def unmapped(wh, *, limit: int = 50) -> list[dict]:
    """Needs the maps loaded (a refresh does it)."""
    with wh.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(SQL), {"limit": limit}).mappings().all()]
