"""Guards: the hard rules that keep two residents apart whatever the score."""

from __future__ import annotations

from countyhealth.identity import guards


def rec(**kw):
    base = {"name_pinyin": "chen wei", "given_pinyin": "wei", "name_fuzzy": "cen wei", "sex": "1"}
    return {**base, **kw}


def test_a_generation_apart_keeps_parent_and_child_apart_but_not_a_typed_year():
    parent = rec(birth_date="1985-03-12", birth_year="1985")
    child = rec(birth_date="2015-03-12", birth_year="2015")
    assert guards.reason_to_keep_apart(parent, child) == "born a generation apart"
    swapped = rec(birth_date="1958-03-12", birth_year="1958")  # 85 typed 58
    assert guards.reason_to_keep_apart(parent, swapped) is None
    one_digit = rec(birth_date="1955-03-12", birth_year="1955")  # one digit wrong, 30 years
    assert guards.reason_to_keep_apart(parent, one_digit) is None


def test_different_valid_ids_and_different_sex_keep_apart():
    a = rec(id18="350125198001011238", id_valid=True, birth_date="1980-01-01", birth_year="1980")
    b = rec(id18="350125199002030021", id_valid=True, birth_date="1980-01-01", birth_year="1980")
    assert guards.reason_to_keep_apart(a, b) == "different valid ID numbers"
    assert guards.reason_to_keep_apart(rec(sex="1"), rec(sex="2")) == "different sex"
