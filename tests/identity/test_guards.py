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


def test_the_same_id_number_of_any_scheme_is_not_a_generation_apart_unless_a_placeholder():
    """A wholly different birth date under the same identifier (a passport, a social-security number) is a bad
    birth date, not a father and son; a placeholder shared by strangers proves nothing."""
    older = rec(birth_date="1905-01-08", birth_year="1905", id18="2851372", id_valid=False)
    younger = rec(birth_date="1988-04-30", birth_year="1988", id18="2851372", id_valid=False)
    assert guards.reason_to_keep_apart(older, younger) is None
    for placeholder in ("0000000", "1234567", "999999999999999999"):
        a, b = ({**r, "id18": placeholder} for r in (older, younger))
        assert guards.reason_to_keep_apart(a, b) == "born a generation apart", placeholder
    assert guards.reason_to_keep_apart({**older, "id18": None}, {**younger, "id18": None}) == "born a generation apart"


def test_may_keep_apart_flags_every_pair_a_guard_refuses():
    """The column-wise pre-check must never miss a pair the exact rules refuse (clustering trusts it)."""
    import itertools
    import random

    import pandas as pd

    rng = random.Random(7)
    values = {"id18": ["350125198001011238", "350125199002030021", "2851372", None, ""],
              "id_valid": [True, False, None], "sex": ["1", "2", None, ""],
              "birth_date": ["1980-01-01", "1981-01-01", "2015-03-12", "1958-03-12", None],
              "given_pinyin": ["wei", "wen", None], "name_pinyin": ["chen wei", "chen wen", None],
              "name_fuzzy": ["cen wei", "cen wen", None], "household_key": ["a|b|1", None], "phone": ["138", None]}
    rows = []
    for _ in range(4000):
        r = {k: rng.choice(v) for k, v in values.items()}
        r["birth_year"] = r["birth_date"][:4] if r["birth_date"] else rng.choice([None, "19x0"])
        rows.append(r)
    pairs = list(itertools.combinations(range(len(rows)), 2))[:200000]
    left = pd.DataFrame([rows[i] for i, _ in pairs])
    right = pd.DataFrame([rows[j] for _, j in pairs])
    flagged = guards.may_keep_apart(left, right)
    refused = [guards.reason_to_keep_apart(rows[i], rows[j]) is not None for i, j in pairs]
    assert sum(refused) > 1000
    assert not any(r and not f for r, f in zip(refused, flagged))


def test_siblings_in_one_household_stay_apart_but_a_clerks_date_error_does_not():
    older = rec(name_pinyin="lin yu", given_pinyin="yu", birth_date="2023-04-08", birth_year="2023",
                household_key="同安镇|岭中村|118")
    younger = {**older, "birth_date": "2024-06-11", "birth_year": "2024"}
    assert guards.reason_to_keep_apart(older, younger) == "siblings: one household, born months apart"
    by_phone = {**younger, "household_key": None, "phone": "13056382881"}
    assert guards.reason_to_keep_apart({**older, "household_key": None, "phone": "13056382881"}, by_phone)
    for date in ("2023-04-09", "2023-05-08", "2023-08-04", "2023-04-28"):  # a day, a month, swapped, a digit
        assert guards.reason_to_keep_apart(older, {**older, "birth_date": date}) is None, date
    elsewhere = {**younger, "household_key": "葛岭镇|后中村|50"}
    assert guards.reason_to_keep_apart(older, elsewhere) is None  # no household in common: the model decides
    elders = {**older, "birth_date": "1948-04-08", "birth_year": "1948"}
    assert guards.reason_to_keep_apart(elders, {**elders, "birth_date": "1949-02-20", "birth_year": "1949"}) is None


def test_another_schemes_number_typed_one_keystroke_wrong_is_not_a_generation_apart_but_a_resident_ids_is():
    """7156436 / 7156463: the same social-security number, two digits swapped — the wholly different birth date is
    the error. A resident ID one keystroke from another may be a guardian's mistyped: the guard still holds."""
    older = rec(birth_date="1905-01-08", birth_year="1905", id18="7156436", id_valid=False)
    younger = rec(birth_date="1988-04-30", birth_year="1988", id18="7156463", id_valid=False)
    assert guards.reason_to_keep_apart(older, younger) is None
    assert guards.reason_to_keep_apart(older, {**younger, "id18": "7156999"}) == "born a generation apart"
    guardian = rec(birth_date="1965-01-08", birth_year="1965", id18="350125196501081234", id_valid=True)
    infant = rec(birth_date="2020-04-30", birth_year="2020", id18="350125196501081243", id_valid=False)
    assert guards.reason_to_keep_apart(guardian, infant) == "born a generation apart"
