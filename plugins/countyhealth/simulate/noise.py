"""Identity noise (how a resident's details get typed at each source) and data noise (defective rows).

Rates are configurable (:class:`NoiseRates`); every injected defect is reported back as a tag so the ground
truth accounts for it exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass

from countyhealth import resident_id
from countyhealth.simulate import names
from countyhealth.simulate.residents import Resident


@dataclass(frozen=True)
class NoiseRates:
    # identity noise, per source record of a person
    name_homophone: float = 0.03
    name_traditional: float = 0.01
    name_spaces: float = 0.02
    id_missing_adult: float = 0.03  # elderly: 3× this
    id_15_digit: float = 0.03  # only for people born before 2000, as old records were
    id_one_digit: float = 0.01
    id_transposition: float = 0.005
    id_lowercase_x: float = 0.5  # share of IDs ending in X typed as x
    guardian_id_on_infant: float = 0.5  # of infants' records when the infant has no ID
    lunar_birth_date: float = 0.6  # of elderly with a lunar birthday: which one the record carries
    birth_date_typo: float = 0.01
    phone_missing: float = 0.1
    # kinds real HIS data has that a county generated elsewhere showed us (each tagged in the ground truth):
    sex_miscoded: float = 0.01  # the other sex keyed, although the record's valid ID says which is right
    sex_blank: float = 0.02  # sex left blank (written as the "unknown" code 0 where a source needs a value)
    name_char_dropped: float = 0.01  # a given-name character dropped: 林晓明 typed 林明 or 林晓
    name_char_added: float = 0.005  # a character added to the given name: 林明 typed 林晓明
    # an unknown birth date typed as a placeholder (elderly and migrants: 3× this from 70): 1 January of the
    # year, the 1st of the month, or left blank — in that proportion (PLACEHOLDER_SHARES)
    birth_date_placeholder: float = 0.02
    address_short: float = 0.1  # the address written short: 永泰梧桐镇春光村12号 for 福建省福州市永泰县梧桐镇春光村12号
    # data noise, per row
    duplicate_row: float = 0.004
    blank_required: float = 0.003
    implausible_value: float = 0.002
    unknown_code: float = 0.003
    future_date: float = 0.001

    @classmethod
    def scaled(cls, factor: float) -> "NoiseRates":
        """All rates multiplied by ``factor`` (0 gives a clean county), shares capped at 1."""
        fields = {f.name: min(1.0, getattr(cls(), f.name) * factor) for f in dataclasses.fields(cls)
                  if f.name not in ("id_lowercase_x", "lunar_birth_date", "guardian_id_on_infant")}
        return cls(**fields)


# of placeholder birth dates: 1 January of the year (the commonest: "born in 1948, day unknown"), the 1st of the
# month, blank
PLACEHOLDER_SHARES = (("birth_date_jan1", 0.5), ("birth_date_first_of_month", 0.3), ("birth_date_blank", 0.2))

# the identity-noise tags, each a kind of noise bench_identity.py reports recall for (data noise is per row)
IDENTITY_NOISE_KINDS = ("name_homophone", "name_traditional", "name_spaces", "name_char_dropped", "name_char_added",
                        "lunar_birth_date", "birth_date_typo", "birth_date_jan1", "birth_date_first_of_month",
                        "birth_date_blank", "sex_miscoded", "sex_blank", "id_missing", "guardian_id", "id_one_digit",
                        "id_transposition", "id_15_digit", "id_lowercase_x", "phone_missing", "address_short")


@dataclass
class TypedPerson:
    """A resident as one source system recorded them."""

    name: str
    sex: str | None  # None: left blank
    birth_date: dt.date | None  # None: left blank
    id_number: str | None
    phone: str | None
    address: str
    tags: list[str]

    def birth_text(self, fmt: str = "%Y-%m-%d") -> str | None:
        return self.birth_date.strftime(fmt) if self.birth_date else None

    def sex_or(self, unknown: str = "0") -> str:
        """The sex code, or the "unknown" code a source writes when the clerk left it blank (GB/T 2261.1: 0)."""
        return self.sex or unknown


def _one_digit(id18: str, rng: random.Random) -> str:
    i = rng.randrange(0, 17)
    digit = str((int(id18[i]) + rng.randint(1, 9)) % 10)
    return id18[:i] + digit + id18[i + 1:]


def _transpose(id18: str, rng: random.Random) -> str:
    for _ in range(10):
        i = rng.randrange(0, 16)
        if id18[i] != id18[i + 1]:
            return id18[:i] + id18[i + 1] + id18[i] + id18[i + 2:]
    return id18


def type_person(r: Resident, rng: random.Random, rates: NoiseRates, today: dt.date,
                guardian: Resident | None) -> TypedPerson:
    tags: list[str] = []
    name = r.name
    roll = rng.random()
    if roll < rates.name_homophone:
        alt = names.homophone(name, rng)
        if alt:
            name, _ = alt, tags.append("name_homophone")
    elif roll < rates.name_homophone + rates.name_traditional:
        alt = names.traditional(name)
        if alt:
            name, _ = alt, tags.append("name_traditional")
    roll = rng.random()
    if roll < rates.name_char_dropped:
        alt = names.char_dropped(name, rng)
        if alt:
            name, _ = alt, tags.append("name_char_dropped")
    elif roll < rates.name_char_dropped + rates.name_char_added:
        alt = names.char_added(name, r.sex, rng)
        if alt:
            name, _ = alt, tags.append("name_char_added")
    if rng.random() < rates.name_spaces:
        name = names.spaced(name, rng)
        tags.append("name_spaces")

    birth = r.birth_date
    if r.lunar_birth_date and rng.random() < rates.lunar_birth_date:
        birth = r.lunar_birth_date
        tags.append("lunar_birth_date")
    elif rng.random() < rates.birth_date_typo:
        birth = birth.replace(day=min(28, (birth.day % 28) + 1)) if birth.day != 28 else birth.replace(day=18)
        tags.append("birth_date_typo")
    elif rng.random() < rates.birth_date_placeholder * (3 if r.age(today) >= 70 else 1):
        kind = rng.choices([k for k, _ in PLACEHOLDER_SHARES], [w for _, w in PLACEHOLDER_SHARES])[0]
        birth = {"birth_date_jan1": birth.replace(month=1, day=1), "birth_date_first_of_month": birth.replace(day=1),
                 "birth_date_blank": None}[kind]
        tags.append(kind)

    id_number = r.id_number
    age = r.age(today)
    if id_number is None:
        if guardian is not None and guardian.id_number and rng.random() < rates.guardian_id_on_infant:
            id_number = guardian.id_number
            tags.append("guardian_id")
        else:
            tags.append("id_missing")
    else:
        p_missing = rates.id_missing_adult * (3 if age >= 75 else 1)
        roll = rng.random()
        if roll < p_missing:
            id_number = None
            tags.append("id_missing")
        elif roll < p_missing + rates.id_one_digit:
            id_number = _one_digit(id_number, rng)
            tags.append("id_one_digit")
        elif roll < p_missing + rates.id_one_digit + rates.id_transposition:
            id_number = _transpose(id_number, rng)
            tags.append("id_transposition")
        elif r.birth_date.year < 2000 and roll < p_missing + rates.id_one_digit + rates.id_transposition + rates.id_15_digit:
            id_number = id_number[:6] + id_number[8:17]
            tags.append("id_15_digit")
        if id_number and id_number.endswith("X") and rng.random() < rates.id_lowercase_x:
            id_number = id_number[:-1] + "x"
            tags.append("id_lowercase_x")

    phone = r.phone
    if phone and rng.random() < rates.phone_missing:
        phone = None
        tags.append("phone_missing")

    sex = r.sex
    roll = rng.random()
    if roll < rates.sex_miscoded:
        sex = "2" if r.sex == "1" else "1"
        tags.append("sex_miscoded")
    elif roll < rates.sex_miscoded + rates.sex_blank:
        sex = None
        tags.append("sex_blank")

    address = r.address
    if rng.random() < rates.address_short:
        address = short_address(address)
        tags.append("address_short")
    return TypedPerson(name, sex, birth, id_number, phone, address, tags)


def short_address(address: str) -> str:
    """The address as a clerk writes it in a hurry: province and city dropped, the county without its 县 —
    福建省福州市永泰县梧桐镇春光村12号 → 永泰梧桐镇春光村12号."""
    for prefix in ("福建省", "福州市"):
        address = address.removeprefix(prefix)
    head, sep, rest = address.partition("县")
    return head + rest if sep and len(head) <= 3 else address


def future_typo(value):
    """A date typed with its year's last two digits swapped the wrong way (2026 → 2062): a future date that
    stays in the future whenever the pipeline runs. Works on dates and datetimes."""
    year = value.year + 36 if value.year % 100 < 50 else value.year + 20
    return value.replace(year=year, day=min(value.day, 28))


def id_is_valid(id_number: str | None) -> bool:
    return resident_id.parse(id_number).valid
