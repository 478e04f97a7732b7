"""The Fellegi–Sunter model (Splink 5): comparisons suited to Chinese person records, blocking rules, training.

Comparisons (each a Splink comparison with its own levels; SQL runs in Splink's DuckDB, or Spark):

- name: exact (simplified, spaces removed) · same pinyin (homophones typed by ear: 伟/玮, traditional
  characters) · same fuzzy pinyin (zh/z, n/l, ang/an … as southern clerks hear them) · same words in another
  order (张伟 / "Wei Zhang") · pinyin Jaro-Winkler ≥ 0.9 · given name the same;
- name, also: one given-name character dropped or added (characters: 林晓明 / 林明) · one syllable dropped or
  added (pinyin: 林晓明 / 林小), before Jaro-Winkler;
- birth date: exact (not on the 1st) · the same 1 January · the same 1st of a month (placeholders: agreement on the
  year, or year and month, never on the day — the model learns how weak) · same year, one a 1 January placeholder ·
  same year and month, one a 1st-of-month placeholder · one digit typed wrong or two swapped · month and day
  swapped · within 60 days (a lunar birthday given instead of the solar one, or the reverse) · same year;
- ID number (18 digits after normalising 15-digit IDs and lower-case x; any other identifier in its normalised
  text): exact · one digit substituted · adjacent digits transposed or one dropped · same region and birth date
  (the first 14 characters);
- phone, health-record number (17 digits, the public-health system's key), sex: exact;
- address: same household (township, village, house number) · same village · same township · same text · text
  Jaro-Winkler ≥ 0.9 · most words shared, a word one letter off counting (the last three for addresses that
  name no township, or are not Chinese).

Training (:func:`train`) is Splink's recipe — λ from deterministic rules, u from random pairs, m by EM — with u
then cleared of the matches among the random pairs (:func:`u_without_matches`).

Blocking rules were chosen by counting candidate pairs (`countyhealth identity blocking`, bench/bench_identity.py)
and the true pairs each adds: surname alone explodes (陈 and 林 are a quarter of the county), so every rule pairs a
strong key with a second one. A rule on the ID's first 14 characters (region and birth date) was dropped: at 1M
records it made 11.6M of 18.2M pairs — 64% of scoring — for 4 true pairs no other rule found. The house number
pairs with the birth date, the household with the name. Nine rules key on addresses written in words (each key
of the person with number + street, and with postcode + region); Chinese addresses leave those keys empty, and a
rule whose keys no record carries is not run (``engine.score``), so they cost the county nothing.

The trained parameters (m and u probabilities, λ) are ``identity/model.json``: reviewed, versioned in git,
re-estimated by ``countyhealth identity retrain`` (EM on the warehouse's own records).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("model.json")

BLOCKING_RULES = [
    "l.id18 = r.id18",
    "l.health_record_number = r.health_record_number",
    "l.birth_date = r.birth_date AND l.surname_pinyin = r.surname_pinyin",
    "l.name_pinyin = r.name_pinyin AND l.birth_year = r.birth_year",
    "l.name_fuzzy = r.name_fuzzy AND l.birth_year = r.birth_year",
    # a surname typed differently (or changed): the given name and the whole birth date. Keyed on month and day
    # alone it made 3.2M pairs at 1M records and found nothing the other rules missed
    "l.given_pinyin = r.given_pinyin AND l.birth_date = r.birth_date",
    "l.phone = r.phone AND l.birth_year = r.birth_year",
    "l.name_pinyin = r.name_pinyin AND l.phone = r.phone",
    # the house with the birth date or the name: a mistyped ID and birth date, or a mistyped ID and name, still
    # leave them. The name keys on the whole household (township, village, number): on the house number alone it
    # made 70× the pairs (200k records: 15,584 vs 221) for the same 10 true ones
    "l.birth_date = r.birth_date AND l.house_number = r.house_number",
    "l.name_pinyin = r.name_pinyin AND l.household_key = r.household_key",
    # addresses in words (Chinese addresses leave these keys empty): each key of the person — the name in any
    # word order, the family name, the given name, the birth date — with each key of the place — number and
    # street (address_head), postcode and region (address_tail); and the place alone, both keys
    *[f"l.{person} = r.{person} AND l.{place} = r.{place}"
      for place in ("address_tail", "address_head")
      for person in ("name_words", "surname_pinyin", "given_pinyin", "birth_date")],
    "l.address_head = r.address_head AND l.address_tail = r.address_tail",
]


def rule_columns(rule: str) -> set[str]:
    """The feature columns a blocking rule joins on (``l.X``, ``l."X"``, or Spark's ``l.`X```)."""
    return set(re.findall(r'\bl\.[`"]?(\w+)[`"]?', rule))


def rules_carried(rules: list[str], frame) -> list[str]:
    """The blocking rules whose every key some record of ``frame`` carries. A rule on a key no record of the
    night carries pairs nobody (every pair holds a new record) yet costs a join over every record: a county's
    records leave the Latin-address keys empty."""
    columns = set().union(*map(rule_columns, rules)) if rules else set()
    carried = {c for c in columns if c in frame and frame[c].notna().any()}  # each column once: 10 ms a column
    return [r for r in rules if rule_columns(r) <= carried]


def _differing_characters(col: str) -> str:
    """Hamming distance of the two values, NULL when their lengths differ or they are empty (DuckDB's ``hamming``
    refuses both; CASE evaluates it only where it can)."""
    return f"CASE WHEN length({col}_l) = length({col}_r) AND length({col}_l) > 0 THEN hamming({col}_l, {col}_r) END"


def one_keystroke(col: str) -> str:
    """Damerau-Levenshtein distance 1 (one character substituted, dropped or added, or two adjacent swapped),
    computed only where it can be 1. DuckDB's ``damerau_levenshtein`` costs 15–25× ``hamming`` and does not
    short-circuit inside AND/OR, so on every pair it took a third of all scoring; here it runs only on values
    two characters apart (a swap), and ``levenshtein`` only on values one character longer."""
    diff = _differing_characters(col)
    return (f"CASE WHEN {diff} = 1 THEN true WHEN {diff} = 2 THEN damerau_levenshtein({col}_l, {col}_r) = 1 "
            f"WHEN abs(length({col}_l) - length({col}_r)) = 1 THEN levenshtein({col}_l, {col}_r) = 1 ELSE false END")


def _words(side: str) -> str:
    return f"list_distinct(str_split({{col}}_{side}, ' '))"


def _found(side: str, other: str) -> str:
    """How many of one side's words the other side holds, or holds one letter off (words of 4+ letters:
    "annan"/"cannan", "treet"/"street"; a number — house, postcode — or a short code must be exact: one digit
    off is another house). A CASE, not AND/OR: DuckDB evaluates both sides of those, and Levenshtein on every
    pair of words cost 10× the level."""
    near = ("CASE WHEN v = w THEN true WHEN length(w) >= 4 AND length(v) >= 4 AND abs(length(w) - length(v)) <= 1 "
            "AND NOT regexp_matches(w || v, '[0-9]') THEN levenshtein(w, v) <= 1 ELSE false END")
    return (f"array_length(list_filter({_words(side)}, lambda w: "
            f"array_length(list_filter({_words(other)}, lambda v: {near})) > 0))")


# written in functions sqlglot carries over to Spark (list_filter → FILTER, array_length → SIZE, str_split → SPLIT,
# DuckDB's lambda x: … → x -> …). Only for text with spaces (Chinese addresses never pay for it) sharing two
# words exactly: the lambdas cost 8× a plain intersection, and strangers rarely share two words
_EXACT = f"array_length(array_intersect({_words('l')}, {_words('r')}))"
_SHORTER = f"least(array_length({_words('l')}), array_length({_words('r')}))"
_SHARED = (f"CASE WHEN array_length({_words('l')}) <= array_length({_words('r')}) THEN {_found('l', 'r')} "
           f"ELSE {_found('r', 'l')} END")
# 3+ words and two-thirds of the shorter address, in one comparison: the count is computed once
MOST_WORDS_SHARED = (f"CASE WHEN strpos({{col}}_l, ' ') > 0 AND strpos({{col}}_r, ' ') > 0 AND {_EXACT} >= 2 "
                     f"THEN {_SHARED} >= greatest(3, ceil(2 * {_SHORTER} / 3)) ELSE false END")


ONE_CHARACTER_DROPPED = (
    "abs(length(name_std_l) - length(name_std_r)) = 1 AND least(length(name_std_l), length(name_std_r)) >= 2 AND "
    "substr(name_std_l, 1, 1) = substr(name_std_r, 1, 1) AND levenshtein(name_std_l, name_std_r) = 1")


def _syllables(col: str) -> str:
    return f"(length({col}) - length(replace({col}, ' ', '')))"


# one given name's syllables inside the other's, one more of them (the dropped one first, last or between:
# 晓明 → 明 or 晓; 明 → 明华). Spaces as word boundaries: "ming" is not found inside "mingh"
ONE_SYLLABLE_DROPPED = (
    f"surname_pinyin_l = surname_pinyin_r AND abs({_syllables('given_pinyin_l')} - {_syllables('given_pinyin_r')}) = 1"
    " AND (strpos(' ' || given_pinyin_l || ' ', ' ' || given_pinyin_r || ' ') > 0"
    " OR strpos(' ' || given_pinyin_r || ' ', ' ' || given_pinyin_l || ' ') > 0)")


def _levels():
    import splink.comparison_level_library as cll

    return cll


def comparisons() -> list:
    import splink.comparison_library as cl

    cll = _levels()
    name = cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            cll.NullLevel("name_std"),
            cll.ExactMatchLevel("name_std"),
            cll.ExactMatchLevel("name_pinyin").configure(label_for_charts="same pinyin (homophone, traditional)"),
            cll.ExactMatchLevel("name_fuzzy").configure(label_for_charts="same fuzzy pinyin (zh/z, n/l, ang/an)"),
            cll.ExactMatchLevel("name_words").configure(label_for_charts="same words in another order"),
            # a given-name character dropped or added (林晓明 typed 林明, 林明 typed 林明华): on the characters, then
            # on the pinyin syllables (dropped and another typed by ear: 林晓明 / 林小) — before Jaro-Winkler, which
            # scores "lin xiao ming" / "lin ming" below 0.9
            cll.CustomLevel(ONE_CHARACTER_DROPPED, label_for_charts="one given-name character dropped or added"),
            cll.CustomLevel(ONE_SYLLABLE_DROPPED,
                            label_for_charts="one given-name syllable dropped or added (pinyin)"),
            cll.JaroWinklerLevel("name_pinyin", 0.9),
            # not the surname alone: siblings share it; a given name kept under another surname is a married
            # name or a mistyped surname
            cll.ExactMatchLevel("given_pinyin").configure(label_for_charts="given name the same"),
            cll.ElseLevel(),
        ],
    )
    birth = cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_date"),
            # a placeholder (1 January: the year only; the 1st: the year and month) is never agreement on the day:
            # its agreement levels are apart from the exact one, and the model learns how weak they are
            cll.CustomLevel("birth_date_l = birth_date_r AND substr(birth_date_l, 9, 2) <> '01'",
                            label_for_charts="exact (not on the 1st)"),
            cll.CustomLevel("birth_date_l = birth_date_r AND substr(birth_date_l, 6, 5) = '01-01'",
                            label_for_charts="same 1 January (a placeholder: the year only)"),
            cll.CustomLevel("birth_date_l = birth_date_r",
                            label_for_charts="same 1st of a month (perhaps a placeholder: year and month)"),
            cll.CustomLevel("(substr(birth_date_l, 6, 5) = '01-01' OR substr(birth_date_r, 6, 5) = '01-01') AND "
                            "substr(birth_date_l, 1, 4) = substr(birth_date_r, 1, 4)",
                            label_for_charts="same year, one a 1 January placeholder"),
            cll.CustomLevel("(substr(birth_date_l, 9, 2) = '01' OR substr(birth_date_r, 9, 2) = '01') AND "
                            "substr(birth_date_l, 1, 7) = substr(birth_date_r, 1, 7)",
                            label_for_charts="same year and month, one a 1st-of-month placeholder"),
            cll.CustomLevel(one_keystroke("birth_date"), label_for_charts="one digit typed wrong, or two swapped"),
            cll.CustomLevel("substr(birth_date_l, 1, 4) = substr(birth_date_r, 1, 4) AND "
                            "substr(birth_date_l, 6, 2) = substr(birth_date_r, 9, 2) AND "
                            "substr(birth_date_l, 9, 2) = substr(birth_date_r, 6, 2)",
                            label_for_charts="month and day swapped"),
            # the elderly often give their lunar birthday, 3–8 weeks earlier than the solar one; children's
            # births are registered on certificates, so the window only applies to people born before 1970
            cll.CustomLevel("birth_year_l < '1970' AND birth_year_r < '1970' AND abs(date_diff('day', "
                            "try_cast(birth_date_l AS DATE), try_cast(birth_date_r AS DATE))) <= 60",
                            label_for_charts="within 60 days, born before 1970 (lunar birthday)"),
            cll.ExactMatchLevel("birth_year").configure(label_for_charts="same year"),
            cll.ElseLevel(),
        ],
    )
    id_number = cl.CustomComparison(
        output_column_name="id18",
        comparison_levels=[
            cll.NullLevel("id18"),
            cll.ExactMatchLevel("id18"),
            cll.CustomLevel(f"{_differing_characters('id18')} = 1", label_for_charts="one digit substituted"),
            cll.CustomLevel(one_keystroke("id18"), label_for_charts="adjacent digits transposed, or one dropped"),
            cll.CustomLevel("substr(id18_l, 1, 14) = substr(id18_r, 1, 14)",
                            label_for_charts="same region and birth date"),
            cll.ElseLevel(),
        ],
    )
    phone = cl.ExactMatch("phone")
    hrn = cl.ExactMatch("health_record_number")
    sex = cl.ExactMatch("sex")
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.CustomLevel("address_text_l IS NULL OR address_text_r IS NULL").configure(is_null_level=True),
            cll.ExactMatchLevel("household_key").configure(label_for_charts="same household"),
            cll.ExactMatchLevel("village"),
            cll.ExactMatchLevel("township"),
            # addresses that name no township (or are not Chinese): the text itself
            cll.ExactMatchLevel("address_text"),
            cll.JaroWinklerLevel("address_text", 0.9),
            # words in another order, dropped or mistyped (Chinese addresses have no spaces: never here)
            cll.CustomLevel(MOST_WORDS_SHARED.format(col="address_text"),
                            label_for_charts="most words shared (3+, two-thirds of the shorter)"),
            cll.ElseLevel(),
        ],
    )
    return [name, birth, id_number, phone, hrn, sex, address]


