"""What identity_record keeps of a record is everything the engine compares: a night reads its candidates from there."""

from __future__ import annotations

import json

import pandas as pd

from countyhealth.identity import features, guards, model, store
from countyhealth.simulate.person_records import person_records


def test_stored_features_give_back_every_compared_feature():
    recs, _ = person_records(300, seed=5)
    built = features.build(pd.DataFrame([r.row for r in recs]))
    stored = store.stored_features(built)
    assert list(stored.columns) == store.FEATURE_COLUMNS
    assert stored["id_sealed"].notna().sum() == built["id18"].notna().sum() > 0
    assert not stored["id_sealed"].isin(built["id18"].dropna()).any()  # sealed, never the number itself
    back = features.as_objects(store.features_of(pd.concat([built[["source_id", "source_record_id"]], stored], axis=1)))
    assert list(back.columns) == features.COLUMNS
    not_kept = [c for c in features.COLUMNS if back[c].isna().all() and built[c].notna().any()]
    assert not_kept  # the facility, the name as written, ... are not kept
    # (a file's rows come with no sealed ID: identity_record holds it sealed)
    kept = [c for c in features.COLUMNS if c not in not_kept and c != "id_sealed"]
    pd.testing.assert_frame_equal(back[kept], built[kept])
    assert back["id_sealed"].tolist() == stored["id_sealed"].tolist()
    # and nothing the engine compares is among what is not kept: the model's levels, the blocking rules, the guards
    compared = json.dumps(model.load_settings()) + " ".join(model.BLOCKING_RULES)
    for c in not_kept:
        assert f"{c}_l" not in compared and f"l.{c} " not in compared + " " and c not in guards.COLUMNS, c


def test_a_nights_candidates_are_read_a_batch_at_a_time_and_each_id_unsealed_once(warehouse_url, monkeypatch):
    """Candidates come from identity_record with their IDs sealed; store.candidates unseals them batch by batch as
    the warehouse hands them over (on DuckDB, while it reads on), each distinct ID once however many records and
    batches carry it."""
    import datetime as dt

    import pyarrow as pa

    from countyhealth import privacy
    from countyhealth.warehouse import Warehouse

    wh = Warehouse(warehouse_url)
    wh.migrate()
    ids = [f"3501251980{i:08d}" for i in range(20_000)]
    sealed, hashes = privacy.seal_many(ids), privacy.keyed_hashes(ids, "id_number")
    n = 40_000  # (two records an ID, 20,000 apart: in different batches on DuckDB, 16,384 rows each)
    with wh.begin() as conn:
        wh.insert_arrow(conn, "identity_record", pa.table({
            "source_id": ["his_h1"] * n, "source_record_id": [f"R{i}" for i in range(n)],
            "person_id": [f"P{i % 20_000:010d}" for i in range(n)],
            "id_hash": [hashes[ids[i % 20_000]] for i in range(n)],
            "id_sealed": [sealed[ids[i % 20_000]] for i in range(n)],
            "id_valid": [True] * n, "link_kind": ["new"] * n,
            "linked_at": pa.array([dt.datetime(2026, 1, 1)] * n, pa.timestamp("us"))}))
    calls = []
    unseal = privacy.unseal_many
    monkeypatch.setattr(privacy, "unseal_many", lambda tokens: calls.append(list(tokens)) or unseal(tokens))
    new = pd.DataFrame({"unique_id": [f"contracts|Q{i}" for i in range(len(ids))], "id18": ids,
                        "id_hash": [hashes[i] for i in ids]})
    with wh.begin() as conn:
        found = store.candidates(wh, conn, new, exclude=set())
    opened = [t for call in calls for t in call]
    assert sorted(opened) == sorted(sealed.values())  # every one, once
    if wh.dialect == "duckdb":  # (handed over as the query runs)
        assert len(calls) > 1
    assert dict(zip(found["unique_id"], found["id18"])) == {f"his_h1|R{i}": ids[i % 20_000] for i in range(n)}
    assert set(found["person_id"]) == {f"P{i:010d}" for i in range(len(ids))}
