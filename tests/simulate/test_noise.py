"""The simulator's identity noise: every kind a county generated elsewhere showed us is injected at its rate, and
the ground truth's tag on a record means the record really carries it."""

from __future__ import annotations

from collections import Counter

from countyhealth import resident_id
from countyhealth.simulate.noise import IDENTITY_NOISE_KINDS, NoiseRates
from countyhealth.simulate.person_records import person_records


def _records(scale: float = 1.0):
    recs, people = person_records(3000, seed=11, noise=NoiseRates.scaled(scale))
    return recs, {p.key: p for p in people}


def test_each_new_kind_is_tagged_only_where_the_record_carries_it():
    recs, people = _records()
    seen = Counter(k for r in recs for k in r.tags)
    for kind in ("sex_miscoded", "sex_blank", "name_char_dropped", "birth_date_jan1", "birth_date_first_of_month",
                 "birth_date_blank", "address_short"):
        assert seen[kind] > 0, kind
    assert set(seen) <= set(IDENTITY_NOISE_KINDS)
    for r in recs:
        true, row = people[r.resident_key], r.row
        if "sex_miscoded" in r.tags:
            assert row["sex_code"] in ("1", "2") and row["sex_code"] != true.sex
            if row.get("id_number") and resident_id.parse(row["id_number"]).valid:  # its ID still says the truth
                assert resident_id.parse(row["id_number"]).sex == true.sex
        if "sex_blank" in r.tags:
            assert row["sex_code"] in (None, "", "0", "9")
        if "name_char_dropped" in r.tags:
            assert len(row["name"].replace(" ", "").replace("\u3000", "")) == len(true.name) - 1
        if "name_char_added" in r.tags:
            assert len(row["name"].replace(" ", "").replace("\u3000", "")) == len(true.name) + 1
        birth = str(row.get("birth_date") or "")[:10]
        if "birth_date_jan1" in r.tags:
            assert birth == f"{true.birth_date.year}-01-01"
        if "birth_date_first_of_month" in r.tags:
            assert birth == true.birth_date.replace(day=1).isoformat()
        if "birth_date_blank" in r.tags:
            assert not birth
        if "address_short" in r.tags:
            assert not row["address"].startswith("福建省") and len(row["address"]) < len(true.address)
        if "id_missing" in r.tags:
            assert not row.get("id_number")


def test_the_harsher_profile_triples_the_new_kinds():
    base = Counter(k for r in _records(1.0)[0] for k in r.tags)
    harsh = Counter(k for r in _records(3.0)[0] for k in r.tags)
    for kind in ("sex_miscoded", "name_char_dropped", "birth_date_jan1", "address_short"):
        assert 2 * base[kind] < harsh[kind] < 4 * base[kind], (kind, base[kind], harsh[kind])
