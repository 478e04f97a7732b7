"""Residents in households, with valid GB 11643 IDs and chronic conditions at realistic prevalence.

Households share an address and usually a phone; spouses keep their own surnames (as Chinese wives do);
children take the father's surname; some households have twins or an infant (often without an ID yet).
Prevalence: hypertension ~27% of adults 35+ rising with age, type 2 diabetes ~11% (China chronic disease
surveillance orders of magnitude).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from countyhealth import resident_id
from countyhealth.simulate.facilities import Facility
from countyhealth.simulate.names import NameMaker

# birth-year weights for a rural county with an ageing population (working-age people migrate out)
_AGE_BANDS = [(0, 6, 5), (7, 17, 10), (18, 34, 14), (35, 49, 18), (50, 64, 26), (65, 79, 20), (80, 99, 7)]
_OTHER_REGIONS = ["350181", "350121", "350124", "350426", "350102", "350128"]  # neighbours and Fuzhou


@dataclass
class Resident:
    key: str  # ground-truth resident key (never leaves truth/)
    name: str
    sex: str  # GB/T 2261.1
    birth_date: dt.date
    id_number: str | None  # None: not yet issued (infants, some children)
    phone: str | None
    household: int
    township_index: int
    village_code: str
    address: str
    health_record_number: str
    hypertension: bool = False
    diabetes: bool = False
    twin_of: str | None = None
    guardian: str | None = None  # key of the guardian for infants
    lunar_birth_date: dt.date | None = None  # what an elderly person gives when asked (lunar calendar)
    tags: set = field(default_factory=set)

    def age(self, on: dt.date) -> int:
        return on.year - self.birth_date.year - ((on.month, on.day) < (self.birth_date.month, self.birth_date.day))


class ResidentMaker:
    def __init__(self, rng: random.Random, facilities: list[Facility], region: str, today: dt.date):
        self.rng = rng
        self.names = NameMaker(rng)
        self.region = region
        self.today = today
        self.townships = [f for f in facilities if f.level == "township"]
        self.villages = {t.code: [f for f in facilities if f.parent_code == t.code] for t in self.townships}
        self._seq: dict[tuple[str, dt.date], int] = {}
        self._hr_seq = 0
        self._phones: set[str] = set()

    def _birth(self, low: int, high: int) -> dt.date:
        age = self.rng.randint(low, high)
        return self.today - dt.timedelta(days=age * 365 + self.rng.randint(0, 364))

    def _random_age_band(self) -> tuple[int, int]:
        band = self.rng.choices(_AGE_BANDS, [w for *_, w in _AGE_BANDS])[0]
        return band[0], band[1]

    def _id(self, birth: dt.date, sex: str, region: str | None = None) -> str:
        region = region or (self.region if self.rng.random() < 0.92 else self.rng.choice(_OTHER_REGIONS))
        key = (region, birth)
        n = self._seq.get(key, self.rng.randint(0, 40))
        # sequence parity carries sex: odd = male
        if (n % 2 == 1) != (sex == "1"):
            n += 1
        self._seq[key] = n + 1
        return resident_id.make(region, birth, n % 1000)

    def _phone(self) -> str:
        while True:
            p = self.rng.choice(["139", "138", "137", "136", "135", "158", "159", "188", "187", "150", "151",
                                 "133", "153", "180", "189", "130", "131", "132", "155", "186"])
            p += f"{self.rng.randint(0, 99_999_999):08d}"
            if p not in self._phones:
                self._phones.add(p)
                return p

    def household(self, hh: int, start_key: int) -> list[Resident]:
        rng = self.rng
        t_index = rng.randrange(len(self.townships))
        township = self.townships[t_index]
        village = rng.choice(self.villages[township.code]) if self.villages[township.code] else township
        address = f"福建省福州市永泰县{township.township}{village.name.replace(township.township, '').replace('卫生室', '')}{rng.randint(1, 199)}号"
        phone = self._phone() if rng.random() < 0.9 else None
        members: list[Resident] = []
        key = start_key

        def add(name, sex, birth, **kw) -> Resident:
            nonlocal key
            own_phone = phone if (phone and rng.random() < 0.75) else (self._phone() if rng.random() < 0.8 else None)
            self._hr_seq += 1
            hr = f"{self.region}{101 + t_index:03d}{int(village.code[-3:]) if village.level == 'village' else 0:03d}{self._hr_seq % 100000:05d}"
            r = Resident(f"R{key:07d}", name, sex, birth, None, own_phone, hh, t_index, village.code, address, hr, **kw)
            key += 1
            members.append(r)
            return r

        size = rng.choices([1, 2, 3, 4, 5, 6], [14, 30, 22, 18, 11, 5])[0]
        low, high = self._random_age_band()
        low, high = max(low, 20), max(high, 25)
        head_sex = "1" if rng.random() < 0.8 else "2"
        surname = self.names.surname()
        head = add(self.names.full(head_sex, surname), head_sex, self._birth(low, high))
        if size >= 2:
            spouse_sex = "2" if head_sex == "1" else "1"
            spouse_age = max(18, head.age(self.today) + rng.randint(-5, 3))
            add(self.names.full(spouse_sex), spouse_sex, self._birth(spouse_age, spouse_age))
        father_surname = surname if head_sex == "1" else (members[1].name[0] if len(members) > 1 else surname)
        parent_age = head.age(self.today)
        n_children = size - len(members)
        if parent_age > 62 and n_children:
            n_children = 0  # elderly couples: adult children have moved out
        twins = n_children >= 2 and rng.random() < 0.03
        child_birth = None
        births: list[dt.date] = []
        names_taken: set[str] = {m.name for m in members}

        def child_name(sex: str) -> str:
            # parents don't give two of their children the same name (twins included)
            for _ in range(20):
                name = self.names.full(sex, father_surname)
                if name not in names_taken:
                    break
            names_taken.add(name)
            return name

        for c in range(n_children):
            sex = "1" if rng.random() < 0.53 else "2"
            if twins and c == 1:
                birth = child_birth
                twin = add(child_name(sex), sex, birth, twin_of=members[-1].key)
                members[-2].twin_of = twin.key
                continue
            max_age = max(0, min(parent_age - 20, 30))
            for _ in range(20):  # siblings are born at least ten months apart
                age = rng.randint(0, max_age)
                if age == 0 and rng.random() < 0.7:
                    age = rng.randint(1, max(1, max_age))  # births are rarer than a uniform draw suggests
                child_birth = self._birth(age, age)
                if all(abs((child_birth - b).days) >= 300 for b in births):
                    break
            births.append(child_birth)
            add(child_name(sex), sex, child_birth)
        # IDs: issued to adults and most children; infants and some young children have none yet
        mother = next((m for m in members[:2] if m.sex == "2"), members[0])
        for m in members:
            age = m.age(self.today)
            if age < 1:
                m.guardian = mother.key
                m.tags.add("infant")
                if rng.random() < 0.85:
                    continue
            elif age < 6 and rng.random() < 0.4:
                continue
            m.id_number = self._id(m.birth_date, m.sex)
        # twins' IDs: same birth date, consecutive sequence numbers
        for m in members:
            if m.twin_of:
                m.tags.add("twin")
            if m.age(self.today) >= 70 and rng.random() < 0.25:
                # what the elderly give when asked is often the lunar birthday: 20–50 days earlier
                m.lunar_birth_date = m.birth_date - dt.timedelta(days=rng.randint(20, 50))
            if m.age(self.today) >= 35:
                p_htn = 0.12 + 0.01 * (m.age(self.today) - 35)
                m.hypertension = rng.random() < min(p_htn, 0.6)
                m.diabetes = rng.random() < (0.06 + 0.002 * (m.age(self.today) - 35))
        return members


def make_residents(n: int, maker: ResidentMaker) -> list[Resident]:
    residents: list[Resident] = []
    hh = 0
    while len(residents) < n:
        residents.extend(maker.household(hh, len(residents)))
        hh += 1
    return residents[:n]
