"""The golden record: one row per person, each attribute from the most trusted source that has it (trust order
in config/identity.yaml), then the most recent; every attribute keeps the source it came from.

An ID number is taken only from records whose ID is valid and the person's own (not a guardian's); a phone
only when it normalises to a real number. ID numbers and phones stay ciphertext, with their keyed hashes.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from countyhealth.identity import store

ATTRIBUTES = ["name", "sex_code", "birth_date", "id_number", "phone", "health_record_number", "address"]
COLUMNS = ["person_id", "name", "name_source_id", "sex_code", "sex_code_source_id", "birth_date",
           "birth_date_source_id", "id_number", "id_number_hash", "id_number_source_id", "phone", "phone_hash",
           "phone_source_id", "health_record_number", "health_record_number_source_id", "address",
           "address_source_id", "address_township", "address_village", "records", "sources", "updated_at"]


def build(rows: pd.DataFrame, cfg) -> pd.DataFrame:
    """Person rows with what identity_record knows of each (:func:`store.records_of_persons`: ``person_id``,
    ``id_valid``, ``township``, ``village``) → golden rows (vectorised: one sort, one pick per attribute)."""
    if not len(rows):
        return pd.DataFrame(columns=COLUMNS)
    rows = rows.reset_index(drop=True).copy()
    rows["_rank"] = rows["source_id"].map(cfg.trust_rank)
    rows["_updated"] = pd.to_datetime(rows["source_updated_at"], errors="coerce")
    rows["_id_ok"] = rows["id_valid"].eq(True)
    rows["_phone_ok"] = rows["phone_hash"].notna()  # the hash of a phone that normalises to a number
    rows["address_township"], rows["address_village"] = rows["township"], rows["village"]
    rows = rows.sort_values(["person_id", "_rank", "_updated"], ascending=[True, True, False], na_position="last")
    counts = rows.groupby("person_id").agg(records=("source_id", "size"), sources=("source_id", "nunique"))
    out = counts.reset_index()
    extra = {"id_number": ["id_number_hash"], "phone": ["phone_hash"], "address": ["address_township", "address_village"]}
    ok = {"id_number": rows["_id_ok"], "phone": rows["_phone_ok"]}
    for attr in ATTRIBUTES:
        mask = rows[attr].notna() & ok.get(attr, True)
        first = rows[mask].drop_duplicates("person_id", keep="first")
        pick = first[["person_id", attr, "source_id", *extra.get(attr, [])]].rename(
            columns={"source_id": f"{attr}_source_id"})
        out = out.merge(pick, on="person_id", how="left")
    for c in COLUMNS:
        if c not in out:
            out[c] = None
    return out[COLUMNS]


def refresh(wh, conn, person_ids: list[str], cfg, now: dt.datetime) -> int:
    if not person_ids:
        return 0
    persons = store.persons_table(wh, conn, person_ids)
    frame = build(store.records_of_persons(conn, persons), cfg)
    frame["updated_at"] = now
    conn.execute(sa.text(f"DELETE FROM golden_person WHERE person_id IN (SELECT person_id FROM {persons})"))
    if len(frame):
        frame["birth_date"] = pd.to_datetime(frame["birth_date"], errors="coerce").dt.date
        frame["records"] = frame["records"].astype("int64")
        frame["sources"] = frame["sources"].astype("int64")
        table = pa.Table.from_pandas(frame.astype(object).where(frame.notna(), None), preserve_index=False,
                                     schema=_schema())
        wh.insert_arrow(conn, "golden_person", table)
    return len(frame)


def _schema() -> pa.Schema:
    types = {"birth_date": pa.date32(), "records": pa.int64(), "sources": pa.int64(), "updated_at": pa.timestamp("us")}
    return pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
