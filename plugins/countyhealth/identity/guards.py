"""Hard rules that keep two residents apart whatever the score says (a wrong merge puts one person's results
in another's chart; a missed link only costs a repeated test).

- **different valid IDs**: two valid 18-digit IDs that differ never link automatically — unless they differ by
  one substituted digit or one transposition *and* name (pinyin), birth date and sex all agree (then it is
  a typo that happened to keep a valid check character);
- **different sex**: both recorded, different — unless stronger evidence says one record's sex was keyed wrong:
  both carry the same valid ID, whose sequence parity (GB 11643: odd male) agrees with one of them, their birth
  dates agree (or fit the ID's own: blank, one keystroke or a lunar birthday off it) and their names are alike
  (same pinyin, or one given-name character dropped or added); or one carries no valid ID, the other a valid ID
  whose parity agrees with one of them, the names are alike, they share a household and the ID-less birth date
  agrees with the ID's own (a placeholder of it too) or is the elderly's lunar birthday beside it; or neither
  carries one and they share name, household and a birth date (one keystroke off at most; a 1st of the month
  agreeing on the month — within a month no other child of one mother is born — but never 1 January, which
  leaves a year). A twin, a sibling, a parent never carries the same valid ID with an agreeing birth date, and
  opposite-sex twins are not given one name;
- **twins**: same birth date, same household (address or phone), different given names — unless one given name
  is the other with one character dropped or added (林晓明 typed 林明): twins are named in a pattern (晓明 /
  晓亮), not one inside the other; or both records carry one valid ID giving that birth date and sex (林晓明 typed
  林晓 at one clinic and 林明 at another): twins carry two IDs. (Two different valid IDs keep any pair apart, above);
- **different generation**: birth years 12+ years apart (an infant filed under a parent's details) — unless the
  two birth dates are one keystroke apart (1985 typed 1958 is a typo, not a parent) or the two carry the same
  ID number (not a placeholder), or the same number of another scheme typed one keystroke wrong;
- **siblings**: one household (address or phone), both born 1970 or later (their dates come from certificates,
  not lunar memory), birth dates 270+ days apart and not one keystroke or a month/day swap apart — two children
  of one mother, however alike their names sound (林宇 / 林玉);
  a placeholder birth date (1 January, the 1st: :func:`std.birth_date_precision`) agreeing on the year (month)
  is not a date to count days from, when the names are alike;
- **siblings named alike**: one household, one given name the other's with a character dropped or added, birth
  dates that disagree (not a placeholder of each other, not a keystroke apart), no shared ID — 黄雷 / 黄雨雷;
  unless the two dates are one birth: both born before 1970 within 60 days (a lunar birthday), or one record's
  valid ID gives the other's date as its own;
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
COLUMNS = ("id18", "id_valid", "name_std", "name_pinyin", "surname_pinyin", "given_pinyin", "name_fuzzy", "birth_date",
           "birth_year", "sex", "household_key", "phone")


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


def one_character_dropped(a: str | None, b: str | None) -> bool:
    """One name is the other with one given-name character dropped or added (林晓明 / 林明, 林明 / 林明华): the
    same first character (the surname), one character longer, and one deletion apart. Names of 2+ characters."""
    if not a or not b or abs(len(a) - len(b)) != 1 or a[0] != b[0]:
        return False
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return len(short) >= 2 and any(long_[:i] + long_[i + 1:] == short for i in range(1, len(long_)))


def one_syllable_dropped(a: dict, b: dict) -> bool:
    """The same on pinyin (a character dropped and another typed by ear: 林晓明 / 林小): the same surname, and one
    given name's syllables are the other's with one dropped."""
    ga, gb = a.get("given_pinyin"), b.get("given_pinyin")
    if not ga or not gb or not a.get("surname_pinyin") or a.get("surname_pinyin") != b.get("surname_pinyin"):
        return False
    sa, sb = ga.split(), gb.split()
    if abs(len(sa) - len(sb)) != 1:
        return False
    short, long_ = (sa, sb) if len(sa) < len(sb) else (sb, sa)
    return len(short) >= 1 and any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def names_alike(a: dict, b: dict) -> bool:
    """Names a clerk's ear or hand could make of one: the same pinyin (homophones, traditional characters), the
    same fuzzy pinyin, or one given-name character dropped or added (on characters or on pinyin)."""
    if a.get("name_pinyin") and a.get("name_pinyin") == b.get("name_pinyin"):
        return True
    if a.get("name_fuzzy") and a.get("name_fuzzy") == b.get("name_fuzzy"):
        return True
    return one_character_dropped(a.get("name_std"), b.get("name_std")) or one_syllable_dropped(a, b)


def sex_of_id(id18: str | None) -> str | None:
    """The sex a valid 18-digit ID's sequence says (GB 11643: the 17th digit odd for men): "1" male, "2" female."""
    return ("1" if int(id18[16]) % 2 else "2") if id18 and len(id18) == 18 and id18[16].isdigit() else None


SEX_NAMES = {"1": "male", "2": "female"}


