"""The model's SQL: the reviewed parameters file and the code agree, and the fast edit-distance levels find
exactly the pairs the textbook functions would."""

from __future__ import annotations

import json
import random

import duckdb

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
