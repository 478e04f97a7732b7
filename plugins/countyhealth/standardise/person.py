"""Person records made comparable: names, pinyin keys, resident IDs, phones, addresses.

Libraries: ``opencc-python-reimplemented`` (pure-Python OpenCC: traditional → simplified with OpenCC's own
dictionaries) and ``pypinyin`` (readings from its phrase and character dictionaries). pypinyin reads some
surnames with their common reading (曾 ceng, 单 dan, 解 jie, 仇 chou, 区 qu, 查 cha, 朴 pu), so the first
character(s) of a name are read from a surname table first.

Keys for matching:

- ``name_std``: spaces (incl. the ideographic space) removed, full-width folded, traditional → simplified;
  minority names keep their ``·`` (every dot variant folded to U+00B7);
- ``name_pinyin``: toneless pinyin of ``name_std`` (伟/玮 and 丽/莉 become equal);
- ``name_fuzzy``: the pinyin with the confusions of southern Mandarin folded (zh/z, ch/c, sh/s, n/l,
  ang/an, eng/en, ing/in) — clerks in a Fujian county type names as they hear them;
- IDs by :mod:`countyhealth.resident_id` (never python-stdnum: it rejects valid pre-1980 IDs): 15 → 18
  digits, lower-case x, full-width digits; birth date and sex derived from a valid ID;
- phones: digits only, +86/0086 dropped; mobiles as 11 digits, landlines with their area code;
- addresses: province, city and county prefixes stripped (also when written short, without 省/市/县: 永泰梧桐镇); township (镇/乡/街道) and village (村/社区/居委会)
  and house number picked out where present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from countyhealth import resident_id

# ---- names -----------------------------------------------------------------------------------------------

_DOTS = str.maketrans({c: "·" for c in "•・．.‧∙⋅･·"})
_FULLWIDTH = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)}
_SPACES = re.compile(r"[\s\u3000\u00a0]+")

# surnames whose reading differs from the character's most common one; compound surnames first
SURNAME_READINGS = {
    "欧阳": "ou yang", "司马": "si ma", "上官": "shang guan", "诸葛": "zhu ge", "尉迟": "yu chi", "万俟": "mo qi",
    "单于": "chan yu", "长孙": "zhang sun", "令狐": "ling hu", "皇甫": "huang fu", "澹台": "tan tai",
    "曾": "zeng", "单": "shan", "解": "xie", "仇": "qiu", "区": "ou", "查": "zha", "朴": "piao", "覃": "qin",
    "盖": "ge", "缪": "miao", "种": "chong", "乐": "yue", "翟": "zhai", "沈": "shen", "秘": "bi", "繁": "po",
    "尉": "yu", "员": "yun", "曲": "qu", "黑": "he", "那": "na", "重": "chong", "華": "hua", "华": "hua",
    "任": "ren", "葛": "ge", "贲": "ben", "宓": "mi", "隗": "wei", "能": "nai", "句": "gou", "莘": "shen",
}
_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
_FUZZY_FINALS = (("ang", "an"), ("eng", "en"), ("ing", "in"))


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


class _T2S(dict):
    """Code point → its simplified form, filled on first sight of each character: a ``str.translate`` table
    (the whole text converted in C; a Python loop over the characters was most of standardising a name)."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        self[code] = out = _t2s().convert(ch) if ch >= "\u3400" else ch
        return out


_T2S_TABLE = _T2S()


def _simplified(text: str) -> str:
    """Traditional → simplified character by character: names and addresses are short runs of characters,
    OpenCC's phrase tables add nothing for them, and its per-string matching is the slow part."""
    return text.translate(_T2S_TABLE)


_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_NOT_LETTER = re.compile(r"[^\w\s'-]|_|\d")


def is_latin(name: str | None) -> bool:
    """A name written without Chinese characters (pinyin, a foreign name): its words are kept apart."""
    return bool(name) and not _HAN.search(name)


@lru_cache(maxsize=200_000)  # (a run asks for a night's names twice: to find repeats, then to build features)
def normalise_name(raw: str | None) -> str | None:
    """Trimmed, spaces removed, full-width folded, simplified characters; ``·`` kept for minority names.
    A name in Latin letters (no Chinese character) is lower-cased with its words kept, one space apart."""
    if raw is None:
        return None
    text = str(raw).translate(_FULLWIDTH)
    if is_latin(text):
        text = " ".join(_NOT_LETTER.sub(" ", text.translate(_DOTS).replace("·", " ")).lower().split())
        return text or None
    text = _SPACES.sub("", text).translate(_DOTS).strip("·")
    if not text:
        return None
    return _simplified(text)


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """(surname, given name). Compound surnames from the table; minority names split at ``·``."""
    if not name:
        return None, None
    if is_latin(name):  # "given family", the order of most names written in Latin letters
        # the first and last words only: a middle name, or a family name's particle or stray space ("van der
        # Berg", "Mc Mullen"), is what one clerk keeps and another drops
        words = name.split()
        return words[-1], words[0] if len(words) > 1 else None
    if "·" in name:
        given, _, family = name.partition("·")
        return family or None, given or None
    for length in (2, 1):
        if len(name) > length and name[:length] in SURNAME_READINGS and length == 2:
            return name[:2], name[2:]
    return name[:1], name[1:] or None


