"""The EMPI on a real warehouse (DuckDB and PostgreSQL): guards, persistent ids, merges, review decisions,
golden records."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from countyhealth import identity, privacy, settings
from countyhealth.identity import engine, features, linking, store
from countyhealth.identity.commands import identity as identity_cli
from countyhealth.warehouse import Warehouse

from helpers import load_people, person_of

_MIGRATION_0009 = (Path(__file__).resolve().parents[2] / "sql" / "duckdb" / "0009_identity_stored_features.sql").read_text()
ID_A = "350125198001011238"  # valid, male 1980-01-01
ID_Z = "350125196007010018"  # valid, male 1960-07-01
ID_B = "350125198001011254"  # valid, male 1980-01-01, another man
MOTHER = "350125199503040020"  # valid, female 1995-03-04


def rec(source, rid, name, birth, sex="1", id_number=None, phone=None, address="福建省福州市永泰县樟城镇上溪村12号",
        hrn=None):
    return {"source_id": source, "source_record_id": rid, "name": name, "birth_date": birth, "sex_code": sex,
            "id_type_code": "01" if id_number else None, "id_number": id_number, "phone": phone, "address": address,
            "health_record_number": hrn}


@pytest.fixture
def wh(warehouse_url):
    w = Warehouse(warehouse_url)
    w.migrate()
    return w


def test_same_resident_across_sources_links_and_golden_record_follows_trust(wh):
    load_people(wh, [
        rec("his_h350125001", "P1", "陳偉", dt.date(1980, 1, 1), id_number=ID_A, phone="13912345678"),
        rec("public_health", "D1", "陈伟", dt.date(1980, 1, 1), id_number=ID_A.lower(), phone="139 1234 5678",
            hrn="35012510100100001"),
        rec("his_w350125101", "Q7", "陈玮", dt.date(1980, 1, 1), id_number="350125800101123", phone=None),
    ])
    s = identity.run(wh)
    assert s.records_considered == 3 and s.new_persons == 1
    person = person_of(wh, "public_health", "D1")
    assert person == person_of(wh, "his_h350125001", "P1") == person_of(wh, "his_w350125101", "Q7")
    with wh.engine.connect() as conn:
        g = conn.execute(sa.text("SELECT * FROM golden_person WHERE person_id = :p"), {"p": person}).mappings().one()
    assert g["name"] == "陈伟" and g["name_source_id"] == "public_health"  # most trusted source first
    assert g["health_record_number"] == "35012510100100001" and g["records"] == 3 and g["sources"] == 3
    assert g["id_number"] != ID_A and g["id_number_hash"]  # ciphertext + hash, never plaintext


def test_golden_record_takes_each_attribute_from_the_most_trusted_then_latest_record_that_has_it(wh):
    day = dt.datetime(2026, 3, 1, 8)
    load_people(wh, [rec("public_health", "D1", "陈伟", dt.date(1980, 1, 1), id_number=ID_A, phone="12", address=None,
                         hrn="35012510100100001")], updated=day)
    load_people(wh, [rec("his_h350125001", "P1", "陈伟", dt.date(1980, 1, 1), id_number=ID_A, phone="13912345678",
                         address="福建省福州市永泰县樟城镇上溪村12号")], updated=day + dt.timedelta(days=1))
    load_people(wh, [rec("his_h350125001", "P2", "陈伟", dt.date(1980, 1, 1), id_number=ID_A, phone="13987654321",
                         address=None)], updated=day + dt.timedelta(days=2))
    load_people(wh, [rec("his_w350125101", "Q1", "陳偉", dt.date(1980, 1, 1), id_number=ID_A, phone="13800000000",
                         address="福建省福州市永泰县城峰镇三捷村5号")], updated=day + dt.timedelta(days=3))
    identity.run(wh)
    person = person_of(wh, "public_health", "D1")
    assert {person_of(wh, "his_h350125001", r) for r in ("P1", "P2")} | {person_of(wh, "his_w350125101", "Q1")} == {person}
    with wh.engine.connect() as conn:
        g = conn.execute(sa.text("SELECT * FROM golden_person WHERE person_id = :p"), {"p": person}).mappings().one()
    assert (g["name"], g["name_source_id"]) == ("陈伟", "public_health")  # trusted over the newer his_w spelling
    assert privacy.decrypt(g["id_number"]) == ID_A and g["id_number_source_id"] == "public_health"
    # public_health's "12" is no phone (no hash): the next source in trust, its most recent record
    assert privacy.decrypt(g["phone"]) == "13987654321" and g["phone_source_id"] == "his_h350125001"
    assert g["phone_hash"] == privacy.keyed_hash("13987654321", "phone")
    # the newest his_h record has no address: its older one, with the township and village of that address
    assert (g["address_source_id"], g["address_township"], g["address_village"]) == ("his_h350125001", "樟城镇", "上溪村")
    assert g["health_record_number_source_id"] == "public_health" and (g["records"], g["sources"]) == (4, 3)


def test_two_different_valid_ids_never_auto_link(wh):
    load_people(wh, [
        rec("his_h350125001", "P1", "陈伟", dt.date(1980, 1, 1), id_number=ID_A, phone="13912345678"),
        rec("public_health", "D1", "陈伟", dt.date(1980, 1, 1), id_number=ID_B, phone="13912345678"),
    ])
    identity.run(wh)
    assert person_of(wh, "his_h350125001", "P1") != person_of(wh, "public_health", "D1")


def test_twins_stay_apart(wh):
    load_people(wh, [
        rec("public_health", "T1", "林浩", dt.date(2019, 5, 6), phone="13800000001"),
        rec("his_w350125101", "T1b", "林浩", dt.date(2019, 5, 6), phone="13800000001"),
        rec("public_health", "T2", "林涛", dt.date(2019, 5, 6), phone="13800000001"),
        rec("his_w350125101", "T2b", "林涛", dt.date(2019, 5, 6), phone="13800000001"),
    ])
    identity.run(wh)
    a, b = person_of(wh, "public_health", "T1"), person_of(wh, "public_health", "T2")
    assert a != b
    assert person_of(wh, "his_w350125101", "T1b") == a and person_of(wh, "his_w350125101", "T2b") == b


def test_an_infant_on_the_guardians_id_is_not_the_guardian(wh):
    load_people(wh, [
        rec("public_health", "M1", "郑丽", dt.date(1995, 3, 4), sex="2", id_number=MOTHER, phone="13700000002"),
        rec("his_w350125101", "I1", "黄小宝", dt.date(2025, 12, 1), sex="2", id_number=MOTHER, phone="13700000002"),
        rec("his_h350125003", "I2", "黄小宝", dt.date(2025, 12, 1), sex="2", id_number=None, phone="13700000002"),
    ])
    identity.run(wh)
    mother, infant = person_of(wh, "public_health", "M1"), person_of(wh, "his_w350125101", "I1")
    assert mother != infant
    assert person_of(wh, "his_h350125003", "I2") == infant  # the infant's own records still come together


def test_person_ids_never_change_and_merges_redirect(wh):
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011")])
    load_people(wh, [rec("his_h350125001", "P9", "郑强", dt.date(1960, 7, 1), address="永泰县梧桐镇下坑村3号",
                         phone="13600000003")])
    identity.run(wh)
    first = person_of(wh, "public_health", "D1")
    second = person_of(wh, "his_h350125001", "P9")
    assert first != second  # no ID on the HIS card and a different address: not enough to link
    # a later record carries the ID *and* the HIS card's phone: evidence that both are one resident
    load_people(wh, [rec("contracts", "Q1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011",
                         phone="13600000003", address="永泰县梧桐镇下坑村3号")])
    s = identity.run(wh)
    assert s.merges == 1 and s.new_persons == 0
    survivor = min(first, second)
    for source, rid in (("public_health", "D1"), ("his_h350125001", "P9"), ("contracts", "Q1")):
        assert person_of(wh, source, rid) == survivor
    merged = max(first, second)
    assert identity.resolve(wh, merged) == survivor
    with wh.engine.connect() as conn:
        ev = conn.execute(sa.text("SELECT kind, person_id, other_person_id FROM identity_event WHERE kind = 'merge'")).all()
    assert ev == [("merge", survivor, merged)]
    # nothing new: nothing changes, no id minted
    before = identity.run(wh)
    assert before.records_considered == 0
    _assert_keys_unique(wh)


def test_a_night_reads_its_candidates_from_the_identity_tables_and_decrypts_none_of_them(wh, monkeypatch):
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011",
                         phone="13600000003")])
    identity.run(wh)
    seen, decrypted = {}, []
    real_link, real_decrypt = engine.link, privacy.decrypt_many

    def link_seen(new, existing, *args, **kwargs):
        seen["existing"] = existing
        return real_link(new, existing, *args, **kwargs)

    monkeypatch.setattr(engine, "link", link_seen)
    monkeypatch.setattr(privacy, "decrypt_many", lambda tokens: decrypted.extend(tokens) or real_decrypt(tokens))
    # the same man at the hospital, two digits of his ID swapped: the ID levels need the candidate's number
    load_people(wh, [rec("his_h350125001", "P9", "郑强", dt.date(1960, 7, 1), id_number="350125196007100011")])
    identity.run(wh)
    candidate = seen["existing"].set_index("unique_id").loc["public_health|D1"]
    assert candidate["id18"] == "350125196007010011"  # opened from identity_record's sealed copy
    assert candidate["phone"] == privacy.keyed_hash("13600000003", "phone")
    assert len(decrypted) == 1  # the night's own record's ID, none of its candidates'
    assert person_of(wh, "his_h350125001", "P9") == person_of(wh, "public_health", "D1")


def test_a_changed_record_keeps_its_person_id_unless_the_evidence_moves_it(wh):
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011"),
                     rec("public_health", "D2", "林芳", dt.date(1990, 2, 3), sex="2", phone="13700000009"),
                     rec("his_h350125001", "P2", "林芳", dt.date(1990, 2, 3), sex="2", phone="13700000009")])
    identity.run(wh)
    alone, pair = person_of(wh, "public_health", "D1"), person_of(wh, "public_health", "D2")
    # D1 (its person's only record) and both of D2's person's records change: a new phone, a new address
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011",
                         phone="13600000004"),
                     rec("public_health", "D2", "林芳", dt.date(1990, 2, 3), sex="2", phone="13700000009",
                         address="福建省福州市永泰县樟城镇上溪村50号"),
                     rec("his_h350125001", "P2", "林芳", dt.date(1990, 2, 3), sex="2", phone="13700000009",
                         address="福建省福州市永泰县樟城镇上溪村50号")])
    s = identity.run(wh)
    assert s.records_considered == 3 and s.new_persons == 0 and s.merges == 0 and s.splits == 0
    assert person_of(wh, "public_health", "D1") == alone
    assert person_of(wh, "public_health", "D2") == person_of(wh, "his_h350125001", "P2") == pair
    # D2 becomes someone else entirely: it leaves the person P2 still holds, under a fresh id (a split)
    load_people(wh, [rec("public_health", "D2", "黄国华", dt.date(1948, 9, 9), sex="1")])
    s = identity.run(wh)
    assert s.new_persons == 1 and s.splits == 1
    assert person_of(wh, "his_h350125001", "P2") == pair != person_of(wh, "public_health", "D2")
    _assert_keys_unique(wh)  # three runs, records written again: each still one row (DuckDB keeps no key for it)


def _placed_by_the_engine(monkeypatch) -> list[str]:
    """The record ids each run hands the engine to score (repeats are linked before it, in the warehouse)."""
    seen: list[str] = []
    real = engine.link

    def link(new, *args, **kwargs):
        seen.extend(new["unique_id"])
        return real(new, *args, **kwargs)

    monkeypatch.setattr(engine, "link", link)
    return seen


def test_a_nights_repeats_are_linked_in_the_warehouse_with_the_features_building_them_gives(wh, monkeypatch):
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z,
                         phone="13600000003"),
                     rec("public_health", "D2", "林芳", dt.date(1990, 2, 3), sex="2", hrn="35012510100100002")])
    identity.run(wh)
    person = person_of(wh, "public_health", "D1")
    scored = _placed_by_the_engine(monkeypatch)
    night = [  # the same man at the hospital, over and over: ID, name, birth date, sex as public health has them
        rec("his_h350125001", "R1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z, phone="13600000003",
            address="福建省福州市永泰县梧桐镇下坑村3号"),
        rec("his_h350125001", "R2", "鄭強", dt.date(1960, 7, 1), id_number=ID_Z, phone=None),
        # a phone his records do not have, another person's health-record number, a character added to his name:
        # scored
        rec("his_h350125001", "S1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z, phone="13600000099"),
        rec("his_h350125001", "S2", "郑强", dt.date(1960, 7, 1), id_number=ID_Z,
            hrn="35012510100100002"),
        rec("his_h350125001", "S3", "郑强强", dt.date(1960, 7, 1), id_number=ID_Z)]
    load_people(wh, night)
    s = identity.run(wh)
    assert sorted(scored) == ["his_h350125001|S1", "his_h350125001|S2", "his_h350125001|S3"]
    assert s.linked_deterministic >= 2 and "repeats" in s.steps
    assert {person_of(wh, "his_h350125001", r) for r in ("R1", "R2", "S1")} == {person}
    # what identity_record keeps of a repeat is what building its features would have given
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM person WHERE source_record_id IN ('R1', 'R2') "
                                    "ORDER BY source_record_id")).mappings().all()
        kept = conn.execute(sa.text("SELECT * FROM identity_record WHERE source_record_id IN ('R1', 'R2') "
                                    "ORDER BY source_record_id")).mappings().all()
        link = conn.execute(sa.text("SELECT link_kind, match_probability FROM person_link "
                                    "WHERE source_record_id = 'R1'")).one()
        golden_records = conn.execute(sa.text("SELECT records FROM golden_person WHERE person_id = :p"),
                                      {"p": person}).scalar()
    built = store.stored_features(features.build(pd.DataFrame([dict(r) for r in rows])))
    for i, row in enumerate(kept):
        for c in store.FEATURE_COLUMNS:
            assert row[c] == built[c].iloc[i], (row["source_record_id"], c)
        assert (row["person_id"], row["link_kind"], row["match_probability"]) == (person, "deterministic", 1.0)
    assert link == ("deterministic", 1.0)
    # S3 too: one given-name character more, with his valid ID and birth date, is a clerk's slip (issue 25)
    assert golden_records == 1 + len(night)
    _assert_keys_unique(wh)


def test_the_warehouses_sql_runs_beside_pythons_work_and_is_waited_for_when_that_fails():
    """A night's SQL runs on a thread while Python standardises (linking._beside): both at once — the foreground
    below waits for the background to start, and would time out were they one after the other — and a foreground
    that fails still leaves only after the background is done (its connection is then the transaction's again)."""
    import threading
    import time

    started, finished = threading.Event(), threading.Event()

    def background():
        started.set()
        time.sleep(0.2)
        finished.set()
        return "rows"

    assert linking._beside(background, lambda: started.wait(10) and "features") == ("rows", "features")
    started.clear()
    finished.clear()

    def failing():
        assert started.wait(10)
        raise RuntimeError("a standardisation failed")

    with pytest.raises(RuntimeError, match="standardisation"):
        linking._beside(background, failing)
    assert finished.is_set()

    def broken():
        raise ValueError("the warehouse refused")

    with pytest.raises(ValueError, match="refused"):
        linking._beside(broken, lambda: "features")


def test_what_a_changed_record_said_before_makes_no_repeat(wh, monkeypatch):
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z)])
    identity.run(wh)
    scored = _placed_by_the_engine(monkeypatch)
    # D1 turns out to be someone else; a hospital record carries what D1 said before
    load_people(wh, [rec("public_health", "D1", "黄国华", dt.date(1948, 9, 9), id_number="350125194809090014")])
    load_people(wh, [rec("his_h350125001", "R1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z)])
    identity.run(wh)
    assert sorted(scored) == ["his_h350125001|R1", "public_health|D1"]
    assert person_of(wh, "his_h350125001", "R1") != person_of(wh, "public_health", "D1")


def test_a_merge_takes_the_nights_repeats_along(wh, monkeypatch):
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z)])
    load_people(wh, [rec("his_h350125001", "P9", "郑强", dt.date(1960, 7, 1), address="永泰县梧桐镇下坑村3号",
                         phone="13600000003")])
    identity.run(wh)
    first, second = person_of(wh, "public_health", "D1"), person_of(wh, "his_h350125001", "P9")
    assert first != second
    scored = _placed_by_the_engine(monkeypatch)
    # R1 repeats D1 and is linked before anything is scored; Q1 carries D1's ID and P9's phone: the persons merge
    load_people(wh, [rec("his_w350125101", "R1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z),
                     rec("contracts", "Q1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z,
                         phone="13600000003", address="永泰县梧桐镇下坑村3号")])
    s = identity.run(wh)
    assert scored == ["contracts|Q1"] and s.merges == 1
    survivor = min(first, second)
    assert {person_of(wh, *k) for k in (("public_health", "D1"), ("his_h350125001", "P9"),
                                        ("his_w350125101", "R1"), ("contracts", "Q1"))} == {survivor}
    with wh.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT person_id FROM identity_record WHERE source_record_id = 'R1'")
                            ).scalar() == survivor
        # the repeat's person's golden record, rebuilt while the engine linked, goes with the merge; the survivor's
        # counts every record
        golden = conn.execute(sa.text("SELECT person_id, records FROM golden_person WHERE person_id IN (:a, :b)"),
                              {"a": first, "b": second}).all()
    assert golden == [(survivor, 4)]
    _assert_keys_unique(wh)