def sex_yield(a: dict, b: dict) -> str | None:
    """When the sexes of ``a`` and ``b`` differ: the stronger evidence that one was keyed wrong, as a reviewer reads
    it ("sex differs, ID parity says female: same valid ID, birth date and name"), or None — the guard holds."""
    same_id = bool(a.get("id_valid") and b.get("id_valid") and a.get("id18") and a.get("id18") == b.get("id18"))
    if same_id:
        parity = sex_of_id(a["id18"])
        if parity in (a.get("sex"), b.get("sex")) and _births_fit_the_id(a, b) and names_alike(a, b):
            return f"sex differs, ID parity says {SEX_NAMES[parity]}: same valid ID, birth date and name"
        return None
    if (not a.get("id18") and not b.get("id18") and a.get("name_pinyin") and a.get("name_pinyin") == b.get("name_pinyin")
            and a.get("birth_date") and b.get("birth_date") and _household(a, b)
            and "year" not in {std.birth_date_precision(a["birth_date"]), std.birth_date_precision(b["birth_date"])}
            and (a["birth_date"] == b["birth_date"] or _one_keystroke(a["birth_date"], b["birth_date"])
                 or std.birth_dates_agree(a["birth_date"], b["birth_date"]))):
        # neither carries an ID: one name (as heard), one birth date (or one keystroke off it; a 1st of the month
        # agreeing on the month), one household — a person of the other sex with all three would be a twin given
        # its sibling's very name: within a month no other child of one mother is born. A 1 January claims only
        # the year, which leaves room for a sibling: the guard holds
        return "sex differs, no ID to say which: same name, birth date and household"
    # one record without a valid ID (none, or the other's mistyped): the valid ID's parity names the sex (whichever
    # record it agrees with — the clerk may have miskeyed either), its birth date anchors both records' (a
    # placeholder agreeing with it, as 1954-01-01 with an ID born 1954-05-21); name and household are the rest
    for with_id, without in ((a, b), (b, a)):
        other = without.get("id18")  # none, or an invalid ID a keystroke off (the same ID mistyped)
        if with_id.get("id_valid") and with_id.get("id18") and not without.get("id_valid") and (
                not other or _one_keystroke(other, with_id["id18"])):
            parity = sex_of_id(with_id["id18"])
            own = _birth_of_id(with_id["id18"])
            # the ID-less record's birth date agrees with the ID's own (a placeholder of it too) or is the elderly's
            # lunar birthday beside it (a sibling is never born within 60 days; a digit off is left to review here:
            # the ID vouches for one record only), the names are alike (a homophone, a character dropped): an
            # opposite-sex twin carries another name, a parent or child another generation's date
            if (parity in (a.get("sex"), b.get("sex")) and names_alike(with_id, without) and _household(a, b)
                    and without.get("birth_date") and (std.birth_dates_agree(without["birth_date"], own)
                                                       or _lunar(without["birth_date"], own))
                    and (not with_id.get("birth_date") or _fits_birth_of_id(with_id["birth_date"], own))):
                return (f"sex differs, ID parity says {SEX_NAMES[parity]}: same name, birth date and household, one "
                        "record without a valid ID")
    return None


def _births_fit_the_id(a: dict, b: dict) -> bool:
    """Under one valid ID: the two birth dates agree (a placeholder agreeing on all it claims), or each is blank,
    the ID's own (digits 7–14), a placeholder of it, or one keystroke or a lunar birthday off it. A parent and
    child on one ID are a generation off it."""
    if std.birth_dates_agree(a.get("birth_date"), b.get("birth_date")):
        return True
    own = _birth_of_id(a["id18"])
    return all(not d or _fits_birth_of_id(d, own) for d in (a.get("birth_date"), b.get("birth_date")))


def _birth_of_id(id18: str) -> str:
    digits = id18[6:14]
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"


def _fits_birth_of_id(d: str, own: str) -> bool:
    """A record's birth date against its ID's own: agreeing (a placeholder of it too), one keystroke off, or the
    elderly's lunar birthday (born before 1970, within 60 days)."""
    return std.birth_dates_agree(d, own) or _one_keystroke(d, own) or _lunar(d, own)


def _lunar(a: str, b: str) -> bool:
    """Both born before 1970, 1–60 days apart: the elderly's lunar birthday beside the solar one (their dates come
    from memory, not certificates; no two children of one mother are born so close)."""
    return a[:4] < "1970" and b[:4] < "1970" and 0 < _days_apart(a, b) <= 60


def _dates_one_birth(a: dict, b: dict) -> str | None:
    """Two different birth dates that are one birth, said in words, or None: both born before 1970 and within 60
    days (a lunar birthday beside the solar one: no two children of one mother are born so close, twins aside,
    whose dates are the same), or one record's valid ID gives the other's date as its own (the other record's
    date then is that record's slip)."""
    if a.get("birth_date") and b.get("birth_date") and _lunar(a["birth_date"], b["birth_date"]):
        return "birth dates within 60 days, born before 1970 (a lunar birthday): not siblings"
    for with_id, other in ((a, b), (b, a)):
        if (with_id.get("id_valid") and with_id.get("id18") and other.get("birth_date")
                and other["birth_date"] == _birth_of_id(with_id["id18"])
                and (not other.get("id18") or other["id18"] == with_id["id18"])):
            return "one record's valid ID gives the other's birth date: not siblings"
    return None


