"""The linking engine's scoring: what it keeps of Splink's output, and the evidence read back from it."""

from __future__ import annotations

import pandas as pd

from countyhealth.identity import engine, features, model
from countyhealth.simulate.noise import NoiseRates
from countyhealth.simulate.person_records import person_records


def test_evidence_read_from_match_weights_names_the_level_splink_compared():
    """Scoring keeps each comparison's match weight, not the compared values; the evidence reviewers read must
    still name the level Splink's own comparison vector holds — checked against Splink with the values kept."""
    recs, _ = person_records(1500, seed=11, noise=NoiseRates.scaled(2.0))
    frame = features.build(pd.DataFrame([r.row for r in recs]))
    settings = model.load_settings()
    by_weight = engine.score(frame, None, settings, min_probability=0.01)
    assert "mw_name" in by_weight and "name_std_l" not in by_weight
    from splink import DuckDBAPI, Linker

    db = DuckDBAPI()
    kept = Linker(db.register(frame), {**settings, "retain_matching_columns": True}).inference.predict(
        threshold_match_probability=0.01).as_pandas_dataframe()
    both = by_weight.merge(kept, on=["unique_id_l", "unique_id_r"])
    assert len(both) == len(by_weight) == len(kept) > 100
    levels = engine.levels_by_weight(settings)
    seen_levels = set()
    for row in both.to_dict("records"):
        evidence = dict(part.split(":") for part in engine._evidence(row, levels).split())
        for col in engine._EVIDENCE_COLS:
            gamma = int(row[f"gamma_{col}"])
            assert str(gamma) in evidence[col].split("|"), (col, gamma, evidence[col])
            seen_levels.add((col, gamma))
    assert len(seen_levels) >= 15  # many levels exercised, not only exact matches and nulls
