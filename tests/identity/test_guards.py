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


# --- guards that yield only to stronger evidence (issue 25) -------------------------------------------------------

def person(name, given, sex, birth, id18=None, household="永泰|梧桐镇|春光村|12", **kw):
    """A feature row as features.build gives it, for the fields the guards read."""
    from countyhealth.standardise import person as std

    pinyin = std.name_pinyin(name)
    surname_py = pinyin.split()[0]
    return {"name_std": name, "name_pinyin": pinyin, "surname_pinyin": surname_py, "given_pinyin": given,
            "name_fuzzy": std.fuzzy_pinyin(pinyin), "sex": sex, "birth_date": birth, "birth_year": birth[:4] if birth
            else None, "id18": id18, "id_valid": id18 is not None, "household_key": household, "phone": None, **kw}


def an_id(birth: str, sequence: int) -> str:
    import datetime as dt

    from countyhealth import resident_id

    return resident_id.make("350125", dt.date.fromisoformat(birth), sequence)


def test_a_sex_mismatch_yields_to_the_same_valid_id_birth_date_and_name_and_says_which_sex_the_id_gives():
    woman = an_id("1962-05-17", 124)  # sequence even: female
    right = person("林秀英", "xiu ying", "2", "1962-05-17", woman)
    keyed_wrong = person("林秀英", "xiu ying", "1", "1962-05-17", woman)
    why, yielded = guards.decision(right, keyed_wrong)
    assert why is None and yielded.startswith("sex differs, ID parity says female")
    # the birth date a placeholder of the other still agrees; a name with a character dropped is still alike
    assert guards.reason_to_keep_apart(right, {**keyed_wrong, "birth_date": "1962-01-01"}) is None
    assert guards.reason_to_keep_apart(right, person("林英", "ying", "1", "1962-05-17", woman)) is None


def test_a_sex_mismatch_on_one_id_holds_without_the_rest_of_the_evidence():
    """Parent and child on one ID (the guardian's, where features could not tell): another birth date; or another
    name: the guard holds, naming the sex the ID gives."""
    mothers = an_id("1962-05-17", 124)
    mother = person("林秀英", "xiu ying", "2", "1962-05-17", mothers)
    son = person("林伟", "wei", "1", "1990-08-02", mothers)
    assert guards.reason_to_keep_apart(mother, son) == "different sex, ID parity says female"
    same_birth_other_name = person("林建国", "jian guo", "1", "1962-05-17", mothers)
    assert guards.reason_to_keep_apart(mother, same_birth_other_name) == "different sex, ID parity says female"
    other_birth_date = person("林秀英", "xiu ying", "1", "1964-09-17", mothers)
    assert guards.reason_to_keep_apart(mother, other_birth_date) is not None


def test_opposite_sex_twins_stay_apart_whatever_their_names_and_missing_ids():
    brother = person("陈晓明", "xiao ming", "1", "2001-03-09", an_id("2001-03-09", 111))
    sister = person("陈晓红", "xiao hong", "2", "2001-03-09", an_id("2001-03-09", 112))
    assert guards.reason_to_keep_apart(brother, sister) == "different valid ID numbers"
    assert guards.reason_to_keep_apart(brother, {**sister, "id18": None, "id_valid": False}) is not None
    # the same name typed for the sister without an ID (a clerk's copy): the ID's parity vouches for the brother
    # only; with the household and a birth date agreeing with the ID's own (a placeholder of it too) that is the
    # stronger evidence, with another date it is not
    copied = person("陈晓明", "xiao ming", "2", "2001-03-09")
    assert guards.reason_to_keep_apart(brother, copied) is None
    assert guards.reason_to_keep_apart(brother, {**copied, "birth_date": "2001-01-01"}) is None
    assert guards.reason_to_keep_apart(brother, {**copied, "birth_date": "2001-03-19"}) is not None
    # the sex miskeyed on the record that carries the ID: the parity sides with the record without one
    miskeyed = {**brother, "sex": "2"}
    why, yielded = guards.decision(miskeyed, {**copied, "sex": "1"})
    assert why is None and yielded.startswith("sex differs, ID parity says male")
    assert guards.reason_to_keep_apart(brother, {**copied, "household_key": "永泰|城峰镇|太原村|3"}) is not None


