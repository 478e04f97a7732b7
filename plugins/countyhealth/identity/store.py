"""The EMPI's tables in the warehouse: reading what to link and the candidates, writing links, events, the
review queue and golden records — all of one run in one transaction (DuckDB has one writer)."""

from __future__ import annotations

import datetime as dt
import itertools
import os

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


def _arrow_table(conn, sql: str, schema: pa.Schema) -> pa.Table:
    """A query without parameters as an Arrow table of ``schema``: on DuckDB handed over a column at a time (hundreds
    of thousands of rows through SQLAlchemy's row objects take seconds), elsewhere built from the rows."""
    if conn.dialect.name == "duckdb":
        return conn.connection.driver_connection.sql(sql).to_arrow_table().cast(schema)
    rows = conn.execute(sa.text(sql)).fetchall()
    return pa.table([pa.array(list(values), f.type) for f, values in
                     zip(schema, zip(*rows) if rows else [()] * len(schema))], schema=schema)


def _arrow_batches(conn, sql: str, schema: pa.Schema):
    """:func:`_arrow_table` a batch at a time, as the warehouse produces them: on DuckDB the query runs on while the
    caller works on the batches it has (its threads produce, the GIL released while Python waits); elsewhere one
    batch."""
    if conn.dialect.name != "duckdb":
        yield from _arrow_table(conn, sql, schema).to_batches()
        return
    for batch in conn.connection.driver_connection.sql(sql).to_arrow_reader(16_384):
        yield batch.cast(schema)


def objects_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a frame of Python objects (None for missing), a column at a time — what
    :func:`features.build` reads."""
    frame = table.to_pandas()
    for column in frame.columns:  # strings come as objects with None already; numbers, bools, times do not
        if frame[column].dtype != object:
            values = frame[column].to_numpy(dtype=object)
            values[pd.isna(values)] = None
            frame[column] = values
    return frame


def fill_temp(wh, conn, table: str, data: pa.Table) -> None:
    """Rows of this run into one of its temporary tables — on PostgreSQL with statistics gathered, which it never
    gathers for temporary tables itself: without them a night's joins were planned for a few rows and sorted on
    disk."""
    wh.insert_arrow(conn, table, data)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"ANALYZE {table}"))


def stored_features(feats: pd.DataFrame) -> pd.DataFrame:
    """A feature frame (:func:`features.build`) → the feature columns identity_record keeps: the ID sealed."""
    out = feats[FEATURE_COLUMNS].copy()
    ids = feats["id18"].to_numpy(dtype=object)
    token = out["id_sealed"].to_numpy(dtype=object)
    todo = pd.notna(ids) & pd.isna(token)  # (a warehouse row's valid ID comes sealed already: features.build)
    sealed = privacy.seal_many(pd.unique(ids[todo]))
    token[todo] = features.per_distinct(ids[todo], sealed.get)
    out["id_sealed"] = token
    return out


# identity_record's columns as a candidate is read: text, but for two flags
CANDIDATE_SCHEMA = pa.schema([(c, pa.bool_() if c in ("id_valid", "id_foreign") else pa.string())
                            for c in ["source_id", "source_record_id", "person_id"] + FEATURE_COLUMNS])


def features_of(records: pa.Table | pd.DataFrame, opened: dict[str, str] | None = None) -> pd.DataFrame:
    """identity_record rows → the feature frame the engine compares (the inverse of :func:`stored_features`, less
    what no comparison reads); a ``person_id`` column, when present, is kept. The features stay in Arrow
    (``pd.ArrowDtype`` columns: a night's few hundred thousand candidates are scored by DuckDB as they came from
    the warehouse — as Python strings they took seconds to make and DuckDB three times as long to scan); the record
    and person ids are Python objects, for the engine's dictionaries. :func:`features.as_objects` converts.
    ``opened``: sealed ID → ID for the records' sealed IDs, when unsealed already (as :func:`candidates` reads)."""
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
    if opened is None:
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


