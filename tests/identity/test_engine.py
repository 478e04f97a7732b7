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


def test_a_scorer_made_ahead_scores_as_one_made_for_the_call():
    """The nightly run makes its Splink model ready before the records are at hand (engine.Scorer: a Linker on a
    frame without rows, each call blocked by the rules its records carry): the pairs and their weights are those a
    Linker made on the records gives, call after call on one scorer."""
    recs, _ = person_records(1500, seed=5, noise=NoiseRates.scaled(2.0))
    frame = features.build(pd.DataFrame([r.row for r in recs]))
    new, existing = frame.iloc[:500].reset_index(drop=True), frame.iloc[500:].reset_index(drop=True)
    settings = model.load_settings()
    scorer = engine.Scorer(settings)
    key = ["unique_id_l", "unique_id_r"]
    for _ in range(2):
        ahead = engine.score(new, existing, settings, min_probability=0.01, scorer=scorer)
        made = engine.score(new, existing, settings, min_probability=0.01)
        assert len(ahead) > 100
        pd.testing.assert_frame_equal(ahead.sort_values(key).reset_index(drop=True),
                                      made.sort_values(key).reset_index(drop=True))


def _link_both_ways(monkeypatch, new, existing, existing_person, **kw):
    """The engine as it runs (components checked column-wise), and with every joining component clustered edge
    by edge (the reference: strongest edge first, each join checked pair by pair)."""
    import itertools

    settings, th = model.load_settings(), engine.Thresholds(0.999, 0.5)
    out = []
    for cap in (engine._SMALL_COMPONENT, 0):
        monkeypatch.setattr(engine, "_SMALL_COMPONENT", cap)
        seq = itertools.count(1)
        out.append(engine.link(new, existing, existing_person, settings=settings, thresholds=th,
                               mint=lambda: f"N{next(seq):06d}", **kw))
    return out


def test_component_clustering_gives_the_persons_edge_by_edge_clustering_gives(monkeypatch):
    """Heavy noise (twins, guardian IDs, shared phones) so guards refuse joins inside components; then a night's
    records against linked persons, with a reviewer's rejection and acceptance."""
    recs, _ = person_records(2500, seed=5, noise=NoiseRates.scaled(3.0))
    frame = features.build(pd.DataFrame([r.row for r in recs]))
    fast, slow = _link_both_ways(monkeypatch, frame, None, {})
    assert fast.person_of == slow.person_of and fast.new_persons == slow.new_persons
    assert fast.link_kind == slow.link_kind
    # a component without conflicts refuses nothing edge by edge either: the refusals are the same
    assert sorted((e.left, e.right, why) for e, why in fast.blocked) == \
        sorted((e.left, e.right, why) for e, why in slow.blocked) and len(slow.blocked) >= 5
    assert sorted((e.left, e.right) for e in fast.review) == sorted((e.left, e.right) for e in slow.review)

    old, new = frame.iloc[:-600], frame.iloc[-600:]
    seq = iter(range(10**6))
    base = engine.link(old, None, {}, settings=model.load_settings(), thresholds=engine.Thresholds(0.999, 0.5),
                       mint=lambda: f"P{next(seq):06d}")
    band = [e for e in base.review][:4]
    rejected = {frozenset((e.left, e.right)) for e in band[:2]}
    accepted = {frozenset((e.left, e.right)) for e in band[2:]}
    # a changed record: one of the old ones arrives again with new features
    changed = old.iloc[[5]]
    night = pd.concat([new, changed], ignore_index=True)
    fast, slow = _link_both_ways(monkeypatch, night, old, base.person_of,
                                 previous_person={changed["unique_id"].iloc[0]: base.person_of[changed["unique_id"].iloc[0]]},
                                 accepted=accepted, rejected=rejected)
    assert fast.person_of == slow.person_of and fast.new_persons == slow.new_persons
    assert sorted(fast.merges) == sorted(slow.merges) and fast.moves == slow.moves
    assert fast.link_kind == slow.link_kind
    assert sorted((e.left, e.right, why) for e, why in fast.blocked) == \
        sorted((e.left, e.right, why) for e, why in slow.blocked)
    assert any(p in base.person_of.values() for p in fast.person_of.values())  # joined existing persons


def test_rules_on_keys_no_record_carries_are_not_run_and_none_left_scores_nothing(monkeypatch):
    """A county's records leave the Latin-address keys empty: those rules are skipped. Records that carry no
    blocking key at all are not compared with every other record (Splink with no rule would)."""
    from splink.internals.linker_components.inference import LinkerInference

    rows = pd.DataFrame({"source_id": "s", "source_record_id": [str(i) for i in range(300)],
                         "name": None, "sex_code": None, "birth_date": None, "id_number": None, "phone": None,
                         "address": None})
    settings = model.load_settings()
    assert len(engine.score(features.build(rows), None, settings, min_probability=0.0)) == 0

    seen = []
    predict_within = LinkerInference.predict_within

    def recording(self, records, **kwargs):  # the real prediction, noting which rules it was given
        seen.extend(r["blocking_rule"] for r in kwargs["blocking_rules_to_generate_predictions"])
        return predict_within(self, records, **kwargs)

    monkeypatch.setattr(LinkerInference, "predict_within", recording)
    chinese = features.build(pd.DataFrame({"source_id": "s", "source_record_id": ["a", "b"], "name": ["陈伟", "陈伟"],
                                           "birth_date": ["1980-01-01", "1980-01-01"],
                                           "address": ["樟城镇东门村12号", "樟城镇东门村12号"]}))
    assert len(engine.score(chinese, None, settings, min_probability=0.0)) == 1
    assert seen and not any("address_head" in r or "address_tail" in r for r in seen)
    assert any("household_key" in r for r in seen)