def twins_yield(a: dict, b: dict) -> str | None:
    """When the twins rule would hold: one given name inside the other, one character dropped or added."""
    if one_character_dropped(a.get("name_std"), b.get("name_std")) or one_syllable_dropped(a, b):
        return "same birth date and household, one given-name character dropped or added: not twins"
    # twins carry two IDs: one valid ID on both records, giving their birth date and sex as its own, is one person
    # whose given name was typed short twice (林晓明 as 林晓 and as 林明). Not a guardian's ID (features keep a
    # generation-away ID out of matching), nor a placeholder
    if (a.get("id_valid") and b.get("id_valid") and _same_identifier(a.get("id18"), b.get("id18"))
            and a.get("birth_date") and _fits_birth_of_id(a["birth_date"], _birth_of_id(a["id18"]))
            and all(r.get("sex") in (None, "", sex_of_id(a["id18"])) for r in (a, b))):
        return "same birth date and household, and one valid ID giving that birth date and sex: not twins"
    return None


def _placeholder_agrees(a: str | None, b: str | None) -> bool:
    """A placeholder birth date agreeing with the other on all it claims (year, or year and month)."""
    return bool(a and b and a != b and std.birth_dates_agree(a, b))


def decision(a: dict, b: dict) -> tuple[str | None, str | None]:
    """(why ``a`` and ``b`` must not be auto-linked or None, which guard yielded to stronger evidence or None)."""
    yielded = None
    if a.get("id_valid") and b.get("id_valid") and a.get("id18") and b.get("id18") and a["id18"] != b["id18"]:
        typo = _hamming1(a["id18"], b["id18"]) or _transposed(a["id18"], b["id18"])
        same_rest = (a.get("name_pinyin") == b.get("name_pinyin") and a.get("birth_date") == b.get("birth_date")
                     and a.get("sex") == b.get("sex") and a.get("name_pinyin") is not None)
        if not (typo and same_rest):
            return "different valid ID numbers", None
        yielded = "valid IDs one keystroke apart, name, birth date and sex the same: a typo"
    if a.get("sex") and b.get("sex") and a["sex"] != b["sex"]:
        yielded = sex_yield(a, b)
        if not yielded:
            parity = {sex_of_id(r.get("id18")) for r in (a, b) if r.get("id_valid")} - {None}
            said = f", ID parity says {SEX_NAMES[parity.pop()]}" if len(parity) == 1 else ""
            return f"different sex{said}", None
    if (a.get("birth_date") and a.get("birth_date") == b.get("birth_date") and a.get("given_pinyin")
            and b.get("given_pinyin") and a["given_pinyin"] != b["given_pinyin"] and _household(a, b)
            and a.get("name_fuzzy") != b.get("name_fuzzy")):
        why_not = twins_yield(a, b)
        if not why_not:
            return "twins: same birth date and household, different given names", None
        yielded = yielded or why_not
    ya, yb = a.get("birth_year"), b.get("birth_year")
    same_id = _same_identifier(a.get("id18"), b.get("id18"))
    if (ya and yb and ya.isdigit() and yb.isdigit() and abs(int(ya) - int(yb)) >= 12 and not same_id
            and not _one_keystroke(a["birth_date"], b["birth_date"])
            and not _identifier_typed_wrong(a.get("id18"), b.get("id18"))):
        return "born a generation apart", None
    if (_household(a, b) and ya and yb and ya >= "1970" and yb >= "1970" and not same_id
            and _days_apart(a.get("birth_date"), b.get("birth_date")) > SIBLINGS_DAYS_APART
            and not _one_keystroke(a["birth_date"], b["birth_date"])
            and not _month_day_swapped(a["birth_date"], b["birth_date"])):
        if not (_placeholder_agrees(a.get("birth_date"), b.get("birth_date")) and names_alike(a, b)):
            return "siblings: one household, born months apart", None
        yielded = yielded or "one birth date a placeholder (1 January, the 1st) agreeing on the year: not siblings"
    if (_household(a, b) and not same_id and a.get("birth_date") and b.get("birth_date")
            and not std.birth_dates_agree(a["birth_date"], b["birth_date"])
            and not _one_keystroke(a["birth_date"], b["birth_date"])
            and (one_character_dropped(a.get("name_std"), b.get("name_std")) or one_syllable_dropped(a, b))):
        # a character dropped is a clerk's slip beside the same birth date (or the same ID); on another day in
        # one household it is a sibling named alike: 黄雷 and 黄雨雷, 王丽 and 王丽月 — unless the other day is
        # no other birth: the elderly's lunar birthday, or the very date one record's own valid ID gives
        why_not = _dates_one_birth(a, b)
        if not why_not:
            return "siblings named alike: one household, one given-name character apart, born on other days", None
        yielded = yielded or why_not
    return None, yielded


def reason_to_keep_apart(a: dict, b: dict) -> str | None:
    """Why records ``a`` and ``b`` (feature rows) must not be auto-linked; None when nothing forbids it."""
    return decision(a, b)[0]


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
