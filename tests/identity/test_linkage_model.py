"""The model's SQL: the reviewed parameters file and the code agree, and the fast edit-distance levels find
exactly the pairs the textbook functions would."""

from __future__ import annotations

import json
import random

import duckdb
import pytest

from countyhealth.identity import model


def test_the_reviewed_model_file_holds_the_codes_comparisons():
    """Retraining writes the code's comparisons; the reviewed file must hold the same SQL, level for level, or the
    pipeline would score with levels the code no longer describes."""
    saved = json.loads(model.MODEL_PATH.read_text(encoding="utf-8"))
    from_code = [[lvl["sql_condition"] for lvl in c.get_comparison("duckdb").as_dict()["comparison_levels"]]
                 for c in model.comparisons()]
    assert [[lvl["sql_condition"] for lvl in c["comparison_levels"]] for c in saved["comparisons"]] == from_code
    assert [r["blocking_rule"] for r in model.load_settings()["blocking_rules_to_generate_predictions"]] == \
        model.BLOCKING_RULES


def _typo(text: str, rng: random.Random) -> str:
    if not text:
        return rng.choice("0123456789")
    i = rng.randrange(len(text))
    kind = rng.choice(["sub", "swap", "drop", "add", "two"])
    if kind == "sub":
        return text[:i] + rng.choice("0123456789X") + text[i + 1:]
    if kind == "swap" and i < len(text) - 1:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == "drop":
        return text[:i] + text[i + 1:]
    if kind == "add":
        return text[:i] + rng.choice("0123456789") + text[i:]
    return _typo(_typo(text, rng), rng)


def test_one_keystroke_finds_what_damerau_levenshtein_finds():
    rng = random.Random(3)
    pairs = []
    for _ in range(20000):
        a = "".join(rng.choice("0123456789") for _ in range(rng.choice([4, 7, 10, 15, 17, 18])))
        pairs.append((a, _typo(a, rng) if rng.random() < 0.8 else a[::-1]))
    pairs += [(None, "123"), ("123", None), ("", ""), ("12", "21"), ("1", "")]
    con = duckdb.connect()
    con.execute("CREATE TABLE p (id18_l VARCHAR, id18_r VARCHAR)")
    con.executemany("INSERT INTO p VALUES (?, ?)", pairs)
    fast, textbook, disagree = con.execute(
        f"SELECT count(*) FILTER (WHERE {model.one_keystroke('id18')}), "
        "count(*) FILTER (WHERE damerau_levenshtein(id18_l, id18_r) = 1), "
        f"count(*) FILTER (WHERE coalesce({model.one_keystroke('id18')}, false) "
        "<> coalesce(damerau_levenshtein(id18_l, id18_r) = 1, false)) FROM p").fetchone()
    assert disagree == 0 and fast == textbook > 5000
    substituted = con.execute(
        f"SELECT count(*) FILTER (WHERE coalesce({model._differing_characters('id18')} = 1, false) <> "
        "coalesce(length(id18_l) = length(id18_r) AND levenshtein(id18_l, id18_r) = 1, false)) FROM p").fetchone()[0]
    assert substituted == 0


def test_u_leaves_out_the_matches_among_random_pairs():
    """Random pairs hold λ·m matches at each level: a level only matches reach (the same ID) is left with what
    sampling noise allows, not λ·m; a level strangers reach often keeps its u."""
    settings = {"probability_two_random_records_match": 1e-4, "comparisons": [{"comparison_levels": [
        {"is_null_level": True, "sql_condition": "x IS NULL"},
        {"m_probability": 0.9, "u_probability": 0.9e-4},  # observed ≈ λ·m: all matches
        {"m_probability": 0.05, "u_probability": 0.2},
        {"m_probability": 0.05, "u_probability": 0.8 - 0.9e-4},
    ]}]}
    levels = model.u_without_matches(settings, 1e6)["comparisons"][0]["comparison_levels"][1:]
    u = [lvl["u_probability"] for lvl in levels]
    assert u[0] == pytest.approx(90 ** 0.5 / 1e6, rel=0.01)  # √90 pairs of a million, not 90
    assert u[1] == pytest.approx(0.2, rel=0.01) and sum(u) == pytest.approx(1.0)


# (left, right, most words shared?) — addresses written in words, as a register or another country's file holds them
WORD_ADDRESS_PAIRS = [
    ("12 smith street kingston 2604 act", "kingston act 2604 smith street 12", True),  # another order
    ("mackiecrescent mount cannan 6025 vic", "mackie crescent kindilan mount annan 6025 vic", True),  # typed words
    ("aspinal ls treet nyal west 6060 vic", "aspinall street dma offices (cnr wales s street nyah west 6060 vic", True),
    ("12 smith street kingston 2604 act", "21 smith street kingston", True),
    ("12 smith street kingston 2604 act", "14 jones road belconnen 2617 act", False),  # strangers share "act"
    ("10 main street 2000 nsw", "20 main street 3000 nsw", False),  # numbers count only exactly: 3 of 5 words
    ("1 main st", "1 main st", True),
    ("浙江省某县城关镇南街12号", "浙江省某县城关镇南街12号", False),  # no words: the Chinese levels decide
    ("12 smith street", None, False),
]


