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