def settings_creator():
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=comparisons(),
        blocking_rules_to_generate_predictions=BLOCKING_RULES,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=True,
    )


def train(frame, *, max_pairs: float = 3e6, seed: int = 42) -> dict:
    """EM estimation of the model on a feature frame; returns Splink's settings dict (with parameters)."""
    from splink import DuckDBAPI, Linker, block_on

    db = DuckDBAPI()
    linker = Linker(db.register(frame, dataset_display_name="person_records"), settings_creator())
    linker.training.estimate_probability_two_random_records_match(
        ["l.id18 = r.id18", "l.health_record_number = r.health_record_number"], recall=0.75)
    # every chunk sampled (no early stop): u_without_matches needs the number of pairs behind each u
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed, min_count_per_level=None)
    # EM blocked on the ID first: pairs sharing an ID are nearly all matches, which anchors the m of names,
    # birth dates, phones and addresses; then on name + birth date, which anchors the ID's own levels.
    # (Blocking EM on name alone lets households — shared phone and address — pass for matches.)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("id18"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name_pinyin", "birth_date"))
    return floor_probabilities(u_without_matches(linker.misc.save_model_to_json(), max_pairs))


def u_without_matches(settings: dict, sampled_pairs: float) -> dict:
    """u as the share of *non-matching* pairs at each level. Splink takes u from random pairs as if none matched;
    a fraction λ of them do, so a level strangers almost never reach (the same ID) gets u ≈ λ·m — its weight
    capped by the file's duplication rate rather than by how rare the value is (10,000 records with one
    duplicate each: the same 7-digit number weighed like the same birth date). Random pairs are the mixture
    λ·m + (1 − λ)·u, so u = (observed − λ·m) / (1 − λ) once EM has m; a level the sample cannot tell from its
    matches keeps what sampling noise allows: the standard error of its count (√k of k pairs, at least one)."""
    lam = settings.get("probability_two_random_records_match") or 0.0
    n = max(sampled_pairs, 1.0)
    for comp in settings.get("comparisons", []):
        levels = [lvl for lvl in comp["comparison_levels"]
                  if not lvl.get("is_null_level") and lvl.get("u_probability") is not None]
        for lvl in levels:
            observed, m = lvl["u_probability"], lvl.get("m_probability") or 0.0
            noise = max(1.0, (observed * n) ** 0.5) / n
            lvl["u_probability"] = max((observed - lam * m) / (1.0 - lam), min(noise, observed))
        total = sum(lvl["u_probability"] for lvl in levels)
        for lvl in levels:
            lvl["u_probability"] /= total
    return settings