def test_the_engine_gets_the_nights_other_records_in_their_order_with_the_features_building_them_gives(
        wh, monkeypatch):
    """Rows that can repeat no one (without an ID, a birth date…) are built while the warehouse looks for the
    repeats, the others after: the engine still gets every record it places once, in the night's order (person ids
    are minted in that order), with the features one build of them gives."""
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z)])
    identity.run(wh)
    read, placed = [], []
    to_link, link = store.to_link, engine.link
    monkeypatch.setattr(store, "to_link", lambda conn: read.append(to_link(conn)) or read[-1])
    monkeypatch.setattr(engine, "link", lambda new, *a, **k: placed.append(new) or link(new, *a, **k))
    load_people(wh, [rec("his_h350125001", "U1", "王芳", None, sex="2"),  # no birth date: repeats no one
                     rec("his_h350125001", "R1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z),  # a repeat
                     rec("his_h350125001", "S1", "郑强强", dt.date(1960, 7, 1), id_number=ID_Z),
                     rec("his_h350125001", "U2", "李娜", dt.date(1992, 5, 6), sex="2"),  # no ID
                     rec("his_h350125001", "S2", "郑强", dt.date(1960, 7, 1), id_number=ID_Z,
                         phone="13600000099")])
    identity.run(wh)
    night = store.objects_frame(read[-1])
    expected = features.build(night[night["source_record_id"] != "R1"].reset_index(drop=True))
    assert list(placed[-1]["source_record_id"]) == list(expected["source_record_id"])
    assert set(expected["source_record_id"]) == {"U1", "S1", "U2", "S2"}
    pd.testing.assert_frame_equal(placed[-1][features.COLUMNS].reset_index(drop=True), expected[features.COLUMNS])


def test_a_row_loaded_late_into_a_batch_already_linked_is_still_placed(wh):
    """DuckDB joins person and identity_record only for batches not linked as they stand (counts and key hashes
    per batch): a row arriving later under a batch id already linked must still be found."""
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z)], batch="b-late")
    assert identity.run(wh).records_considered == 1
    assert identity.run(wh).records_considered == 0  # nothing new: nothing read again
    load_people(wh, [rec("his_h350125001", "P9", "郑强", dt.date(1960, 7, 1), id_number=ID_Z)], batch="b-late")
    s = identity.run(wh)
    assert s.records_considered == 1
    assert person_of(wh, "his_h350125001", "P9") == person_of(wh, "public_health", "D1")