@lru_cache(maxsize=50_000)
def _pinyin_char(ch: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return " ".join(lazy_pinyin(ch, style=Style.NORMAL, errors="default"))


@lru_cache(maxsize=200_000)
def _pinyin(text: str) -> str:
    # character by character (cached): a given name is not a phrase, so pypinyin's phrase dictionary and word
    # segmentation only cost time; runs of Latin letters or digits stay whole
    out, latin = [], ""
    for ch in text:
        if ch >= "\u3400":
            if latin:
                out.append(latin)
                latin = ""
            out.append(_pinyin_char(ch))
        else:
            latin += ch
    if latin:
        out.append(latin)
    return " ".join(p for p in out if p)


def name_pinyin(name: str | None) -> str | None:
    """Toneless pinyin, syllables space-separated, surname read from the surname table."""
    if not name:
        return None
    if is_latin(name):
        return name.lower()
    if "·" in name:
        return " ".join(_pinyin(part) for part in name.split("·"))
    for length in (2, 1):
        head = name[:length]
        if len(name) > length and head in SURNAME_READINGS:
            return f"{SURNAME_READINGS[head]} {_pinyin(name[length:])}".strip()
    return _pinyin(name)


def fuzzy_pinyin(pinyin: str | None) -> str | None:
    """Fold the sound pairs southern speakers merge, syllable by syllable."""
    if not pinyin:
        return None
    return " ".join(map(_fuzzy_syllable, pinyin.split()))


@lru_cache(maxsize=20_000)  # Mandarin has ~400 syllables; Latin names add their words
def _fuzzy_syllable(syl: str) -> str:
    for a, b in _FUZZY_INITIALS:
        if syl.startswith(a):
            syl = b + syl[len(a):]
            break
    for a, b in _FUZZY_FINALS:
        if syl.endswith(a):
            return syl[: -len(a)] + b
    return syl


# ---- IDs, phones, addresses -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StdId:
    id18: str | None  # normalised 18-digit form when the text has the shape of an ID (even with a bad check char)
    valid: bool
    was_15: bool
    birth_date: object  # datetime.date | None, only from a valid ID
    sex: str | None  # GB/T 2261.1 "1"/"2", only from a valid ID
    problem: str | None


def standardise_id(raw: str | None) -> StdId:
    p = resident_id.parse(raw)
    if p.valid:
        return StdId(p.id18, True, p.was_15, p.birth_date, p.sex, None)
    return StdId(p.id18, False, p.was_15, None, None, p.problem)


_RUNS = "01234567890123456789", "98765432109876543210"
_RUN_PIECES = frozenset(run[i:j] for run in _RUNS for i in range(len(run)) for j in range(i + 6, len(run) + 1))
_REPEATED = re.compile(r"(.)\1{7,}")  # eight of one character in a row: no birth date or sequence has that


def is_placeholder(identifier: str | None) -> bool:
    """An identifier typed to get past a required field — one character throughout (000000000000000000), a
    region code padded with eight or more of one digit (350125000000000000), or a run (1234567, 987654321) —
    not anyone's number. Thousands of records may carry the same one: as a blocking key it would pair them all
    with each other. (Short real numbers with few distinct digits, 5500151, are not placeholders.)"""
    if not identifier:
        return False
    return identifier in _RUN_PIECES or len(set(identifier)) == 1 or _REPEATED.search(identifier) is not None


def birth_date_precision(text: str | None) -> str | None:
    """How much of an ISO birth date (``1948-01-01``) can be trusted: ``year`` for 1 January (the placeholder a
    clerk types for "born in 1948, day unknown"), ``month`` for the 1st of another month, ``day`` otherwise, None
    without a date. A real birthday on the 1st is read as a placeholder too: what agrees is then only year (and
    month), which is all such a date can prove (elderly and migrants often have no better)."""
    if not isinstance(text, str) or len(text) != 10:
        return None
    if text[5:] == "01-01":
        return "year"
    return "month" if text[8:] == "01" else "day"


def birth_dates_agree(a: str | None, b: str | None) -> bool:
    """The same birth date, or one a placeholder of the other (1948-01-01 and 1948-06-17 agree on the year, all a
    1 January placeholder claims; 1948-06-01 and 1948-06-17 on the month). Both present."""
    if not a or not b:
        return False
    if a == b:
        return True
    precision = {birth_date_precision(a), birth_date_precision(b)}
    if "year" in precision:
        return a[:4] == b[:4]
    return "month" in precision and a[:7] == b[:7]


def year_of(text) -> float:
    """The year of ``1985`` or ``1985-03-12`` as a number; NaN when there is none (for column arithmetic)."""
    return float(text[:4]) if isinstance(text, str) and text[:4].isdigit() else float("nan")


def normalise_id_for_hash(raw: str | None) -> str | None:
    """The form an ID number is hashed in: 18 digits (15-digit upgraded, x upper-cased) when it has an ID's
    shape, else its normalised text — so a mistyped ID still hashes the same way every time."""
    p = resident_id.parse(raw)
    return p.id18 or resident_id.normalise(raw)


def normalise_ids_for_hash(values: list) -> list:
    """:func:`normalise_id_for_hash` of a whole column: the resident IDs parsed together
    (:func:`countyhealth.resident_id.parse_many`), other text normalised once per distinct value."""
    id18 = resident_id.parse_many(values).id18
    other = {v: resident_id.normalise(v) for v, key in zip(values, id18) if key is None and isinstance(v, str)}
    return [key if key is not None else other.get(v) for v, key in zip(values, id18)]


_MOBILE_HEADS = frozenset(f"1{d}" for d in "3456789")
_PHONE_PREFIX = re.compile(r"^(\+?86|0086)")


def normalise_phone(raw: str | None) -> str | None:
    """Digits only; the country code dropped; a mobile as 11 digits (1[3-9]…), a landline with its area code
    (0591 12345678 → 059112345678). Too short to be a phone → None."""
    if raw is None:
        return None
    if raw.__class__ is str and len(raw) == 11 and raw.isascii() and raw.isdigit() and raw[:2] in _MOBILE_HEADS:
        return raw  # most phones: a mobile typed as it should be
    text = str(raw).translate(_FULLWIDTH)
    text = re.sub(r"[\s\-()（）]", "", text)
    text = _PHONE_PREFIX.sub("", text) if len(re.sub(r"\D", "", text)) > 11 else text
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 11 and re.match(r"1[3-9]\d{9}$", digits[-11:]) and not digits.startswith("0"):
        return digits[-11:]
    if digits.startswith("0") and 10 <= len(digits) <= 12:
        return digits
    if 7 <= len(digits) <= 8:
        return digits  # a local number without its area code
    return None


def phone_kind(phone: str | None) -> str | None:
    if not phone:
        return None
    return "mobile" if len(phone) == 11 and phone.startswith("1") else "landline"


_ADMIN_PREFIX = re.compile(r"^(?:[^省市镇乡村]{2,8}(?:省|自治区))?(?:[^市县区镇乡村]{1,8}(?:市|自治州|地区|盟))?"
                           r"(?:[^县区市镇乡村]{1,8}(?:县|区|市|旗))?")
_TOWNSHIP = re.compile(r"([^镇乡]{1,8}?(?:镇|乡|街道))")
_VILLAGE = re.compile(r"([^村区会]{1,8}?(?:村|社区|居委会))")
_HOUSE = re.compile(r"(\d+)\s*号")
_LATIN_HOUSE = re.compile(r"(\d+)[a-z]?\b")  # 12 smith street, 12a smith street


@dataclass(frozen=True)
class StdAddress:
    rest: str | None  # the address without province/city/county
    township: str | None
    village: str | None
    house_number: str | None


def _short_county_lead(township: str) -> bool:
    """A township name of four or more characters before 镇/乡 (永泰梧桐镇): a two-character county name written
    without 县 in front of it. Township names have one to three; an ethnic township's (XX畲族乡) may have more and
    is left as it is."""
    name = township[:-2] if township.endswith("街道") else township[:-1]
    return len(name) >= 4 and "族" not in name


def standardise_address(raw: str | None) -> StdAddress:
    if not raw:
        return StdAddress(None, None, None, None)
    text = str(raw).translate(_FULLWIDTH)
    if is_latin(text):  # not a Chinese address: its words are kept, lower-cased; a leading number is the house's
        text = " ".join(text.lower().split())
        number = _LATIN_HOUSE.match(text)
        return StdAddress(text or None, None, None, number.group(1) if number else None)
    text = _simplified(_SPACES.sub("", text))
    rest = _ADMIN_PREFIX.sub("", text, count=1) or text
    township = _TOWNSHIP.search(rest)
    while township and township.start() == 0 and _short_county_lead(township.group(1)):
        # the short form a clerk writes: 永泰梧桐镇春光村 for 福建省福州市永泰县梧桐镇春光村 — the county's name without
        # its 县 (and the city's without 市: 福州永泰梧桐镇) leads the township's; dropped, both forms give one household
        rest = rest[2:]
        township = _TOWNSHIP.search(rest)
    after = rest[township.end():] if township else rest
    village = _VILLAGE.search(after)
    house = _HOUSE.search(rest)
    return StdAddress(rest or None, township.group(1) if township else None,
                      village.group(1) if village else None, house.group(1) if house else None)