def test_a_night_clusters_only_the_linked_records_its_edges_reach(monkeypatch):
    """A night drawn at random: most of its records belong to residents already linked. Clustering reads only the
    linked records the night's edges and reviewers' decisions reach, with every record of their persons; the
    reference clusters every linked record. Same persons, merges, refusals and review pairs — and the same when
    the caller's record → person dict is not in the frame's order (the persons are then looked up one by one)."""
    import itertools

    import numpy as np

    recs, _ = person_records(2500, seed=9, noise=NoiseRates.scaled(3.0))
    frame = features.build(pd.DataFrame([r.row for r in recs]))
    tonight = np.zeros(len(frame), dtype=bool)
    tonight[np.random.default_rng(3).choice(len(frame), len(frame) // 7, replace=False)] = True
    old, new = frame[~tonight], frame[tonight]
    settings, th = model.load_settings(), engine.Thresholds(0.999, 0.5)
    # a person one of whose records nothing tonight resembles: a reviewer joined two unlike records (A, B), and a
    # copy of A arrives — B is reached only as A's person's other record
    a, b = old.iloc[0], old[old["surname_pinyin"].ne(old["surname_pinyin"].iloc[0])
                            & old["birth_year"].ne(old["birth_year"].iloc[0])].iloc[0]
    new = pd.concat([new, old.iloc[[0]].assign(unique_id=a["unique_id"] + "-again")], ignore_index=True)
    seq = itertools.count(1)
    base = engine.link(old, None, {}, settings=settings, thresholds=th, mint=lambda: f"P{next(seq):06d}",
                       accepted={frozenset((a["unique_id"], b["unique_id"]))})
    assert base.person_of[a["unique_id"]] == base.person_of[b["unique_id"]]
    band = base.review[:4]
    rejected = {frozenset((e.left, e.right)) for e in band[:2]}
    accepted = {frozenset((e.left, e.right)) for e in band[2:]}

    def night(person_of):
        seq = itertools.count(1)
        return engine.link(new, old, person_of, settings=settings, thresholds=th, mint=lambda: f"N{next(seq):06d}",
                           accepted=accepted, rejected=rejected)

    narrowed = night(base.person_of)
    shuffled = night(dict(reversed(list(base.person_of.items()))))
    reached = []
    narrow = engine._reachable

    def everything(existing, *args):
        reached.append(int(narrow(existing, *args).sum()))
        return np.ones(len(existing), dtype=bool)

    monkeypatch.setattr(engine, "_reachable", everything)
    full = night(base.person_of)
    for got in (narrowed, shuffled):
        assert got.person_of == full.person_of and got.new_persons == full.new_persons
        assert sorted(got.merges) == sorted(full.merges) and got.link_kind == full.link_kind
        assert sorted((e.left, e.right, why) for e, why in got.blocked) == \
            sorted((e.left, e.right, why) for e, why in full.blocked)
        assert sorted((e.left, e.right) for e in got.review) == sorted((e.left, e.right) for e in full.review)
    # B decides A's copy: it joins A's person, B included, or B's differences keep it out (a guard's refusal)
    again = a["unique_id"] + "-again"
    assert full.person_of.get(b["unique_id"]) == full.person_of[again] or \
        any(again in (e.left, e.right) for e, _ in full.blocked), (full.person_of[again], full.blocked)
    assert 0 < reached[0] < len(old) / 2  # it did narrow
    known = set(base.person_of.values())
    assert sum(full.person_of[u] in known for u in new["unique_id"]) > len(new) / 2  # most joined a known resident


def test_the_review_queue_says_which_guard_decided_a_pair_and_a_yielding_guard_links():
    """One valid female ID on three records: keyed male with the same name and birth date, the guard yields (one
    person); keyed male with a birth date that fits neither the ID nor the record (a relative's record under her
    ID), the guard holds and the reviewer reads why."""
    import datetime as dt
    import itertools

    from countyhealth import resident_id

    woman = resident_id.make("350125", dt.date(1962, 5, 17), 124)  # even sequence: female
    base = {"name": "林秀英", "id_number": woman, "address": "福建省福州市永泰县梧桐镇春光村12号", "phone": "13800000001"}
    rows = pd.DataFrame([
        {**base, "source_id": "his", "source_record_id": "1", "sex_code": "2", "birth_date": "1962-05-17"},
        {**base, "source_id": "ph", "source_record_id": "2", "sex_code": "1", "birth_date": "1962-05-17"},
        {**base, "source_id": "fd", "source_record_id": "3", "sex_code": "1", "birth_date": "1985-10-03"},
    ])
    seq = itertools.count(1)
    res = engine.link(features.build(rows), None, {}, settings=model.load_settings(),
                      thresholds=engine.Thresholds(0.999, 0.5), mint=lambda: f"P{next(seq)}")
    assert res.person_of["his|1"] == res.person_of["ph|2"] != res.person_of["fd|3"]
    queued = [e for e in res.review if "fd|3" in (e.left, e.right)]
    assert queued and all(e.evidence.startswith("guard: different sex, ID parity says female") for e in queued)