def _assert_keys_unique(wh) -> None:
    with wh.engine.connect() as conn:
        for table, key in (("identity_record", "source_id, source_record_id"),
                           ("person_link", "source_id, source_record_id"), ("golden_person", "person_id"),
                           ("identity_event", "event_id")):
            rows, keys = conn.execute(sa.text(f"SELECT count(*), count(DISTINCT ({key})) FROM {table}")).one()
            assert rows == keys and rows > 0, table


def test_records_linked_before_features_were_kept_are_placed_again_with_their_ids(wh):
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011"),
                     rec("his_h350125001", "P9", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011"),
                     rec("his_h350125001", "P8", "林芳", dt.date(1990, 2, 3), sex="2")])
    identity.run(wh)
    before = {r: person_of(wh, s, r) for s, r in (("public_health", "D1"), ("his_h350125001", "P9"),
                                                  ("his_h350125001", "P8"))}
    with wh.begin() as conn:  # as a warehouse linked before migration 0009 looks after it
        conn.execute(sa.text("UPDATE identity_record SET township = NULL, village = NULL, address_text = NULL, "
                             "id_sealed = NULL"))
        replace_all = "UPDATE identity_record SET batch_id = NULL"
        assert replace_all + ";" in _MIGRATION_0009
        conn.execute(sa.text(replace_all))
    again = identity.run(wh)
    assert again.records_considered == 3 and again.new_persons == 0 and again.merges == 0
    assert {r: person_of(wh, s, r) for s, r in (("public_health", "D1"), ("his_h350125001", "P9"),
                                                ("his_h350125001", "P8"))} == before
    with wh.engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT count(id_sealed), count(village) FROM identity_record")).one()
    assert tuple(kept) == (2, 3)


