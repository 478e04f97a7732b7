"""Person records of a simulated population as the member systems would hold them, with the true resident
of each — for scoring the EMPI quickly without simulating whole source systems.

Each resident gets records in a few sources (the public-health record for most; HIS patient records at the
hospitals and township centres they visit, sometimes two at one member; a contract-platform record for the
key populations), each typed with :func:`countyhealth.simulate.noise.type_person` — the same identity noise
the full simulator puts into the HIS databases, the platform and the exports.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from countyhealth.simulate.facilities import make_facilities
from countyhealth.simulate.noise import NoiseRates, type_person
from countyhealth.simulate.residents import Resident, ResidentMaker, make_residents

SEX_TEXT = {"1": "1", "2": "2"}


@dataclass
class PersonRecord:
    row: dict  # canonical person fields (countyhealth.model.PERSON), plaintext ID and phone
    resident_key: str
    tags: tuple[str, ...] = ()  # the identity noise this record carries (noise.IDENTITY_NOISE_KINDS)


def person_records(residents: int, *, seed: int = 1, noise: NoiseRates | None = None,
                   today: dt.date = dt.date(2026, 3, 1), townships: int = 20) -> tuple[list[PersonRecord], list[Resident]]:
    rng = random.Random(f"{seed}|person-records")
    noise = noise or NoiseRates()
    facilities = make_facilities("350125", "永泰县", 3, townships, 6, random.Random(f"{seed}|registry"))
    people = make_residents(residents, ResidentMaker(random.Random(f"{seed}|residents"), facilities, "350125", today))
    by_key = {r.key: r for r in people}
    county = [f for f in facilities if f.level == "county"]
    towns = [f for f in facilities if f.level == "township"]
    out: list[PersonRecord] = []
    seq = 0

    def emit(r: Resident, source_id: str, facility: str, *, hrn: bool) -> None:
        nonlocal seq
        seq += 1
        guardian = by_key.get(r.guardian) if r.guardian else None
        p = type_person(r, rng, noise, today, guardian)
        row = {"source_id": source_id, "source_record_id": f"R{seq:08d}", "facility_code": facility,
               "name": p.name, "sex_code": p.sex, "birth_date": p.birth_date,
               "id_type_code": "01" if p.id_number else None, "id_number": p.id_number, "phone": p.phone,
               "address": p.address, "health_record_number": r.health_record_number if hrn else None}
        out.append(PersonRecord(row, r.key, tuple(p.tags)))

    for r in people:
        town = towns[r.township_index % len(towns)]
        if rng.random() < 0.92:
            emit(r, "public_health", town.code, hrn=True)
        members = set()
        for _ in range(rng.choices([0, 1, 2, 3], [30, 40, 20, 10])[0]):
            members.add(rng.choice(county) if rng.random() < 0.3 else town)
        for f in sorted(members, key=lambda f: f.code):  # registered once per member it visits…
            emit(r, f"his_{f.code.lower()}", f.code, hrn=False)
            if rng.random() < 0.03:  # …and now and then a second card at the same member
                emit(r, f"his_{f.code.lower()}", f.code, hrn=False)
        if (r.hypertension or r.diabetes or r.age(today) >= 65) and rng.random() < 0.7:
            emit(r, "contracts", town.code, hrn=rng.random() < 0.9)
    return out, people
