"""Person features: what the model compares, beyond the standardisation tested in test_standardise_person."""

from __future__ import annotations

import re

import pandas as pd

from countyhealth.identity import features, model, store


def build(**row):
    return features.build(pd.DataFrame([{"source_id": "s", "source_record_id": "1", **row}])).iloc[0]


def test_an_identifier_that_is_not_a_resident_id_is_compared_as_text_but_never_valid():
    f = build(name="陈伟", id_number="e12-98044")
    assert f["id18"] == "E1298044" and not f["id_valid"]
    assert build(name="陈伟", id_number="350125198001011238")["id_valid"]
    assert build(name="陈伟", id_number="12")["id18"] is None  # too short to tell anyone apart


def test_names_in_any_word_order_share_a_key_and_latin_addresses_get_blocking_keys():
    a, b = build(name="Ambrosia Samplton"), build(name="张伟")
    assert a["name_words"] == build(name="samplton ambrosia")["name_words"]
    assert b["name_words"] == build(name="Wei Zhang")["name_words"]
    f = build(address="28 Moorehead Place Goodwood 4701 SA")
    assert (f["address_head"], f["address_tail"]) == ("28 moorehead", "4701 sa")
    # the house number blocks with the birth date; alone it is no household (the twins and siblings guards read it)
    assert f["house_number"] == "28" and f["household_key"] is None
    c = build(address="福建省福州市永泰县樟城镇东门村12号")
    assert c["address_head"] is None and c["household_key"] == "樟城镇|东门村|12"


def test_the_warehouse_candidate_search_mirrors_every_blocking_rule():
    """Incremental runs find candidates in SQL by stored keys; a blocking rule without a stored key would link
    a night's records to each other but never to the persons already in the warehouse."""
    stored = {"id18": "id_hash", "phone": "phone_hash"}
    keys = set()
    for rule in model.BLOCKING_RULES:
        cols = re.findall(r"l\.(\w+) = r\.\1", rule)
        assert cols and set(cols) == model.rule_columns(rule), rule
        keys.add(tuple(sorted(stored.get(c, c) for c in cols)))
    assert keys == set(store._CANDIDATE_KEYS)
    assert {c for k in keys for c in k} <= set(store.RECORD_COLUMNS)  # each one kept in identity_record


def test_placeholder_ids_are_no_evidence_and_no_blocking_key():
    """A county's systems hold thousands of 000000000000000000s typed past a required field: as a key they would
    pair every such record with every other (n² pairs), as evidence they would merge strangers."""
    for placeholder in ("000000000000000000", "350125000000000000", "123456789012345678", "1234567"):
        f = build(name="陈伟", id_number=placeholder, health_record_number="00000000000000000")
        assert f["id18"] is None and not f["id_valid"] and f["id_hash"] is None, placeholder
        assert f["health_record_number"] is None
    assert build(name="陈伟", id_number="5500151")["id18"] == "5500151"  # a short real number with few digits
    from countyhealth.identity import engine

    rows = pd.DataFrame([{"source_id": "s", "source_record_id": str(i), "name": f"居民{i}", "sex_code": "1",
                          "birth_date": f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10}", "id_number": "0" * 18}
                         for i in range(400)])
    pairs = engine.score(features.build(rows), None, model.load_settings(), min_probability=0.0)
    assert len(pairs) < 400  # not the 79,800 pairs of one shared key