def test_twins_named_in_a_pattern_stay_apart_but_a_dropped_character_is_not_a_twin():
    a = person("林晓明", "xiao ming", "1", "2010-07-21")
    twin = person("林晓亮", "xiao liang", "1", "2010-07-21")
    assert guards.reason_to_keep_apart(a, twin) == "twins: same birth date and household, different given names"
    dropped = person("林明", "ming", "1", "2010-07-21")
    why, yielded = guards.decision(a, dropped)
    assert why is None and "one given-name character dropped or added" in yielded
    homophone_dropped = person("林小", "xiao", "1", "2010-07-21")  # 晓 dropped 明, typed 小: the pinyin sees it
    assert guards.reason_to_keep_apart(a, homophone_dropped) is None
    assert guards.reason_to_keep_apart(a, person("林晓亮明", "xiao liang ming", "1", "2010-07-21")) is None
    assert guards.reason_to_keep_apart(a, person("林亮", "liang", "1", "2010-07-21")) is not None


def test_a_placeholder_birth_date_is_not_counted_in_days_for_siblings_but_real_dates_are():
    older = person("王芳", "fang", "2", "1992-11-20")
    placeholder = person("王芳", "fang", "2", "1992-01-01")
    why, yielded = guards.decision(older, placeholder)
    assert why is None and "placeholder" in yielded
    sibling = person("王芳", "fang", "2", "1994-03-05")
    assert guards.reason_to_keep_apart(older, sibling) == "siblings: one household, born months apart"
    assert guards.reason_to_keep_apart(older, person("王芳", "fang", "2", "1994-01-01")) is not None


def test_placeholder_birth_dates_agree_on_year_or_month_only():
    from countyhealth.standardise import person as std

    assert [std.birth_date_precision(d) for d in ("1948-01-01", "1948-06-01", "1948-06-17", None, "1948")] == \
        ["year", "month", "day", None, None]
    assert std.birth_dates_agree("1948-01-01", "1948-09-30") and not std.birth_dates_agree("1948-01-01", "1949-01-05")
    assert std.birth_dates_agree("1948-06-01", "1948-06-30") and not std.birth_dates_agree("1948-06-01", "1948-07-01")
    assert not std.birth_dates_agree("1948-06-17", "1948-06-18") and not std.birth_dates_agree(None, "1948-06-18")


def test_under_one_valid_id_a_blank_or_mistyped_birth_date_still_fits_the_ids_own_but_another_generation_does_not():
    mans = an_id("1927-06-06", 35)
    a = person("陈金鑫", "jin xin", "1", "1927-06-06", mans)
    assert guards.reason_to_keep_apart(a, person("陈金鑫", "jin xin", "2", None, mans)) is None
    assert guards.reason_to_keep_apart(a, person("陈金鑫", "jin xin", "2", "1927-06-08", mans)) is None
    assert guards.reason_to_keep_apart(a, person("陈金鑫", "jin xin", "2", "1927-04-20", mans)) is None  # lunar
    assert guards.reason_to_keep_apart(a, person("陈金鑫", "jin xin", "2", "1955-06-06", mans)) is not None


