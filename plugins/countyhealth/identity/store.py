"""The EMPI's tables in the warehouse: reading what to link and the candidates, writing links, events, the
review queue and golden records — all of one run in one transaction (DuckDB has one writer)."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from countyhealth import model, privacy
from countyhealth.identity import features
from countyhealth.identity import model as identity_model

# what identity_record keeps of each linked record: the link, and every feature the model, the blocking rules and
# the guards compare (so a night reads its candidates here and rebuilds nothing) — ID numbers only sealed or hashed,
# phones only hashed
FEATURE_COLUMNS = ["name_std", "name_pinyin", "name_fuzzy", "surname_pinyin", "given_pinyin", "name_words", "sex",
                   "birth_date", "birth_year", "id_hash", "id_sealed", "id_valid", "id_foreign", "phone_hash",
                   "health_record_number", "household_key", "township", "village", "house_number", "address_text",
                   "address_head", "address_tail"]
RECORD_COLUMNS = (["source_id", "source_record_id", "person_id", "batch_id"] + FEATURE_COLUMNS
                  + ["link_kind", "match_probability", "linked_at", "run_id"])
PERSON_COLUMNS = [f.name for f in model.fields("person")]

# the blocking rules' keys as stored: ID numbers and phones only as keyed hashes (one home: model.BLOCKING_RULES)
_STORED_AS = {"id18": "id_hash", "phone": "phone_hash"}
_CANDIDATE_KEYS = [tuple(sorted(_STORED_AS.get(c, c) for c in identity_model.rule_columns(rule)))
                   for rule in identity_model.BLOCKING_RULES]


def _frame(conn, sql: str, params: dict | None = None) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), params or {})
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _arrow_table(conn, sql: str, schema: pa.Schema) -> pa.Table:
    """A query without parameters as an Arrow table of ``schema``: on DuckDB handed over a column at a time (hundreds
    of thousands of rows through SQLAlchemy's row objects take seconds), elsewhere built from the rows."""
    if conn.dialect.name == "duckdb":
        return conn.connection.driver_connection.sql(sql).to_arrow_table().cast(schema)
    rows = conn.execute(sa.text(sql)).fetchall()
    return pa.table([pa.array(list(values), f.type) for f, values in
                     zip(schema, zip(*rows) if rows else [()] * len(schema))], schema=schema)


def _arrow_frame(conn, sql: str) -> pd.DataFrame:
    """A query without parameters as a frame of Python objects (None for missing); on DuckDB through Arrow, a
    column at a time — hundreds of thousands of rows through SQLAlchemy's row objects take seconds."""
    if conn.dialect.name != "duckdb":
        frame = _frame(conn, sql)
    else:
        frame = conn.connection.driver_connection.sql(sql).to_arrow_table().to_pandas()
    for column in frame.columns:  # strings come as objects with None already; numbers, bools, times do not
        if frame[column].dtype != object:
            values = frame[column].to_numpy(dtype=object)
            values[pd.isna(values)] = None
            frame[column] = values
    return frame


def stored_features(feats: pd.DataFrame) -> pd.DataFrame:
    """A feature frame (:func:`features.build`) → the feature columns identity_record keeps: the ID sealed."""
    out = feats[[c for c in FEATURE_COLUMNS if c != "id_sealed"]].copy()
    ids = feats["id18"].to_numpy(dtype=object)
    sealed = privacy.seal_many(pd.unique(ids[pd.notna(ids)]))
    out["id_sealed"] = features.per_distinct(ids, sealed.get)
    return out[FEATURE_COLUMNS]


# identity_record's columns as a candidate is read: text, but for two flags
CANDIDATE_SCHEMA = pa.schema([(c, pa.bool_() if c in ("id_valid", "id_foreign") else pa.string())
                            for c in ["source_id", "source_record_id", "person_id"] + FEATURE_COLUMNS])


def features_of(records: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """identity_record rows → the feature frame the engine compares (the inverse of :func:`stored_features`, less
    what no comparison reads); a ``person_id`` column, when present, is kept. The features stay in Arrow
    (``pd.ArrowDtype`` columns: a night's few hundred thousand candidates are scored by DuckDB as they came from
    the warehouse — as Python strings they took seconds to make and DuckDB three times as long to scan); the record
    and person ids are Python objects, for the engine's dictionaries. :func:`features.as_objects` converts."""
    with_person = "person_id" in (records.column_names if isinstance(records, pa.Table) else records.columns)
    if isinstance(records, pd.DataFrame):
        names = [f.name for f in CANDIDATE_SCHEMA if f.name in records.columns]
        records = pa.Table.from_pandas(records[names], schema=pa.schema([CANDIDATE_SCHEMA.field(c) for c in names]),
                                       preserve_index=False)  # (NaN and None both become nulls)
    n = records.num_rows
    columns = {c: records[c] for c in records.column_names if c in features.COLUMNS}
    columns["unique_id"] = pc.binary_join_element_wise(records["source_id"], records["source_record_id"], "|")
    sealed = records["id_sealed"]
    distinct = pc.unique(sealed).drop_null()
    opened = privacy.unseal_many(distinct.to_pylist())
    columns["id18"] = pc.take(pa.array([opened[t] for t in distinct.to_pylist()], pa.string()),
                              pc.index_in(sealed, value_set=distinct))
    columns["phone"] = records["phone_hash"]  # phones are compared by their keyed hash (features.build)
    absent = pa.nulls(n, pa.string())  # not compared: the facility, the name's parts as written, the update time
    table = pa.table({c: columns.get(c, absent) for c in features.COLUMNS})
    out = table.to_pandas(types_mapper=pd.ArrowDtype)
    ids = ["unique_id"] + (["person_id"] if with_person else [])
    for c in ids:
        out[c] = (columns if c == "unique_id" else records)[c].to_numpy(zero_copy_only=False).astype(object)
    return out


def to_link(conn) -> pd.DataFrame:
    """Person rows never linked, or changed since their link (their batch differs from the one linked)."""
    cols = ", ".join(f"p.{c}" for c in PERSON_COLUMNS)
    return _arrow_frame(conn, f"SELECT {cols}, r.person_id AS previous_person_id FROM person p "
                              "LEFT JOIN identity_record r ON r.source_id = p.source_id "
                              "AND r.source_record_id = p.source_record_id "
                              "WHERE r.person_id IS NULL OR r.batch_id IS DISTINCT FROM p.batch_id")


def candidates(wh, conn, new: pd.DataFrame, exclude: set[str], previous: set[str] = frozenset()) -> pd.DataFrame:
    """The features of linked records sharing a blocking key with a new record, plus those of every record of the
    persons they belong to (the guards judge whole persons) and of the ``previous`` persons of changed records
    (whether anything still holds them decides whether a changed record keeps its id), with their ``person_id`` —
    read from identity_record, nothing rebuilt or decrypted."""
    empty = features_of(CANDIDATE_SCHEMA.empty_table())
    carried = set(identity_model.rules_carried(identity_model.BLOCKING_RULES, new))
    present = [key for rule, key in zip(identity_model.BLOCKING_RULES, _CANDIDATE_KEYS) if rule in carried]
    if not len(new) or not (present or previous) or not conn.execute(
            sa.text("SELECT 1 FROM identity_record LIMIT 1")).fetchall():
        return empty  # (the first run: nothing linked yet to select from)
    key_columns = sorted({c for k in _CANDIDATE_KEYS for c in k})
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_keys ("
                         + ", ".join(f"{c} VARCHAR" for c in key_columns) + ")"))
    conn.execute(sa.text("DELETE FROM _identity_keys"))
    keys = new[sorted({c for k in present for c in k})].drop_duplicates()
    if present:
        wh.insert_arrow(conn, "_identity_keys", pa.Table.from_pandas(
            keys.astype(object).where(keys.notna(), None), preserve_index=False,
            schema=pa.schema([(c, pa.string()) for c in keys])))
    # one equi-join per key, unioned: a join on "key1 OR key2 OR …" cannot hash and compares every new record
    # with every linked one (a night's 100k against 900k is 90 billion comparisons)
    hit = ["SELECT r.person_id FROM identity_record r JOIN _identity_keys k ON "
           + " AND ".join(f"r.{c} = k.{c}" for c in key) for key in present]
    if previous:
        hit.append(f"SELECT person_id FROM {persons_table(wh, conn, sorted(previous))}")
    cols = ", ".join(f"r.{c}" for c in CANDIDATE_SCHEMA.names)
    records = _arrow_table(conn, f"SELECT {cols} FROM identity_record r WHERE r.person_id IN ({' UNION '.join(hit)})",
                           CANDIDATE_SCHEMA)
    conn.execute(sa.text("DELETE FROM _identity_keys"))
    if not records.num_rows:
        return empty
    found = features_of(records)
    if exclude:  # the night's changed records are linked already: they are placed, not candidates
        gone = found["unique_id"].isin(exclude).to_numpy()
        if gone.any():  # (most nights none: no copy)
            found = found[~gone].reset_index(drop=True)
    return found


def persons_table(wh, conn, person_ids) -> str:
    """These person ids in a temporary table (its name returned), for joins: a list of parameters in an ``IN``
    is parsed and planned per chunk, and a night touches a hundred thousand persons."""
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_persons (person_id VARCHAR)"))
    conn.execute(sa.text("DELETE FROM _identity_persons"))
    wh.insert_arrow(conn, "_identity_persons", pa.table({"person_id": pa.array(list(person_ids), pa.string())}))
    return "_identity_persons"


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
