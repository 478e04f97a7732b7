"""The EMPI's tables in the warehouse: reading what to link and the candidates, writing links, events, the
review queue and golden records — all of one run in one transaction (DuckDB has one writer)."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import sqlalchemy as sa

from countyhealth import model
from countyhealth.identity import features
from countyhealth.identity import model as identity_model

RECORD_COLUMNS = ["source_id", "source_record_id", "person_id", "batch_id", "name_std", "name_pinyin", "name_fuzzy",
                  "surname_pinyin", "given_pinyin", "name_words", "sex", "birth_date", "birth_year", "id_hash",
                  "id_valid", "id_foreign", "phone_hash", "health_record_number", "household_key",
                  "house_number", "address_head", "address_tail", "link_kind", "match_probability", "linked_at", "run_id"]
PERSON_COLUMNS = [f.name for f in model.fields("person")]

# the blocking rules' keys as stored: ID numbers and phones only as keyed hashes (one home: model.BLOCKING_RULES)
_STORED_AS = {"id18": "id_hash", "phone": "phone_hash"}
_CANDIDATE_KEYS = [tuple(sorted(_STORED_AS.get(c, c) for c in identity_model.rule_columns(rule)))
                   for rule in identity_model.BLOCKING_RULES]


def _frame(conn, sql: str, params: dict | None = None) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), params or {})
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def to_link(conn) -> pd.DataFrame:
    """Person rows never linked, or changed since their link (their batch differs from the one linked)."""
    cols = ", ".join(f"p.{c}" for c in PERSON_COLUMNS)
    return _frame(conn, f"SELECT {cols}, r.person_id AS previous_person_id FROM person p "
                        "LEFT JOIN identity_record r ON r.source_id = p.source_id "
                        "AND r.source_record_id = p.source_record_id "
                        "WHERE r.person_id IS NULL OR r.batch_id IS DISTINCT FROM p.batch_id")


def candidates(conn, new: pd.DataFrame, exclude: set[str]) -> pd.DataFrame:
    """Linked records sharing a blocking key with a new record, plus every record of the persons they belong
    to (the guards judge whole persons), as person rows ready for feature building."""
    if not len(new):
        return pd.DataFrame(columns=PERSON_COLUMNS + ["person_id"])
    # only the keys a new record carries can find anyone (a county's records leave the Latin-address keys empty)
    present = [k for k in _CANDIDATE_KEYS if all(new[c].notna().any() for c in k)]
    if not present:
        return pd.DataFrame(columns=PERSON_COLUMNS + ["person_id"])
    key_columns = sorted({c for k in _CANDIDATE_KEYS for c in k})
    keys = new[sorted({c for k in present for c in k})].drop_duplicates()
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_keys ("
                         + ", ".join(f"{c} VARCHAR" for c in key_columns) + ")"))
    conn.execute(sa.text("DELETE FROM _identity_keys"))
    records = keys.astype(object).where(keys.notna(), None).to_dict("records")
    if records:
        cols = list(keys.columns)
        conn.execute(sa.text(f"INSERT INTO _identity_keys ({', '.join(cols)}) VALUES "
                             f"({', '.join(':' + c for c in cols)})"), records)
    # one equi-join per key, unioned: a join on "key1 OR key2 OR …" cannot hash and compares every new record
    # with every linked one (a night's 100k against 900k is 90 billion comparisons)
    persons = _frame(conn, " UNION ".join(
        "SELECT r.person_id FROM identity_record r JOIN _identity_keys k ON "
        + " AND ".join(f"r.{c} = k.{c}" for c in key) for key in present))
    conn.execute(sa.text("DELETE FROM _identity_keys"))
    if not len(persons):
        return pd.DataFrame(columns=PERSON_COLUMNS + ["person_id"])
    return records_of_persons(conn, list(persons["person_id"]), exclude)


def records_of_persons(conn, person_ids: list[str], exclude: set[str] | None = None) -> pd.DataFrame:
    exclude = exclude or set()
    cols = ", ".join(f"p.{c}" for c in PERSON_COLUMNS)
    out = []
    for start in range(0, len(person_ids), 5000):
        chunk = person_ids[start:start + 5000]
        marks = ", ".join(f":p{i}" for i in range(len(chunk)))
        out.append(_frame(conn, f"SELECT {cols}, r.person_id FROM identity_record r JOIN person p "
                                f"ON p.source_id = r.source_id AND p.source_record_id = r.source_record_id "
                                f"WHERE r.person_id IN ({marks})", {f"p{i}": v for i, v in enumerate(chunk)}))
    frame = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=PERSON_COLUMNS + ["person_id"])
    if exclude and len(frame):
        uid = frame["source_id"] + "|" + frame["source_record_id"]
        frame = frame[~uid.isin(exclude)]
    return frame


def decisions(conn) -> tuple[set[frozenset], set[frozenset]]:
    rows = conn.execute(sa.text("SELECT left_source_id, left_source_record_id, right_source_id, "
                                "right_source_record_id, status FROM identity_review WHERE status IN "
                                "('accepted', 'rejected')")).fetchall()
    accepted, rejected = set(), set()
    for ls, lr, rs, rr, status in rows:
        pair = frozenset((features.unique_id(ls, lr), features.unique_id(rs, rr)))
        (accepted if status == "accepted" else rejected).add(pair)
    return accepted, rejected


def decided_record_ids(conn) -> set[str]:
    rows = conn.execute(sa.text("SELECT left_source_id, left_source_record_id, right_source_id, right_source_record_id "
                                "FROM identity_review WHERE status IN ('accepted', 'rejected')")).fetchall()
    return {features.unique_id(a, b) for a, b, _, _ in rows} | {features.unique_id(c, d) for _, _, c, d in rows}


def next_person_ids(conn):
    """A generator of fresh person ids: P + 10 digits, never reused (after the highest ever minted)."""
    # fetchall, not scalar(): DuckDB 2 keeps a half-read result open and refuses the next statement
    top = conn.execute(sa.text("SELECT max(person_id) FROM empi_person")).fetchall()[0][0]
    n = int(top[1:]) if top else 0
    while True:
        n += 1
        yield f"P{n:010d}"


def new_event_id() -> str:
    return uuid.uuid4().hex[:20]


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