def test_without_any_id_a_sex_mismatch_yields_only_to_name_real_birth_date_and_household_together():
    a = person("李磊", "lei", "2", "2021-01-21")
    why, yielded = guards.decision(a, person("李磊", "lei", "1", "2021-01-21"))
    assert why is None and yielded.startswith("sex differs, no ID to say which")
    # a birth date one digit off and a homophone are still one person's; two digits off, or another name, are not
    assert guards.reason_to_keep_apart(a, person("李蕾", "lei", "1", "2021-01-22")) is None
    assert guards.reason_to_keep_apart(a, person("李磊", "lei", "1", "2021-03-25")) == "different sex"
    assert guards.reason_to_keep_apart(a, person("李娜", "na", "1", "2021-01-21")) == "different sex"
    assert guards.reason_to_keep_apart(a, person("李磊", "lei", "1", "2021-01-01")) == "different sex"  # placeholder
    assert guards.reason_to_keep_apart(a, person("李磊", "lei", "1", "2021-01-21", household="城峰镇|湖坑社区|17")) \
        == "different sex"


def test_siblings_named_alike_stay_apart_where_a_dropped_character_with_the_same_birth_date_links():
    older = person("黄雨雷", "yu lei", "1", "2024-06-04")
    assert guards.reason_to_keep_apart(older, person("黄雷", "lei", "1", "2024-02-10")) == \
        "siblings named alike: one household, one given-name character apart, born on other days"
    assert guards.reason_to_keep_apart(older, person("黄雷", "lei", "1", "2024-06-04")) is None
    # a placeholder beside another name is a sibling too, beside the same name it is the same child
    assert guards.reason_to_keep_apart(person("郑丽兰", "li lan", "2", "2023-11-09"),
                                       person("郑子蓉", "zi rong", "2", "2023-01-01")) is not None
    assert guards.reason_to_keep_apart(person("郑丽兰", "li lan", "2", "2023-11-09"),
                                       person("郑丽兰", "li lan", "2", "2023-01-01")) is None


def test_a_sex_mismatch_beside_one_valid_id_yields_to_a_lunar_birthday_or_a_character_dropped_but_not_to_a_sibling():
    """The record without an ID: its birth date the elderly's lunar birthday beside the ID's own, or its name the
    ID's with a given-name character dropped or added, still one person; another year, or more than 60 days off,
    is a brother or sister."""
    hes = an_id("1948-08-13", 117)  # sequence odd: male
    with_id = person("叶建晨", "jian chen", "2", "1948-07-05", hes)  # sex miskeyed, lunar date
    lunar = person("叶建晨", "jian chen", "1", "1948-07-05")
    why, yielded = guards.decision(with_id, lunar)
    assert why is None and yielded.startswith("sex differs, ID parity says male")
    assert guards.reason_to_keep_apart(with_id, {**lunar, "birth_date": "1948-10-20"}) is not None  # 68 days
    assert guards.reason_to_keep_apart(with_id, person("叶建晨", "jian chen", "1", "1950-08-13")) is not None
    hers = an_id("1970-09-30", 100)  # sequence even: female
    woman = person("黄晶", "jing", "2", "1970-09-30", hers)
    assert guards.reason_to_keep_apart(woman, person("黄安晶", "an jing", "1", "1970-09-30")) is None
    # a brother named alike, born on another day; or the same day, named in a pattern: the guard holds
    assert guards.reason_to_keep_apart(woman, person("黄安晶", "an jing", "1", "1972-05-03")) is not None
    assert guards.reason_to_keep_apart(woman, person("黄明", "ming", "1", "1970-09-30")) is not None


def test_without_any_id_a_sex_mismatch_yields_to_two_digits_swapped_like_one_typed_wrong():
    a = person("吴建涛", "jian tao", "2", "2020-11-30")
    assert guards.reason_to_keep_apart(a, person("吴建涛", "jian tao", "1", "2020-11-03")) is None
    assert guards.reason_to_keep_apart(a, person("吴建涛", "jian tao", "1", "2020-03-11")) == "different sex"