M_FLOOR = 0.002  # no level may veto a match outright: people move, change phones, get typed wrong


def floor_probabilities(settings: dict, floor: float = M_FLOOR) -> dict:
    """EM on clean-ish data puts m ≈ 0 on disagreement levels, which would make any one disagreement (a new
    address, another phone) overrule an identical ID and name. Floor m and u, then renormalise."""
    for comp in settings.get("comparisons", []):
        levels = [lvl for lvl in comp["comparison_levels"] if not lvl.get("is_null_level")]
        for key in ("m_probability", "u_probability"):
            low = floor if key == "m_probability" else 1e-7
            # a level EM never saw (None) gets the floor too: rare, not impossible
            values = [max(v if v is not None else low, low) for v in (lvl.get(key) for lvl in levels)]
            total = sum(values)
            for lvl, v in zip(levels, values):
                lvl[key] = v / total
    return settings


def load_settings(path: Path | None = None) -> dict:
    """The saved parameters, with the blocking rules of this module: which pairs to score is code, reviewed with
    it, and a model file trained under older rules must not bring them back."""
    path = path or MODEL_PATH
    if not path.exists():
        raise FileNotFoundError(f"identity model {path.name} not found: run `countyhealth identity retrain`")
    settings = floor_probabilities(json.loads(path.read_text(encoding="utf-8")))
    dialect = settings.get("sql_dialect", "duckdb")
    settings["blocking_rules_to_generate_predictions"] = [{"blocking_rule": rule, "sql_dialect": dialect}
                                                          for rule in BLOCKING_RULES]
    return settings


