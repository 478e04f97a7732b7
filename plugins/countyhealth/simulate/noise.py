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


@dataclass
class TypedPerson:
    """A resident as one source system recorded them."""

    name: str
    sex: str
    birth_date: dt.date
    id_number: str | None
    phone: str | None
    address: str
    tags: list[str]


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
    return TypedPerson(name, r.sex, birth, id_number, phone, r.address, tags)


def future_typo(value):
    """A date typed with its year's last two digits swapped the wrong way (2026 → 2062): a future date that
    stays in the future whenever the pipeline runs. Works on dates and datetimes."""
    year = value.year + 36 if value.year % 100 < 50 else value.year + 20
    return value.replace(year=year, day=min(value.day, 28))


def id_is_valid(id_number: str | None) -> bool:
    return resident_id.parse(id_number).valid