def test_siblings_named_alike_yield_to_a_lunar_birthday_or_the_date_one_records_own_id_gives():
    elder = person("陈婷静", "ting jing", "2", "1948-05-16")
    why, yielded = guards.decision(elder, person("陈婷", "ting", "2", "1948-06-13"))  # 28 days: lunar
    assert why is None and "lunar" in yielded
    assert guards.reason_to_keep_apart(elder, person("陈婷", "ting", "2", "1948-09-20")) == \
        "siblings named alike: one household, one given-name character apart, born on other days"
    assert guards.reason_to_keep_apart(elder, person("陈婷", "ting", "2", "1949-06-13")) is not None
    # born after 1970: another day is a sibling, unless the one valid ID gives the other record's date as its own
    boy = person("何新林", "xin lin", "1", "2015-04-02", an_id("2015-04-29", 15))
    why, yielded = guards.decision(boy, person("何林", "lin", "1", "2015-04-29"))
    assert why is None and "valid ID gives the other's birth date" in yielded
    older = person("黄雨雷", "yu lei", "1", "2024-06-04", an_id("2024-06-04", 17))
    assert guards.reason_to_keep_apart(older, person("黄雷", "lei", "1", "2024-02-10")) == \
        "siblings named alike: one household, one given-name character apart, born on other days"


def test_twins_yield_to_one_valid_id_giving_their_birth_date_and_sex_but_not_to_a_guardians_or_two_ids():
    """林晓明 typed 林晓 at one clinic and 林明 at another, both under his own valid ID: not twins. Twins carry two
    IDs; under a parent's ID (a generation off their birth date) or an ID of the other sex they stay apart."""
    his = an_id("2010-07-21", 111)
    a, b = person("林晓", "xiao", "1", "2010-07-21", his), person("林明", "ming", "1", "2010-07-21", his)
    why, yielded = guards.decision(a, b)
    assert why is None and "one valid ID giving that birth date and sex" in yielded
    twin = person("林晓亮", "xiao liang", "1", "2010-07-21", an_id("2010-07-21", 113))
    assert guards.reason_to_keep_apart(person("林晓明", "xiao ming", "1", "2010-07-21", his), twin) == \
        "different valid ID numbers"
    assert guards.reason_to_keep_apart(b, {**twin, "id18": None, "id_valid": False}) == \
        "twins: same birth date and household, different given names"
    mothers = an_id("1984-02-11", 124)
    assert guards.reason_to_keep_apart({**a, "id18": mothers}, {**b, "id18": mothers}) == \
        "twins: same birth date and household, different given names"
    hers = an_id("2010-07-21", 112)
    assert guards.reason_to_keep_apart({**a, "id18": hers}, {**b, "id18": hers}) == \
        "twins: same birth date and household, different given names"


def test_without_any_id_a_sex_mismatch_yields_to_a_first_of_the_month_agreeing_on_the_month_not_to_1_january():
    """A 1st of the month (a real birthday, or a placeholder for the month) agreeing on the month leaves no room
    for a sibling; 1 January claims only the year, and another month is another child."""
    a = person("何怡秀", "yi xiu", "2", "2024-05-01")
    why, yielded = guards.decision(a, person("何怡秀", "yi xiu", "1", "2024-05-01"))
    assert why is None and yielded.startswith("sex differs, no ID to say which")
    assert guards.reason_to_keep_apart(person("高嘉莉", "jia li", "2", "2023-10-01"),
                                       person("高嘉莉", "jia li", "1", "2023-10-02")) is None
    assert guards.reason_to_keep_apart(a, person("何怡秀", "yi xiu", "1", "2024-05-21")) is None
    assert guards.reason_to_keep_apart(a, person("何怡秀", "yi xiu", "1", "2024-08-21")) == "different sex"
    assert guards.reason_to_keep_apart(person("王龙", "long", "2", "2024-01-01"),
                                       person("王龙", "long", "1", "2024-01-01")) == "different sex"
    assert guards.reason_to_keep_apart(a, person("何怡", "yi", "1", "2024-05-01")) == "different sex"