# a repeat's features that are its matching records' — the name's pinyin and the sealed ID are functions of what
# they share (min over them: features stored by an earlier version of the standardisation may differ slightly)
_REPEAT_SHARES = ["name_pinyin", "name_fuzzy", "surname_pinyin", "given_pinyin", "name_words", "birth_year",
                  "id_sealed"]


# what a linked record holding a run's record's ID is compared on (:func:`match_ids`), and what a repeat takes of it
_MATCHED = ["person_id", "name_std", "birth_date", "sex", "phone_hash", *_REPEAT_SHARES]


def match_ids(wh, conn, pending: pa.Table, *, changed: set[str], decided: set[str]) -> None:
    """The first half of finding a run's repeats (:func:`find_repeats`): the linked records holding the valid resident
    ID of each of the run's person rows (``pending``, as :func:`to_link` reads them), by its keyed hash, with what a
    repeat is compared on — kept in a temporary table. It needs nothing standardised, so it runs while Python
    standardises the rows (:func:`features.repeat_keys`): this join is most of the finding. Records ``changed`` since
    their link, or ``decided`` by a reviewer, are placed by the engine, not as repeats, as is a record handed over
    twice; a changed record's stored features (what it said before) make no other record a repeat."""
    uids = pc.binary_join_element_wise(pending["source_id"], pending["source_record_id"], "|").to_pandas()
    # (a record handed over twice is placed by the engine, which takes its last features)
    anew = pa.array((uids.isin(changed | decided) | uids.duplicated(keep=False)).to_numpy())
    ids = pa.table({c: pending[c] for c in ("source_id", "source_record_id")}
                   | {"id_hash": pending["id_number_hash"]}).filter(
        pc.and_(pc.is_valid(pending["id_number_hash"]), pc.invert(anew)))
    stale = [uid.split("|", 1) for uid in changed]
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_ids (source_id VARCHAR, "
                         "source_record_id VARCHAR, id_hash VARCHAR)"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_stale (source_id VARCHAR, "
                         "source_record_id VARCHAR)"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_id_match (source_id VARCHAR, "
                         "source_record_id VARCHAR, " + ", ".join(f"{c} VARCHAR" for c in _MATCHED) + ")"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_night ("
                         + ", ".join(f"{c} VARCHAR" for c in features.REPEAT_KEYS) + ")"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_repeat (source_id VARCHAR, "
                         "source_record_id VARCHAR, person_id VARCHAR, hrn VARCHAR, "
                         + ", ".join(f"{c} VARCHAR" for c in _REPEAT_SHARES) + ")"))
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_address ("
                         + ", ".join(f"{c} VARCHAR" for c in features.ADDRESS_KEYS) + ")"))
    _clear_repeat_tables(conn)
    if not ids.num_rows:
        return
    fill_temp(wh, conn, "_identity_ids", ids)
    not_stale = "TRUE"
    if stale:  # (most nights none: the anti-join costs a pass over identity_record even when empty)
        fill_temp(wh, conn, "_identity_stale", pa.table({"source_id": [s for s, _ in stale],
                                                           "source_record_id": [r for _, r in stale]}))
        not_stale = ("NOT EXISTS (SELECT 1 FROM _identity_stale s WHERE s.source_id = r.source_id "
                     "AND s.source_record_id = r.source_record_id)")
    conn.execute(sa.text(f"""
        INSERT INTO _identity_id_match (source_id, source_record_id, {', '.join(_MATCHED)})
        SELECT n.source_id, n.source_record_id, {', '.join(f'r.{c}' for c in _MATCHED)}
        FROM _identity_ids n JOIN identity_record r ON r.id_hash = n.id_hash AND r.id_valid
        WHERE {not_stale}"""))
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ANALYZE _identity_id_match"))


def find_repeats(wh, conn, night: pa.Table) -> dict[str, str]:
    """The records of this run that only repeat what one linked person's records say, with that person. A repeat has
    the same valid resident ID, name, birth date and sex as a record of that person, the ID held by no other person,
    its phone none or one the person's records with that ID have, its health-record number none or no other
    person's. It is linked deterministically (同一身份证号 with the same name is a deterministic link anyway), here in
    the warehouse, before anything is scored: the model could only place it with that person, and its phone and
    health-record number say nothing for or against anyone else. Most of a night's records are repeats — a resident
    already linked, registered at another member or registered again — so the rest (a third on the simulated county)
    are all that is built, selected for and scored; the repeats are candidates for them like any linked record
    (:func:`write_repeats` writes them first), and a merge this run takes them along.

    ``night``: :func:`features.repeat_keys` of the run's person rows, whose IDs :func:`match_ids` has matched. What is
    found stays in temporary tables for :func:`write_repeats`."""
    if not night.num_rows:
        _clear_repeat_tables(conn)
        return {}
    fill_temp(wh, conn, "_identity_night", night)
    same = "r.name_std = n.name_std AND r.birth_date = n.birth_date AND r.sex = n.sex"
    # the linked records holding each row's ID (match_ids) decide all but the health-record number
    conn.execute(sa.text(f"""
        INSERT INTO _identity_repeat (source_id, source_record_id, person_id, hrn, {', '.join(_REPEAT_SHARES)})
        WITH one AS (
            SELECT n.source_id, n.source_record_id, min(r.person_id) AS person_id, min(n.health_record_number) AS hrn,
                   {', '.join(f'min(CASE WHEN {same} THEN r.{c} END) AS {c}' for c in _REPEAT_SHARES)}
            FROM _identity_night n JOIN _identity_id_match r ON r.source_id = n.source_id
                                                           AND r.source_record_id = n.source_record_id
            GROUP BY n.source_id, n.source_record_id
            HAVING count(DISTINCT r.person_id) = 1
               AND max(CASE WHEN {same} THEN 1 ELSE 0 END) = 1
               AND max(CASE WHEN n.phone_hash IS NULL OR r.phone_hash = n.phone_hash THEN 1 ELSE 0 END) = 1)
        SELECT o.source_id, o.source_record_id, o.person_id, o.hrn, {', '.join(f'o.{c}' for c in _REPEAT_SHARES)}
        FROM one o
        WHERE o.hrn IS NULL OR NOT EXISTS (SELECT 1 FROM identity_record h
                                           WHERE h.health_record_number = o.hrn AND h.person_id <> o.person_id)
    """))
    found = _arrow_table(conn, "SELECT source_id, source_record_id, person_id FROM _identity_repeat",
                         pa.schema([(c, pa.string()) for c in ("source_id", "source_record_id", "person_id")]))
    if not found.num_rows:
        _clear_repeat_tables(conn)  # (nothing for write_repeats)
    uids = pc.binary_join_element_wise(found["source_id"], found["source_record_id"], "|").to_pylist()
    return dict(zip(uids, found["person_id"].to_pylist()))


def _clear_repeat_tables(conn) -> None:
    # (a pooled PostgreSQL session keeps its temporary tables from one run to the next)
    for table in ("_identity_ids", "_identity_stale", "_identity_id_match", "_identity_night", "_identity_repeat",
                  "_identity_address"):
        conn.execute(sa.text(f"DELETE FROM {table}"))


def write_repeats(wh, conn, addresses: pa.Table, *, now, run_id: str) -> None:
    """The identity_record rows of the repeats :func:`find_repeats` found (person_link is a view of them): the
    features they share with their person's records, and their own phone hash, health-record number and address
    columns (``addresses``: :func:`features.address_keys` of the run's rows, the repeats' among them)."""
    fill_temp(wh, conn, "_identity_address", addresses)  # (made, and emptied, by find_repeats)
    own = ["batch_id", "name_std", "sex", "birth_date", "id_hash", "phone_hash", "health_record_number"]
    columns = {"source_id": "o.source_id", "source_record_id": "o.source_record_id", "person_id": "o.person_id",
               **{c: f"n.{c}" for c in own}, **{c: f"a.{c}" for c in features.ADDRESS_KEYS[2:]},
               **{c: f"o.{c}" for c in _REPEAT_SHARES}, "id_valid": "TRUE", "id_foreign": "FALSE",
               "link_kind": "'deterministic'", "match_probability": "1.0", "linked_at": ":now", "run_id": ":run"}
    assert set(columns) == set(RECORD_COLUMNS)  # (a column identity_record gains is written here too)
    conn.execute(sa.text(f"INSERT INTO identity_record ({', '.join(columns)}) SELECT {', '.join(columns.values())} "
                         "FROM _identity_repeat o JOIN _identity_night n ON n.source_id = o.source_id "
                         "AND n.source_record_id = o.source_record_id "
                         "JOIN _identity_address a ON a.source_id = o.source_id "
                         "AND a.source_record_id = o.source_record_id"), {"now": now, "run": run_id})
    _clear_repeat_tables(conn)


# what a run reads of a person row: what features.build compares, and the batch. Not the phone's ciphertext where
# its hash is there (the hash is what is compared: a phone without one did not normalise to a number when loaded),
# nor the facility or update time (no comparison reads them; golden records read them in SQL) — a night's hundred
# thousand rows become Python objects, a column at a time.
_READ = ["source_id", "source_record_id", "batch_id", "name", "sex_code", "birth_date", "id_number", "id_number_hash",
         "phone_hash", "health_record_number", "address", "address_township", "address_village", "address_house_number"]


_PERSON_SCHEMA = model.schema("person")
_TO_LINK_SCHEMA = pa.schema([pa.field(c, _PERSON_SCHEMA.field(c).type) for c in _READ if c in PERSON_COLUMNS]
                            + [pa.field("phone", pa.string()), pa.field("previous_person_id", pa.string())])


def to_link(conn) -> pa.Table:
    """Person rows never linked, or changed since their link (their batch differs from the one linked), as Arrow:
    most become repeats (:func:`find_repeats`) and are never Python objects."""
    cols = ", ".join(f"p.{c}" for c in _READ if c in PERSON_COLUMNS)
    sql = (f"SELECT {cols}, CASE WHEN p.phone_hash IS NULL THEN p.phone END AS phone, "
           "r.person_id AS previous_person_id FROM person p "
           "LEFT JOIN identity_record r ON r.source_id = p.source_id AND r.source_record_id = p.source_record_id "
           "WHERE (r.person_id IS NULL OR r.batch_id IS DISTINCT FROM p.batch_id)")
    if conn.dialect.name == "duckdb":
        # DuckDB keeps no index to join a million rows by: only batches not linked as they stand are joined — per
        # batch, the rows and a sum of their keys' hashes in person and identity_record differ (a night: the
        # night's batches; a changed row makes both its old batch and its new one differ)
        sql = ("WITH p_batch AS (SELECT batch_id, count(*) AS n, sum(hash(source_id, source_record_id)::HUGEINT) AS h "
               "FROM person GROUP BY batch_id), "
               "r_batch AS (SELECT batch_id, count(*) AS n, sum(hash(source_id, source_record_id)::HUGEINT) AS h "
               "FROM identity_record GROUP BY batch_id), "
               "open_batch AS (SELECT p_batch.batch_id FROM p_batch LEFT JOIN r_batch "
               "ON r_batch.batch_id IS NOT DISTINCT FROM p_batch.batch_id "
               "WHERE r_batch.n IS NULL OR r_batch.n <> p_batch.n OR r_batch.h <> p_batch.h) "
               + sql + " AND p.batch_id IN (SELECT batch_id FROM open_batch)")
    return _arrow_table(conn, sql, _TO_LINK_SCHEMA)


def candidates(wh, conn, new: pd.DataFrame, exclude: set[str], previous: set[str] = frozenset()) -> pd.DataFrame:
    """The features of linked records sharing a blocking key with a new record, plus those of every record of the
    persons they belong to (the guards judge whole persons) and of the ``previous`` persons of changed records
    (whether anything still holds them decides whether a changed record keeps its id), with their ``person_id`` —
    read from identity_record, nothing rebuilt or decrypted."""
    empty = features_of(CANDIDATE_SCHEMA.empty_table())
    carried = set(identity_model.rules_carried(identity_model.BLOCKING_RULES, new))
    present = [key for rule, key in zip(identity_model.BLOCKING_RULES, _CANDIDATE_KEYS) if rule in carried]
    if not len(new) or not (present or previous) or not anything_linked(conn):
        return empty  # (the first run: nothing linked yet to select from)
    key_columns = sorted({c for k in _CANDIDATE_KEYS for c in k})
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_keys ("
                         + ", ".join(f"{c} VARCHAR" for c in key_columns) + ")"))
    conn.execute(sa.text("DELETE FROM _identity_keys"))
    keys = new[sorted({c for k in present for c in k})].drop_duplicates()
    if present:
        fill_temp(wh, conn, "_identity_keys", pa.Table.from_pandas(
            keys.astype(object).where(keys.notna(), None), preserve_index=False,
            schema=pa.schema([(c, pa.string()) for c in keys])))
    # one equi-join per key, unioned: a join on "key1 OR key2 OR …" cannot hash and compares every new record
    # with every linked one (a night's 100k against 900k is 90 billion comparisons)
    hit = ["SELECT r.person_id FROM identity_record r JOIN _identity_keys k ON "
           + " AND ".join(f"r.{c} = k.{c}" for c in key) for key in present]
    if previous:
        hit.append(f"SELECT person_id FROM {persons_table(wh, conn, sorted(previous))}")
    cols = ", ".join(f"r.{c}" for c in CANDIDATE_SCHEMA.names)
    # their IDs unsealed a batch at a time as the warehouse hands them over (each distinct one once), while it reads
    # on: a night's hundred thousand took as long as the read
    batches, opened = [], {}
    for batch in _arrow_batches(conn, f"SELECT {cols} FROM identity_record r WHERE r.person_id IN "
                                      f"({' UNION '.join(hit)})", CANDIDATE_SCHEMA):
        batches.append(batch)
        sealed = pc.unique(batch.column("id_sealed")).drop_null().to_pylist()
        opened.update(privacy.unseal_many([t for t in sealed if t not in opened]))
    records = pa.Table.from_batches(batches, schema=CANDIDATE_SCHEMA)
    conn.execute(sa.text("DELETE FROM _identity_keys"))
    if not records.num_rows:
        return empty
    found = features_of(records, opened)
    if exclude:  # the night's changed records are linked already: they are placed, not candidates
        gone = found["unique_id"].isin(exclude).to_numpy()
        if gone.any():  # (most nights none: no copy)
            found = found[~gone].reset_index(drop=True)
    return found


def anything_linked(conn) -> bool:
    return bool(conn.execute(sa.text("SELECT 1 FROM identity_record LIMIT 1")).fetchall())


def persons_table(wh, conn, person_ids) -> str:
    """These person ids in a temporary table (its name returned), for joins: a list of parameters in an ``IN``
    is parsed and planned per chunk, and a night touches a hundred thousand persons."""
    conn.execute(sa.text("CREATE TEMPORARY TABLE IF NOT EXISTS _identity_persons (person_id VARCHAR)"))
    conn.execute(sa.text("DELETE FROM _identity_persons"))
    fill_temp(wh, conn, "_identity_persons", pa.table({"person_id": pa.array(list(person_ids), pa.string())}))
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


def next_person_ids(conn):
    """Fresh person ids, an iterator: P + 10 digits, never reused (after the highest ever minted). The highest is
    read here, not when the first id is asked for (the connection may be busy elsewhere by then)."""
    # fetchall, not scalar(): DuckDB 2 keeps a half-read result open and refuses the next statement
    top = conn.execute(sa.text("SELECT max(person_id) FROM empi_person")).fetchall()[0][0]
    return (f"P{n:010d}" for n in itertools.count((int(top[1:]) if top else 0) + 1))


def new_event_id() -> str:
    return new_event_ids(1)[0]


def new_event_ids(n: int) -> list[str]:
    """``n`` event ids (80 random bits in hex each) from one read of the system's random source: a night's fifteen
    thousand new persons took a tenth of a second one uuid at a time."""
    text = os.urandom(10 * n).hex()
    return [text[i:i + 20] for i in range(0, 20 * n, 20)]


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