def test_phones_are_compared_by_their_keyed_hash_and_warehouse_rows_are_not_decrypted_for_it():
    """A phone is only compared for equality: the feature is the keyed hash of its normalised digits — the same
    for a file's plaintext row and the warehouse's encrypted one (whose stored hash is read, not recomputed from a
    decrypted phone), and no digits in the features."""
    import pyarrow as pa

    from countyhealth import privacy

    plain = build(name="陈伟", phone="138 0013 8000")
    protected = privacy.protect_person(pa.table({c: pa.array([v], pa.string()) for c, v in (
        ("id_number", None), ("phone", "13800138000"), ("id_number_hash", None), ("phone_hash", None))})).to_pylist()[0]
    stored = build(name="陈伟", **protected)
    assert plain["phone"] == plain["phone_hash"] == stored["phone"] == protected["phone_hash"]
    assert "13800138000" not in plain.astype(str).tolist()
    # the stored hash is taken as it is: a phone column that cannot be decrypted is never touched
    assert build(name="陈伟", phone="gAAAA" + "x" * 100, phone_hash="h1")["phone"] == "h1"
    assert build(name="陈伟", phone="not a phone")["phone"] is None


def test_a_warehouse_rows_valid_id_keeps_its_hash_and_its_sealed_form_when_written_in_18_digits():
    """The warehouse keeps an ID sealed beside the keyed hash of its 18 digits: features take both as they are
    rather than hashing and sealing again — only where they are the same as computing them would give."""
    import pyarrow as pa

    from countyhealth import privacy

    written = ["350125198001011238", "35012519800101106x", "350125800101123", "350125198001011239", "K1234567"]
    table = privacy.protect_person(pa.table({"id_number": pa.array(written), "phone": pa.nulls(5, pa.string()),
                                             "id_number_hash": pa.nulls(5, pa.string()),
                                             "phone_hash": pa.nulls(5, pa.string())}))
    rows = pd.DataFrame({"source_id": "s", "source_record_id": [str(i) for i in range(5)], "name": "陈伟",
                         "birth_date": "1980-01-01", **table.to_pydict()})
    built = features.build(rows)
    computed = features.build(rows.assign(id_number=written, id_number_hash=None))  # a file's plaintext rows
    assert built["id18"].tolist() == computed["id18"].tolist()
    assert built["id_valid"].tolist() == [True, True, True, False, False]
    assert built["id_hash"].tolist() == computed["id_hash"].tolist()  # the stored hash, equal to a fresh one
    sealed = privacy.seal_many([i for i in computed["id18"] if i])
    # only the ID already written as its 18 digits is the row's own token; the others are sealed when stored
    assert built["id_sealed"].tolist() == [table["id_number"][0].as_py(), None, None, None, None]
    assert table["id_number"][0].as_py() == sealed["350125198001011238"]
    stored = store.stored_features(built)
    assert stored["id_sealed"].tolist()[:3] == [sealed[i] for i in built["id18"][:3]]
    assert computed["id_sealed"].isna().all()