# functions DuckDB has and Spark lacks, by the name Splink's similarity jar registers on Spark; hamming is only ever
# asked of values of equal length, where Levenshtein distance 1 (or 2 for a swap) finds the same pairs
_SPARK_FUNCTIONS = {"JAROWINKLER_SIMILARITY(": "jaro_winkler(", "JARO_WINKLER_SIMILARITY(": "jaro_winkler(",
                    "HAMMING(": "levenshtein("}


def settings_for_dialect(settings: dict, dialect: str) -> dict:
    """The saved model (written in DuckDB's SQL) with every blocking rule and comparison level translated to
    ``dialect`` by sqlglot. Splink 5 reads a level's SQL in the backend's dialect: on Spark, DuckDB's
    ``"name_l" = "name_r"`` would compare two string literals and silently score every pair as a non-match."""
    import copy

    import sqlglot

    source = settings.get("sql_dialect", "duckdb")
    if dialect == source:
        return settings

    def translate(sql: str) -> str:
        out = sqlglot.transpile(sql, read=source, write=dialect)[0]
        if dialect == "spark":
            for name, spark_name in _SPARK_FUNCTIONS.items():
                out = out.replace(name, spark_name)
        return out

    settings = copy.deepcopy(settings)
    settings["sql_dialect"] = dialect
    for rule in settings.get("blocking_rules_to_generate_predictions", []):
        rule["blocking_rule"] = translate(rule["blocking_rule"])
        rule["sql_dialect"] = dialect
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level["sql_condition"].strip().upper() != "ELSE":
                level["sql_condition"] = translate(level["sql_condition"])
    return settings


def save_settings(settings: dict, path: Path | None = None) -> Path:
    path = path or MODEL_PATH
    path.write_text(json.dumps(settings, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path
