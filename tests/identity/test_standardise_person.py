"""Person standardisation: names, pinyin keys, IDs, phones, addresses."""

import datetime as dt

import pytest

from countyhealth.standardise import person as std


@pytest.mark.parametrize("raw,expected", [
    ("張 偉", "张伟"), ("林　芳 ", "林芳"), ("ＬＩ明", "LI明"), ("阿依古丽•买买提", "阿依古丽·买买提"),
    ("  ", None), (None, None), ("陳麗", "陈丽"),
])
def test_names_fold_spaces_width_and_traditional_but_keep_the_minority_dot(raw, expected):
    assert std.normalise_name(raw) == expected


@pytest.mark.parametrize("name,pinyin", [
    ("曾国藩", "zeng guo fan"), ("单田芳", "shan tian fang"), ("解缙", "xie jin"), ("仇英", "qiu ying"),
    ("区永", "ou yong"), ("查良镛", "zha liang yong"), ("朴正", "piao zheng"), ("欧阳修", "ou yang xiu"),
])
def test_surnames_are_read_as_surnames(name, pinyin):
    assert std.name_pinyin(name) == pinyin


def test_homophones_share_pinyin_and_southern_confusions_share_fuzzy_pinyin():
    assert std.name_pinyin("陈伟") == std.name_pinyin("陈玮")
    assert std.name_pinyin("林丽") == std.name_pinyin("林莉")
    assert std.name_pinyin("张宁") != std.name_pinyin("章玲")
    assert std.fuzzy_pinyin(std.name_pinyin("张宁")) == std.fuzzy_pinyin(std.name_pinyin("赞林"))


def test_ids_upgrade_15_digits_fold_lowercase_x_and_derive_birth_and_sex():
    s = std.standardise_id("350125800101123")
    assert s.valid and s.was_15 and s.id18 == "350125198001011238" and s.birth_date == dt.date(1980, 1, 1)
    assert s.sex == "1"
    assert std.normalise_id_for_hash("11010519491231002x") == "11010519491231002X"
    bad = std.standardise_id("350125198001011239")
    assert not bad.valid and bad.problem == "check_char" and bad.birth_date is None
    assert std.normalise_id_for_hash("３５０１２５１９８００１０１１２３８") == "350125198001011238"


def test_a_column_of_ids_normalises_for_hashing_as_one_at_a_time():
    values = ["11010519491231002x", "350125800101123", "３５０１２５１９８００１０１１２３８", "350125198001011239",
              " E 1234567 ", "passport-no: ab12", "", None, "350125198013011234", "11010519491231002x"]
    assert std.normalise_ids_for_hash(values) == [std.normalise_id_for_hash(v) if v else None for v in values]


@pytest.mark.parametrize("raw,expected,kind", [
    ("+86 139-1234-5678", "13912345678", "mobile"), ("0086 13912345678", "13912345678", "mobile"),
    ("0591-22334455", "059122334455", "landline"), ("（0591）2233445", "05912233445", "landline"),
    ("12345", None, None), ("２２３３４４５５", "22334455", "landline"),
])
def test_phones(raw, expected, kind):
    assert std.normalise_phone(raw) == expected
    assert std.phone_kind(expected) == kind


def test_addresses_drop_province_city_county_and_find_township_village_house():
    a = std.standardise_address("福建省福州市永泰县樟城镇上溪村12号")
    assert (a.rest, a.township, a.village, a.house_number) == ("樟城镇上溪村12号", "樟城镇", "上溪村", "12")
    b = std.standardise_address("永泰县 嵩口镇 大洋村")
    assert (b.township, b.village, b.house_number) == ("嵩口镇", "大洋村", None)
    c = std.standardise_address("樟城镇东洋村社区3号")
    assert (c.township, c.village) == ("樟城镇", "东洋村")


def test_names_in_latin_letters_keep_their_words_and_read_family_name_last():
    assert std.normalise_name("  Mary-Ann  O'Brien ") == "mary-ann o'brien"
    assert std.split_name("mary-ann o'brien") == ("o'brien", "mary-ann")
    # the words between key neither: one clerk keeps a middle name or splits a family name, another does not
    assert std.split_name("jason mc mullen")[1] == std.split_name("jason mcmullen")[1] == "jason"
    assert std.split_name("anna maria van der berg") == ("berg", "anna")
    # a name typed in pinyin reads the same as the characters
    assert std.name_pinyin(std.normalise_name("Zhang Wei")) == std.name_pinyin("张伟") == "zhang wei"
    assert not std.is_latin("LI明") and std.is_latin("li ming")


def test_addresses_in_words_are_kept_as_text_without_townships():
    a = std.standardise_address("28  Moorehead Place, Goodwood 4701 SA")
    assert a.rest == "28 moorehead place, goodwood 4701 sa" and a.township is None and a.village is None
    assert a.house_number == "28" and std.standardise_address("12a Hill Road").house_number == "12"
    assert std.standardise_address("Hill Road 12").house_number is None  # only a leading number is the house's
