"""The golden record: one row per person, each attribute from the most trusted source that has it (trust order
in config/identity.yaml), then the most recent; every attribute keeps the source it came from.

An ID number is taken only from records whose ID is valid and the person's own (not a guardian's); a phone
only when it normalises to a real number. ID numbers and phones stay ciphertext, with their keyed hashes.

Built by one ``INSERT … SELECT`` in the warehouse: each record's place in its person's trust-then-recency order
(a window), then per person and attribute the value of the first place that has one — so a night's hundred
thousand touched persons never travel to Python and back.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import sqlalchemy as sa

from countyhealth.identity import store

# attribute → (what a record must satisfy to give it, columns taken with it from the same record)
ATTRIBUTES = {
    "name": ("name IS NOT NULL", {}),
    "sex_code": ("sex_code IS NOT NULL", {}),
    "birth_date": ("birth_date IS NOT NULL", {}),
    "id_number": ("id_number IS NOT NULL AND id_valid", {"id_number_hash": "id_number_hash"}),
    "phone": ("phone IS NOT NULL AND phone_hash IS NOT NULL", {"phone_hash": "phone_hash"}),
    "health_record_number": ("health_record_number IS NOT NULL", {}),
    "address": ("address IS NOT NULL", {"address_township": "township", "address_village": "village"}),
}
# a person's records in order of preference: trust first, then the most recent; source and record break the
# remaining ties (the same answer every run)
_PLACE = ("row_number() OVER (PARTITION BY r.person_id ORDER BY t.trust_rank, p.source_updated_at DESC NULLS LAST, "
          "r.source_id, r.source_record_id)")


def _first(expr: str, condition: str, dialect: str) -> str:
    """The value of ``expr`` on the person's most preferred record satisfying ``condition``. On DuckDB arg_min: an
    ordered array_agg, what PostgreSQL has, is four times slower there (and slower still beside a count(DISTINCT))."""
    if dialect == "duckdb":
        return f"arg_min({expr}, place) FILTER (WHERE {condition})"
    return f"(array_agg({expr} ORDER BY place) FILTER (WHERE {condition}))[1]"


def _sql(persons: str, dialect: str) -> str:
    columns, values = ["person_id"], ["person_id"]
    for attr, (condition, extra) in ATTRIBUTES.items():
        for column, expr in {attr: attr, f"{attr}_source_id": "source_id", **extra}.items():
            columns.append(column)
            values.append(_first(expr, condition, dialect))
    columns += ["records", "sources", "updated_at"]
    values += ["count(*)", "count(DISTINCT source_id)", ":now"]
    attributes = ", ".join(f"p.{c}" for c in ATTRIBUTES) + ", p.id_number_hash, p.phone_hash"
    return (f"INSERT INTO golden_person ({', '.join(columns)})\n"
            f"WITH rec AS (\n"
            f"  SELECT r.person_id, r.source_id, r.source_record_id, r.id_valid, r.township, r.village, {attributes},\n"
            f"         {_PLACE} AS place\n"
            f"  FROM identity_record r\n"
            f"  JOIN person p ON p.source_id = r.source_id AND p.source_record_id = r.source_record_id\n"
            f"  JOIN empi_person e ON e.person_id = r.person_id AND e.status = 'active'\n"
            f"  JOIN _identity_trust t ON t.source_id = r.source_id\n"
            f"  WHERE r.person_id IN (SELECT person_id FROM {persons}))\n"
            f"SELECT {', '.join(values)}\n"
            f"FROM rec GROUP BY person_id")


def refresh(wh, conn, person_ids: list[str], cfg, now: dt.datetime) -> None:
    """Rebuild the golden rows of these persons (a merged one's row goes: it redirects to its survivor)."""
    if not person_ids:
        return
    persons = store.persons_table(wh, conn, person_ids)
    _trust_table(wh, conn, cfg)
    conn.execute(sa.text(f"DELETE FROM golden_person WHERE person_id IN (SELECT person_id FROM {persons})"))
    conn.execute(sa.text(_sql(persons, conn.dialect.name)), {"now": now})


def _trust_table(wh, conn, cfg) -> None:
    """Each source's place in the trust order (config patterns match source ids) in a temporary table: a
    county has tens of sources, ranked here once rather than by a CASE over patterns in SQL."""
    sources = [row[0] for row in conn.execute(sa.text("SELECT DISTINCT source_id FROM identity_record")).fetchall()]
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_trust (source_id VARCHAR, trust_rank INTEGER)"))
    conn.execute(sa.text("DELETE FROM _identity_trust"))
    store.fill_temp(wh, conn, "_identity_trust", pa.table({"source_id": pa.array(sources, pa.string()),
                                                        "trust_rank": pa.array([cfg.trust_rank(s) for s in sources],
                                                                               pa.int32())}))