def test_migration_0010_keeps_a_linked_warehouse_and_drops_only_duckdbs_key_indexes(tmp_path, duckdb_url):
    before_0010 = tmp_path / "sql"
    (before_0010 / "duckdb").mkdir(parents=True)
    for path in sorted((settings.sql_dir() / "duckdb").glob("*.sql")):
        if int(path.name[:4]) < 10:
            shutil.copy(path, before_0010 / "duckdb" / path.name)
    wh = Warehouse(duckdb_url)
    wh.migrate(sql_dir=before_0010)
    shutil.copy(settings.sql_dir() / "duckdb" / "0010_identity_tables_without_art.sql", before_0010 / "duckdb")
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011"),
                     rec("his_h350125001", "P9", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011")])
    identity.run(wh)

    def linked(source_id: str, source_record_id: str) -> str:  # (the code writes identity_record alone: 0011)
        with wh.engine.connect() as conn:
            return conn.execute(sa.text("SELECT person_id FROM identity_record WHERE source_id = :s AND "
                                        "source_record_id = :r"), {"s": source_id, "r": source_record_id}).one()[0]

    person = linked("public_health", "D1")

    def constraints() -> set[tuple[str, str]]:
        with wh.engine.connect() as conn:
            return set(conn.execute(sa.text(
                "SELECT table_name, constraint_type FROM duckdb_constraints() WHERE table_name IN "
                "('identity_record', 'person_link', 'golden_person', 'identity_event')")).fetchall())

    assert ("identity_record", "PRIMARY KEY") in constraints()
    assert wh.migrate(sql_dir=before_0010) == [10]
    after = constraints()
    assert not {kind for _, kind in after} - {"NOT NULL"}
    assert ("identity_record", "NOT NULL") in after and ("golden_person", "NOT NULL") in after
    assert linked("his_h350125001", "P9") == person
    with wh.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM golden_person")).one()[0] == 1
        with pytest.raises(sa.exc.DBAPIError, match="NOT NULL"):
            conn.execute(sa.text("INSERT INTO person_link (source_id, source_record_id) VALUES ('a', 'b')"))
    assert wh.migrate() == _versions_from(11, "duckdb")  # (person_link a view of identity_record: 0011)
    load_people(wh, [rec("contracts", "Q1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011")])
    identity.run(wh)
    assert person_of(wh, "contracts", "Q1") == person
    _assert_keys_unique(wh)


def test_review_decisions_are_honoured_by_later_runs(wh, monkeypatch):
    # same name, same birth date, same village, no ID or phone: the uncertain band
    load_people(wh, [rec("public_health", "D1", "黄秀英", dt.date(1952, 2, 3), sex="2"),
                     rec("his_w350125101", "P1", "黄秀英", dt.date(1952, 2, 3), sex="2",
                         address="福建省福州市永泰县樟城镇上溪村40号")])
    monkeypatch.setenv("COUNTYHEALTH_CONFIG_DIR", str(_config(monkeypatch, auto_link=0.99999999, review=0.01)))
    s = identity.run(wh)
    assert s.queued_for_review == 1
    url = str(wh.engine.url.render_as_string(hide_password=False))
    out = CliRunner().invoke(identity_cli, ["review", "--url", url])
    assert out.exit_code == 0 and "黄秀英" in out.output and "1 open pair" in out.output
    with wh.engine.connect() as conn:
        pair = conn.execute(sa.text("SELECT pair_id FROM identity_review")).scalar()
    assert CliRunner().invoke(identity_cli, ["review", "--url", url, "accept", pair, "--note", "same person, "
                                             "checked by phone"]).exit_code == 0
    identity.run(wh)
    assert person_of(wh, "public_health", "D1") == person_of(wh, "his_w350125101", "P1")
    # a third record like them; then the reviewer says two others are different people: never linked after
    load_people(wh, [rec("public_health", "D2", "王芳", dt.date(1970, 1, 1), sex="2"),
                     rec("his_w350125101", "P2", "王芳", dt.date(1970, 1, 1), sex="2",
                         address="福建省福州市永泰县樟城镇上溪村41号")])
    identity.run(wh)
    with wh.engine.connect() as conn:
        pair2 = conn.execute(sa.text("SELECT pair_id FROM identity_review WHERE status = 'open'")).scalar()
    assert CliRunner().invoke(identity_cli, ["review", "--url", url, "reject", pair2]).exit_code == 0
    monkeypatch.setenv("COUNTYHEALTH_CONFIG_DIR", str(_config(monkeypatch, auto_link=0.02, review=0.01)))
    load_people(wh, [rec("his_w350125101", "P2", "王芳", dt.date(1970, 1, 1), sex="2",
                         address="福建省福州市永泰县樟城镇上溪村41号", phone="13911112222")])  # the record changes
    identity.run(wh)
    assert person_of(wh, "public_health", "D2") != person_of(wh, "his_w350125101", "P2")
    assert person_of(wh, "public_health", "D1") == person_of(wh, "his_w350125101", "P1")  # still linked


def test_identifiers_are_masked_unless_the_user_is_authorised(wh):
    load_people(wh, [rec("public_health", "D1", "黄秀强", dt.date(1980, 1, 1), sex="1", id_number=ID_A)])
    identity.run(wh)
    person = person_of(wh, "public_health", "D1")
    url = str(wh.engine.url.render_as_string(hide_password=False))
    out = CliRunner().invoke(identity_cli, ["show", person, "--url", url])
    assert out.exit_code == 0 and ID_A not in out.output and "350**************8" in out.output
    refused = CliRunner().invoke(identity_cli, ["show", person, "--url", url, "--show-identifiers"])
    assert refused.exit_code != 0 and "identifier_viewers" in refused.output


def _config(monkeypatch, *, auto_link, review):
    import tempfile

    folder = Path(tempfile.mkdtemp())
    text = (settings.project_home() / "config" / "identity.yaml").read_text()
    text = text.replace("auto_link: 0.999", f"auto_link: {auto_link}").replace("review: 0.5", f"review: {review}")
    (folder / "identity.yaml").write_text(text)
    return folder


def test_blocking_command_counts_the_pairs_each_rule_makes():
    result = CliRunner().invoke(identity_cli, ["blocking", "--simulated", "400"])
    assert result.exit_code == 0, result.output
    counts = {line.split(None, 1)[1]: int(line.split(None, 1)[0].replace(",", ""))
              for line in result.output.splitlines() if line.strip() and not line.startswith("{")}
    from countyhealth.identity import model

    assert set(model.BLOCKING_RULES) < set(counts)
    # surname alone is the rule the others were chosen to avoid: it makes more pairs than all of them together
    assert counts["l.surname_pinyin = r.surname_pinyin"] > sum(counts[r] for r in model.BLOCKING_RULES)


def test_migration_0011_keeps_every_link_readable_as_person_link_and_links_are_written_once(warehouse_url, tmp_path):
    wh = _migrated_before(11, warehouse_url, tmp_path)
    dialect = wh.dialect
    with wh.begin() as conn:  # a link written as every run before 0011 wrote it: in both tables
        for table in ("identity_record", "person_link"):
            conn.execute(sa.text(f"INSERT INTO {table} (source_id, source_record_id, person_id, link_kind, "
                                 "match_probability, linked_at, run_id) VALUES ('public_health', 'D0', 'P0000000007', "
                                 "'probabilistic', 0.97, TIMESTAMP '2026-01-02 03:04:05', 'r0')"))
    assert wh.migrate() == _versions_from(11, dialect)
    with wh.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT source_id, source_record_id, person_id, link_kind, match_probability, "
                                    "run_id FROM person_link")).all() == [
            ("public_health", "D0", "P0000000007", "probabilistic", 0.97, "r0")]
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011"),
                     rec("his_h350125001", "P9", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011")])
    identity.run(wh)
    load_people(wh, [rec("contracts", "Q1", "郑强", dt.date(1960, 7, 1), id_number="350125196007010011")])
    identity.run(wh)  # (a repeat: linked in the warehouse, store.find_repeats)
    with wh.engine.connect() as conn:
        links = conn.execute(sa.text("SELECT source_id, source_record_id, person_id, link_kind FROM person_link "
                                     "ORDER BY 1, 2")).all()
        records = conn.execute(sa.text("SELECT source_id, source_record_id, person_id, link_kind FROM "
                                       "identity_record ORDER BY 1, 2")).all()
    assert links == records and len(links) == 4
    assert len({person for _, record, person, _ in links if record != "D0"}) == 1


def _migrated_before(version: int, url: str, tmp_path) -> Warehouse:
    """A warehouse at ``url`` migrated up to, not including, migration ``version``."""
    wh = Warehouse(url)
    before = tmp_path / "sql"
    (before / wh.dialect).mkdir(parents=True)
    for path in sorted((settings.sql_dir() / wh.dialect).glob("*.sql")):
        if int(path.name[:4]) < version:
            shutil.copy(path, before / wh.dialect / path.name)
    wh.migrate(sql_dir=before)
    return wh


def _versions_from(first: int, dialect: str) -> list[int]:
    from countyhealth.warehouse import migrations

    return [m.version for m in migrations(dialect) if m.version >= first]


def test_migration_0012_keeps_the_identity_tables_and_stores_their_ciphertext_uncompressed(warehouse_url, tmp_path):
    """0012 copies identity_record and golden_person into definitions whose ciphertext columns are not compressed
    (DuckDB) or never will be (PostgreSQL's EXTERNAL): every row and the person_link view survive, and what a later
    night writes is stored the same way."""
    wh = _migrated_before(12, warehouse_url, tmp_path)
    dialect = wh.dialect
    load_people(wh, [rec("public_health", "D1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z, phone="13600000003"),
                     rec("his_h350125001", "P9", "郑强", dt.date(1960, 7, 1), id_number=ID_Z)])
    identity.run(wh)
    person = person_of(wh, "public_health", "D1")

    def tables():
        with wh.engine.connect() as conn:
            return [conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1, 2")).all()
                    for t in ("identity_record", "golden_person", "person_link")]

    kept = tables()
    assert wh.migrate() == _versions_from(12, dialect)  # 0012 and any later one
    assert tables() == kept
    load_people(wh, [rec("contracts", "Q1", "郑强", dt.date(1960, 7, 1), id_number=ID_Z, phone="13600000003")])
    identity.run(wh)  # (a repeat, written to the new table)
    assert person_of(wh, "contracts", "Q1") == person
    with wh.engine.connect() as conn:
        if dialect == "duckdb":
            conn.execute(sa.text("CHECKPOINT"))
            stored = conn.execute(sa.text(
                "SELECT column_name, string_agg(DISTINCT compression, ',') FROM pragma_storage_info('identity_record') "
                "WHERE column_name IN ('id_sealed', 'id_hash') AND segment_type = 'VARCHAR' GROUP BY 1 UNION ALL "
                "SELECT column_name, string_agg(DISTINCT compression, ',') FROM pragma_storage_info('golden_person') "
                "WHERE column_name IN ('id_number', 'phone') AND segment_type = 'VARCHAR' GROUP BY 1")).all()
            assert dict(stored) == {"id_sealed": "Uncompressed", "id_number": "Uncompressed", "phone": "Uncompressed",
                                    "id_hash": "DICT_FSST"}  # (the hash, not ciphertext, compresses as before)
        else:
            stored = conn.execute(sa.text(
                "SELECT c.relname || '.' || a.attname, a.attstorage FROM pg_attribute a JOIN pg_class c "
                "ON c.oid = a.attrelid WHERE (c.relname, a.attname) IN (('identity_record', 'id_sealed'), "
                "('golden_person', 'id_number'), ('golden_person', 'phone'), ('identity_record', 'id_hash'))")).all()
            assert dict(stored) == {"identity_record.id_sealed": "e", "golden_person.id_number": "e",
                                    "golden_person.phone": "e", "identity_record.id_hash": "x"}
        assert conn.execute(sa.text("SELECT count(*) FROM person_link")).one()[0] == 3