def test_repeat_and_address_keys_computed_a_column_at_a_time_equal_what_build_gives():
    """store.find_repeats compares, and store.write_repeats writes, a repeat's own columns from repeat_keys and
    address_keys (Arrow, vectorised); they must be what features.build gives the same row, whatever its shape."""
    import datetime as dt

    import pyarrow as pa

    from countyhealth import model as warehouse_model

    rows = [  # (name, sex, birth, HRN, address, the platform's own address parts)
        ("陈伟", "1", dt.date(1980, 1, 1), "35012510100100001", "福建省福州市永泰县樟城镇东门村12号",
         (None, None, None)),
        ("陳 偉", "1", dt.date(1980, 1, 1), "0000000000", "樟城镇东门村", ("樟城镇", None, "7")),
        ("Wei Zhang", "2", dt.date(1901, 12, 31), None, "28 Moorehead Place Goodwood 4701 SA", (None, None, None)),
        ("阿依古丽·买买提", "2", dt.date(2024, 2, 29), "12345678", None, (None, "东门村", None)),
        ("林芳", "9", dt.date(1990, 2, 3), None, "梧桐镇", (None, None, None)),  # sex unknown: no repeat
        ("林芳", "2", None, None, "梧桐镇", (None, None, None)),  # no birth date: no repeat
        (None, "2", dt.date(1990, 2, 3), None, None, (None, None, None)),  # no name: no repeat
        ("林芳", "2", dt.date(1990, 2, 3), "", "", ("", "", "")),
        ("郑强", "1", dt.date(1960, 7, 1), None, None, (None, None, None)),  # no address at all (the demo's night)
    ]
    names = ["source_id", "source_record_id", "batch_id", "name", "sex_code", "birth_date", "id_number",
             "id_number_hash", "phone_hash", "health_record_number", "address", "address_township",
             "address_village", "address_house_number"]
    person = warehouse_model.schema("person")
    table = pa.table({c: pa.array(v, person.field(c).type) for c, v in zip(names, zip(*[
        ("s", str(i), "b1", name, sex, birth, "350125198001011238", "h" * 64, "p" * 64 if i % 2 else None, hrn,
         address, *given) for i, (name, sex, birth, hrn, address, given) in enumerate(rows)]))})
    # as a query hands it over: in chunks (a night's rows came in two and the columns no longer lined up)
    table = pa.concat_tables([table.slice(0, 3), table.slice(3)])
    assert table["name"].num_chunks == 2
    keys = features.repeat_keys(table).to_pandas()
    built = features.build(store.objects_frame(table))
    assert list(keys["source_record_id"]) == ["0", "1", "2", "3", "7", "8"]
    built = built.set_index("source_record_id").loc[keys["source_record_id"]].reset_index()
    for c in features.REPEAT_KEYS:
        if c == "id_hash":  # (build hashes the ID afresh here: the rows' stored hash is a stand-in)
            continue
        want = [None if pd.isna(v) else v for v in built[c]]
        assert [None if pd.isna(v) else v for v in keys[c]] == want, c
    # the address columns of every row, repeat or not (the last has no address at all: the demo's night)
    addresses = features.address_keys(table).to_pandas()
    built_all = features.build(store.objects_frame(table))
    assert list(addresses["source_record_id"]) == [str(i) for i in range(len(rows))]
    for c in features.ADDRESS_KEYS:
        assert [None if pd.isna(v) else v for v in addresses[c]] == [None if pd.isna(v) else v
                                                                      for v in built_all[c]], c
    assert addresses["household_key"][0] is not None and addresses["household_key"].iloc[-1] is None


def test_repeat_keys_equal_build_on_a_simulated_night_handed_over_in_chunks():
    """A night's rows as the warehouse hands them over — hundreds, in chunks, most with an ID — give the same keys
    either way."""
    import pyarrow as pa

    from countyhealth import model as warehouse_model
    from countyhealth.simulate.person_records import person_records

    person = warehouse_model.schema("person")
    names = ["source_id", "source_record_id", "batch_id", "name", "sex_code", "birth_date", "id_number",
             "health_record_number", "address", "address_township", "address_village", "address_house_number"]
    rows = [r.row for r in person_records(400, seed=3)[0]]
    table = pa.table({c: pa.array([r.get(c) for r in rows], person.field(c).type) for c in names})
    table = table.append_column("id_number_hash", pa.array(["h" if r.get("id_number") else None for r in rows]))
    table = table.append_column("phone_hash", pa.nulls(len(rows), pa.string()))
    table = pa.concat_tables([table.slice(0, 97), table.slice(97, 300), table.slice(397)])
    keys = features.repeat_keys(table)
    built = features.build(store.objects_frame(table)).set_index("unique_id")
    uids = [f"{s}|{r}" for s, r in zip(keys["source_id"].to_pylist(), keys["source_record_id"].to_pylist())]
    assert 0 < len(uids) < table.num_rows
    for c in features.REPEAT_KEYS:
        if c != "id_hash":
            assert keys[c].to_pylist() == [None if pd.isna(v) else v for v in built.loc[uids, c]], c
    addresses = features.address_keys(table)
    every = [f"{s}|{r}" for s, r in zip(addresses["source_id"].to_pylist(), addresses["source_record_id"].to_pylist())]
    assert len(every) == table.num_rows
    for c in features.ADDRESS_KEYS:
        assert addresses[c].to_pylist() == [None if pd.isna(v) else v for v in built.loc[every, c]], c
