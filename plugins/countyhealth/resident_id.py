"""Chinese resident ID numbers (公民身份号码, GB 11643-1999).

One home for the rules, used by the simulator, validation and identity. We do not use
``python-stdnum``'s ``stdnum.cn.ric``: it rejects valid IDs of most people born before ~1980
(region code checked against birth year), can raise ``KeyError`` and has no 15-digit support.

Layout of the 18-digit form: 6-digit region code, 8-digit birth date ``YYYYMMDD``, 3-digit
sequence (odd = male), check character (ISO 7064 MOD 11-2). The old 15-digit form has a 2-digit
year and no check character; upgrading inserts ``19`` and computes the check character.

Never log an ID number: use :func:`countyhealth.privacy.mask_id` when one has to be shown.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from dataclasses import dataclass

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"  # remainder 0..10 -> check character
_RE15 = re.compile(r"^\d{15}$")


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("check_char needs exactly 17 digits")
    total = sum(map(operator.mul, map(int, first17), _WEIGHTS))
    return _CHECK[total % 11]


def make(region: str, birth_date: dt.date, sequence: int) -> str:
    """Build a valid 18-digit ID. ``sequence`` 0..999; odd means male."""
    first17 = f"{region:0>6}{birth_date:%Y%m%d}{sequence:03d}"
    return first17 + check_char(first17)


def normalise(raw: str | None) -> str | None:
    """Strip spaces and full-width digits, upper-case ``x``. Returns None for blank input."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    # full-width digits and X (０-９, Ｘ/ｘ) are common when typed on Chinese input methods
    text = _SPACES.sub("", text.translate(_FULLWIDTH)).upper()
    return text or None


_SPACES = re.compile(r"[\s\-]")
_FULLWIDTH = str.maketrans({chr(0xFF10 + i): str(i) for i in range(10)} | {"Ｘ": "X", "ｘ": "X"})


def _birth(text: str) -> dt.date | None:
    try:
        return dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def upgrade_15(id15: str) -> str:
    """Old 15-digit form -> 18 digits: insert ``19`` before the 2-digit year, add check char."""
    if not _RE15.match(id15):
        raise ValueError("not a 15-digit ID")
    first17 = id15[:6] + "19" + id15[6:]
    return first17 + check_char(first17)


@dataclass(frozen=True)
class ParsedId:
    """What a well-formed ID says. ``problem`` is None when the ID is valid."""

    id18: str | None  # the 18-digit form (upgraded from 15 when needed), None when unreadable
    birth_date: dt.date | None
    sex: str | None  # GB/T 2261.1: "1" male, "2" female
    region: str | None
    was_15: bool = False
    problem: str | None = None  # "format" | "check_char" | "birth_date" | None

    @property
    def valid(self) -> bool:
        return self.problem is None


def parse(raw: str | None, *, today: dt.date | None = None) -> ParsedId:
    """Parse and validate an ID number; never raises on bad input."""
    text = normalise(raw)
    if text is None:
        return ParsedId(None, None, None, None, problem="missing")
    was_15 = False
    # str methods, not the regexes: a million IDs a night (isdecimal is what \d matches)
    if len(text) == 15 and text.isdecimal():
        text = upgrade_15(text)
        was_15 = True
    if not (len(text) == 18 and text[:17].isdecimal() and (text[17] == "X" or text[17].isdecimal())):
        return ParsedId(None, None, None, None, problem="format")
    birth = _birth(text[6:14])
    today = today or dt.date.today()
    sex = "1" if int(text[16]) % 2 == 1 else "2"
    if birth is None or birth > today or birth.year < 1880:
        return ParsedId(text, None, sex, text[:6], was_15, problem="birth_date")
    if check_char(text[:17]) != text[17]:
        return ParsedId(text, birth, sex, text[:6], was_15, problem="check_char")
    return ParsedId(text, birth, sex, text[:6], was_15)


def is_valid(raw: str | None) -> bool:
    """True for a valid 18-digit ID or a well-formed 15-digit one."""
    return parse(raw).valid
