"""Quality floor on a simulated population, through the warehouse path the nightly run takes: F1 and
wrong merges against ground truth, and person ids that survive an incremental run unchanged."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from countyhealth import identity
from countyhealth.identity import evaluate
from countyhealth.simulate.noise import NoiseRates
from countyhealth.simulate.person_records import person_records
from countyhealth.warehouse import Warehouse

from helpers import load_people


def links(wh) -> dict[str, str]:
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source_id, source_record_id, person_id FROM person_link")).all()
    return {f"{s}|{r}": p for s, r, p in rows}


@pytest.mark.slow
def test_f1_and_wrong_merges_on_a_simulated_population_with_incremental_runs(duckdb_url):
    recs, _ = person_records(3000, seed=21, noise=NoiseRates.scaled(1.5))
    truth = {f"{r.row['source_id']}|{r.row['source_record_id']}": r.resident_key for r in recs}
    wh = Warehouse(duckdb_url)
    wh.migrate()
    cut = int(len(recs) * 0.9)
    load_people(wh, [r.row for r in recs[:cut]], batch="night1")
    first = identity.run(wh)
    assert first.records_considered == cut
    before = links(wh)
    load_people(wh, [r.row for r in recs[cut:]], batch="night2")
    second = identity.run(wh)
    assert second.records_considered == len(recs) - cut
    after = links(wh)
    # ids never renumbered: every record keeps its person unless a recorded merge redirected it
    with wh.engine.connect() as conn:
        merged = dict(conn.execute(sa.text("SELECT person_id, merged_into FROM empi_person WHERE status = 'merged'")).all())
    for rec, person in before.items():
        assert after[rec] == merged.get(person, person), rec
    score = evaluate.score(after, truth)
    assert score.f1 >= 0.995, score.line()
    assert score.wrongly_merged_residents <= 4, score.line()
    assert score.precision >= 0.998, score.line()