def test_most_words_shared_counts_words_in_any_order_and_one_letter_off():
    con = duckdb.connect()
    con.execute("CREATE TABLE p (address_text_l VARCHAR, address_text_r VARCHAR, expected BOOLEAN)")
    con.executemany("INSERT INTO p VALUES (?, ?, ?)", WORD_ADDRESS_PAIRS)
    got = con.execute(f"SELECT address_text_l, address_text_r, coalesce({model.MOST_WORDS_SHARED.format(col='address_text')}"
                      ", false), expected FROM p").fetchall()
    assert [g[:3] for g in got] == [g[:2] + (g[3],) for g in got]


def _level_reached(comparison: str, left: dict, right: dict) -> str:
    """The label of the first level of ``comparison`` (the model's DuckDB SQL) the pair reaches, as Splink does."""
    comp = next(c for c in model.load_settings()["comparisons"] if c["output_column_name"] == comparison)
    cols = sorted(set(left) | set(right))
    con = duckdb.connect()
    try:
        select = ", ".join(f"?::VARCHAR AS {c}_l, ?::VARCHAR AS {c}_r" for c in cols)
        values = [v for c in cols for v in (left.get(c), right.get(c))]
        con.execute(f"CREATE TABLE p AS SELECT {select}", values)
        for level in comp["comparison_levels"]:
            sql = level["sql_condition"]
            if sql.strip().upper() == "ELSE" or con.execute(f"SELECT ({sql}) FROM p").fetchone()[0]:
                return level.get("label_for_charts") or sql
    finally:
        con.close()
    raise AssertionError("no level reached")


def _name(name: str) -> dict:
    from countyhealth.standardise import person as std

    pinyin = std.name_pinyin(name)
    return {"name_std": name, "name_pinyin": pinyin, "surname_pinyin": pinyin.split()[0],
            "given_pinyin": " ".join(pinyin.split()[1:]), "name_fuzzy": std.fuzzy_pinyin(pinyin),
            "name_words": " ".join(sorted(pinyin.split()))}


@pytest.mark.parametrize("a, b, level", [
    ("林晓明", "林明", "one given-name character dropped or added"),
    ("林明", "林明华", "one given-name character dropped or added"),
    ("林晓明", "林小", "one given-name syllable dropped or added (pinyin)"),  # 明 dropped, 晓 typed by ear
    ("林晓明", "林晓亮", "given name the same"),  # not: a twin's name in a pattern is no dropped character
    ("林明", "陈明华", "All other comparisons"),  # another surname
])
def test_name_levels_know_a_given_name_character_dropped_or_added(a, b, level):
    reached = _level_reached("name", _name(a), _name(b))
    assert reached == level or (level == "given name the same" and "dropped" not in reached), (a, b, reached)


@pytest.mark.parametrize("a, b, level", [
    ("1948-06-17", "1948-06-17", "exact (not on the 1st)"),
    ("1948-01-01", "1948-01-01", "same 1 January (a placeholder: the year only)"),
    ("1948-06-01", "1948-06-01", "same 1st of a month (perhaps a placeholder: year and month)"),
    ("1948-01-01", "1948-09-23", "same year, one a 1 January placeholder"),
    ("1948-01-21", "1948-01-01", "same year, one a 1 January placeholder"),  # never a one-keystroke "day" match
    ("1948-06-01", "1948-06-23", "same year and month, one a 1st-of-month placeholder"),
    ("1948-06-17", "1948-06-18", "one digit typed wrong, or two swapped"),
    ("1948-01-01", "1949-01-01", "one digit typed wrong, or two swapped"),
])
def test_placeholder_birth_dates_agree_on_the_year_or_month_never_on_the_day(a, b, level):
    left = {"birth_date": a, "birth_year": a[:4]}
    right = {"birth_date": b, "birth_year": b[:4]}
    assert _level_reached("birth_date", left, right) == level


def test_the_model_weighs_a_shared_1_january_below_a_shared_real_birthday():
    """The model learns that "01-01" is weak evidence: strangers share a placeholder far more often than a date."""
    comp = next(c for c in model.load_settings()["comparisons"] if c["output_column_name"] == "birth_date")
    weight = {lv.get("label_for_charts"): lv["m_probability"] / lv["u_probability"]
              for lv in comp["comparison_levels"] if not lv.get("is_null_level")}
    assert weight["same 1 January (a placeholder: the year only)"] < weight["exact (not on the 1st)"]
    assert weight["same year, one a 1 January placeholder"] < weight["exact (not on the 1st)"]
