"""Loading person rows into a warehouse the way the pipeline does (IDs and phones encrypted, hashes filled)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from countyhealth import model, privacy

_BATCH = 0


def load_people(wh, rows: list[dict], *, batch: str | None = None, updated: dt.datetime | None = None):
    global _BATCH
    _BATCH += 1
    batch = batch or f"b{_BATCH}"
    full = [{"facility_code": "W350125101", "batch_id": batch,
             "source_updated_at": updated or dt.datetime(2026, 3, 1, 8) + dt.timedelta(minutes=_BATCH), **r}
            for r in rows]
    table = model.conform("person", pa.Table.from_pylist(full, schema=model.schema("person")))
    wh.load("person", privacy.protect_person(table))


def person_of(wh, source_id: str, record_id: str) -> str:
    import sqlalchemy as sa

    with wh.engine.connect() as conn:
        return conn.execute(sa.text("SELECT person_id FROM person_link WHERE source_id = :s AND source_record_id = :r"),
                            {"s": source_id, "r": record_id}).scalar()
