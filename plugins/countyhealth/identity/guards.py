"""Hard rules that keep two residents apart whatever the score says (a wrong merge puts one person's results
in another's chart; a missed link only costs a repeated test).

- **different valid IDs**: two valid 18-digit IDs that differ never link automatically — unless they differ by
  one substituted digit or one transposition *and* name (pinyin), birth date and sex all agree (then it is
  a typo that happened to keep a valid check character);
- **different sex**: both recorded, different — unless stronger evidence says which record is right: one record's
  own valid ID (its birth date the record's) carries the other's sex in its sequence parity, and the two agree on
  name and birth date (a clerk keyed the wrong sex; a wife's record carrying her husband's ID has her own name and
  birth date, and stays apart); or, with no ID to ask, the same name, the same birth date (not a placeholder) and
  the same household (no parents give two children one name, twins included);
- **twins**: same birth date, same household (address or phone), different given names — unless they carry the
  same valid ID (twins have two), or one given name is the other with a character dropped or added (林晓明 typed
  林明): twins' names differ in a character (林晓明 / 林晓亮), they are not one the other's abbreviation;
- **different generation**: birth years 12+ years apart (an infant filed under a parent's details) — unless the
  two birth dates are one keystroke apart (1985 typed 1958 is a typo, not a parent) or the two carry the same
  ID number (not a placeholder), or the same number of another scheme typed one keystroke wrong;
- **siblings**: one household (address or phone), both born 1970 or later (their dates come from certificates,
  not lunar memory), birth dates 270+ days apart and not one keystroke or a month/day swap apart, neither a
  placeholder for the other (1985-01-01 typed for an unknown day of 1985) — two children of one mother, however
  alike their names sound (林宇 / 林玉);
- a pair a reviewer rejected.

The infant carrying a guardian's ID is handled upstream (:mod:`.features`): an ID whose birth date is a
generation away from the record's own birth date is not used for matching at all.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from countyhealth.standardise import person as std


# what the rules read of a record
COLUMNS = ("id18", "id_valid", "name_std", "name_pinyin", "surname_pinyin", "given_pinyin", "name_fuzzy",
           "birth_date", "birth_year", "sex", "household_key", "phone")

SEX_WORD = {"1": "male", "2": "female"}


def _hamming1(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


def _transposed(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def _same_identifier(a: str | None, b: str | None) -> bool:
    """The same ID number — a resident ID (a guardian's is kept out of matching upstream) or any other scheme's, as
    long as it is not a placeholder (features drop those; checked again here, the guards being the last word):
    a father and a son do not share one."""
    return bool(a) and a == b and not std.is_placeholder(a)


def _identifier_typed_wrong(a: str | None, b: str | None) -> bool:
    """Two numbers of another scheme (not an 18-digit resident ID) one keystroke apart: the same number typed
    wrong. Not for resident IDs: two valid ones are never a keystroke apart (the check character catches it),
    and an invalid one may be a guardian's ID mistyped, whose own birth date could not be checked upstream."""
    return (bool(a) and bool(b) and len(a) != 18 and len(b) != 18 and not std.is_placeholder(a)
            and not std.is_placeholder(b) and _one_keystroke(a, b))


# two children of one mother are born at least this far apart (twins, the same day, have their own rule); a
# record's birth date off by a day or a week is a clerk's error, not a sibling
SIBLINGS_DAYS_APART = 270


def _days_apart(a: str | None, b: str | None) -> int:
    try:
        return abs((dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days)
    except (TypeError, ValueError):
        return 0


def _household(a: dict, b: dict) -> bool:
    return bool((a.get("household_key") and a.get("household_key") == b.get("household_key"))
                or (a.get("phone") and a.get("phone") == b.get("phone")))


def _month_day_swapped(a: str, b: str) -> bool:
    return len(a) == len(b) == 10 and a[:4] == b[:4] and a[5:7] == b[8:10] and a[8:10] == b[5:7]


def _one_keystroke(a: str, b: str) -> bool:
    return _hamming1(a, b) or _transposed(a, b)


def placeholder_for(a: str | None, b: str | None) -> bool:
    """``a`` or ``b`` is a placeholder that the other fills in: an unknown day typed as 1 January of the right year
    (1985-01-01 for 1985-11-20), or as the 1st of the right month (1985-11-01). Either is compared as the year or
    the year and month only, never as agreement on the day."""
    if not a or not b or len(a) != 10 or len(b) != 10 or a == b:
        return False
    if a[:4] == b[:4] and "01-01" in (a[5:], b[5:]):
        return True
    return a[:7] == b[:7] and "01" in (a[8:], b[8:])


def dates_agree(a: str | None, b: str | None) -> bool:
    """The same birth date as far as two records can tell: equal, one keystroke or a month/day swap apart, one a
    placeholder for the other, or within 60 days for people born before 1970 (a lunar birthday)."""
    if not a or not b:
        return False
    return (a == b or _one_keystroke(a, b) or _month_day_swapped(a, b) or placeholder_for(a, b)
            or (a < "1970" and b < "1970" and 0 < _days_apart(a, b) <= 60))


def one_syllable_apart(a: str | None, b: str | None) -> bool:
    """Two given names (pinyin, space-separated syllables) one syllable apart: one dropped or added (xiao ming /
    ming, ming / ming hua) — a character dropped or added by a clerk."""
    if not a or not b:
        return False
    x, y = a.split(), b.split()
    if abs(len(x) - len(y)) != 1:
        return False
    short, long = (x, y) if len(x) < len(y) else (y, x)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def names_agree(a: dict, b: dict) -> bool:
    """The same name as far as two records can tell: the same pinyin or fuzzy pinyin (homophones, traditional
    characters), or the same surname with a given name one syllable longer."""
    if a.get("name_pinyin") and a.get("name_pinyin") == b.get("name_pinyin"):
        return True
    if a.get("name_fuzzy") and a.get("name_fuzzy") == b.get("name_fuzzy"):
        return True
    return (bool(a.get("surname_pinyin")) and a.get("surname_pinyin") == b.get("surname_pinyin")
            and one_syllable_apart(a.get("given_pinyin"), b.get("given_pinyin")))


def _id_sex(id18: str) -> str | None:
    """GB 11643: the 17th character's parity carries sex (odd: male)."""
    return ("1" if int(id18[16]) % 2 else "2") if len(id18) == 18 and id18[16].isdigit() else None


def _id_birth(id18: str) -> str:
    return f"{id18[6:10]}-{id18[10:12]}-{id18[12:14]}"


def sex_yields(a: dict, b: dict) -> str | None:
    """Why a sex mismatch between ``a`` and ``b`` is a clerk's error and not two people (the stronger evidence, as a
    reviewer reads it), or None when it stands."""
    for m, o in ((a, b), (b, a)):
        id18 = m.get("id18")
        if not (m.get("id_valid") and id18) or (o.get("id_valid") and o.get("id18") and o.get("id18") != id18):
            continue
        said = _id_sex(id18)
        if said is None or said == m.get("sex") or said != o.get("sex") or not names_agree(m, o):
            continue
        # the ID is m's own (its birth date m's, or, m's left blank, the other record's) and the two agree
        born = _id_birth(id18)
        mine, theirs = m.get("birth_date"), o.get("birth_date")
        if (dates_agree(mine, born) and (theirs is None or dates_agree(mine, theirs))) or (
                mine is None and dates_agree(theirs, born)):
            return f"sex differs, ID parity says {SEX_WORD[said]}"
    # no ID to ask: the same name to the character, one birth date (not a placeholder) and one household — parents
    # give no two children one name, twins included
    born_a, born_b = a.get("birth_date"), b.get("birth_date")
    if (a.get("name_std") and a.get("name_std") == b.get("name_std") and born_a and born_b
            and (born_a == born_b or _one_keystroke(born_a, born_b)) and "01-01" not in (born_a[5:], born_b[5:])
            and a.get("household_key") and a.get("household_key") == b.get("household_key")):
        return "sex differs, same name, birth date and household"
    return None


def _same_valid_id(a: dict, b: dict) -> bool:
    return bool(a.get("id_valid") and b.get("id_valid") and a.get("id18") and a.get("id18") == b.get("id18"))


def reason_to_keep_apart(a: dict, b: dict) -> str | None:
    """Why records ``a`` and ``b`` (feature rows) must not be auto-linked; None when nothing forbids it."""
    if a.get("id_valid") and b.get("id_valid") and a.get("id18") and b.get("id18") and a["id18"] != b["id18"]:
        typo = _hamming1(a["id18"], b["id18"]) or _transposed(a["id18"], b["id18"])
        same_rest = (a.get("name_pinyin") == b.get("name_pinyin") and a.get("birth_date") == b.get("birth_date")
                     and a.get("sex") == b.get("sex") and a.get("name_pinyin") is not None)
        if not (typo and same_rest):
            return "different valid ID numbers"
    if a.get("sex") and b.get("sex") and a["sex"] != b["sex"] and not sex_yields(a, b):
        return "different sex"
    if (a.get("birth_date") and a.get("birth_date") == b.get("birth_date") and a.get("given_pinyin")
            and b.get("given_pinyin") and a["given_pinyin"] != b["given_pinyin"] and _household(a, b)
            and a.get("name_fuzzy") != b.get("name_fuzzy") and not _same_valid_id(a, b)
            and not one_syllable_apart(a["given_pinyin"], b["given_pinyin"])):
        return "twins: same birth date and household, different given names"
    ya, yb = a.get("birth_year"), b.get("birth_year")
    same_id = _same_identifier(a.get("id18"), b.get("id18"))
    if (ya and yb and ya.isdigit() and yb.isdigit() and abs(int(ya) - int(yb)) >= 12 and not same_id
            and not _one_keystroke(a["birth_date"], b["birth_date"])
            and not _identifier_typed_wrong(a.get("id18"), b.get("id18"))):
        return "born a generation apart"
    if (_household(a, b) and ya and yb and ya >= "1970" and yb >= "1970" and not same_id
            and _days_apart(a.get("birth_date"), b.get("birth_date")) > SIBLINGS_DAYS_APART
            and not _one_keystroke(a["birth_date"], b["birth_date"])
            and not _month_day_swapped(a["birth_date"], b["birth_date"])
            and not placeholder_for(a["birth_date"], b["birth_date"])):
        return "siblings: one household, born months apart"
    return None


def _years(series: pd.Series) -> np.ndarray:
    table = {y: std.year_of(y) for y in series.dropna().unique()}  # a few dozen distinct years
    return series.map(table).to_numpy(dtype=float)


def may_keep_apart(left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
    """Column-wise, for aligned rows of feature frames: True wherever :func:`reason_to_keep_apart` might give a
    reason — a superset (each rule's first condition only), so that only the flagged pairs need the exact,
    row-by-row judgement. Clustering a million records checks hundreds of thousands of pairs; a handful
    are flagged."""
    def col(frame, name):
        return frame[name].to_numpy(dtype=object)

    def present(values):
        return pd.notna(values) & (values != "")

    def differ(a, b):
        return present(a) & present(b) & (a != b)

    valid = (col(left, "id_valid") == True) & (col(right, "id_valid") == True)  # noqa: E712 (None-safe)
    ids = valid & differ(col(left, "id18"), col(right, "id18"))
    sex = differ(col(left, "sex"), col(right, "sex"))
    birth_l, birth_r = col(left, "birth_date"), col(right, "birth_date")
    twins = present(birth_l) & (birth_l == birth_r) & differ(col(left, "given_pinyin"), col(right, "given_pinyin"))
    year_l, year_r = (_years(frame["birth_year"]) for frame in (left, right))
    with np.errstate(invalid="ignore"):
        generation = np.abs(year_l - year_r) >= 12
    household = ((present(col(left, "household_key")) & (col(left, "household_key") == col(right, "household_key")))
                 | (present(col(left, "phone")) & (col(left, "phone") == col(right, "phone"))))
    siblings = household & differ(birth_l, birth_r)
    return ids | sex | twins | generation | siblings
