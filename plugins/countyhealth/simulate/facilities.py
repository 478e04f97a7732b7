"""The facility registry of a county medical community (医共体成员单位) and their EQA certifications.

Default shape follows Yongtai county (永泰县, region 350125): 3 county-level hospitals on HIS vendor A,
20 township health centres on vendor B, ~13 village clinics per township (their visits are recorded in the
township's HIS under the clinic's own code, as 乡村一体化 management does).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from countyhealth import reference

TOWNSHIPS = [
    "樟城镇", "城峰镇", "清凉镇", "岭路乡", "富泉乡", "赤锡乡", "梧桐镇", "嵩口镇", "洑口乡", "盖洋乡",
    "长庆镇", "东洋乡", "霞拔乡", "同安镇", "大洋镇", "盘谷乡", "红星乡", "白云乡", "丹云乡", "葛岭镇",
    "塘前乡", "富溪镇", "丰田镇", "西溪镇",
]
VILLAGE_SUFFIX = ["村", "村", "村", "社区"]
VILLAGE_STEMS = list("上下东西南北前后大小新中溪坑洋山头尾坪垄岭湖桥")


@dataclass(frozen=True)
class Facility:
    code: str  # organisation code (机构代码)
    name: str
    level: str  # county / township / village
    his_vendor: str | None  # "A" county-level, "B" township; villages use their township's HIS
    parent_code: str | None
    township: str | None
    region_code: str

    @property
    def his_code(self) -> str:
        """The facility whose HIS database holds this facility's records."""
        return self.parent_code if self.level == "village" else self.code


def make_facilities(region: str, county_name: str, n_county: int, n_township: int, villages_per_township: int,
                    rng: random.Random) -> list[Facility]:
    out: list[Facility] = []
    county_names = [f"{county_name}医院", f"{county_name}中医院", f"{county_name}妇幼保健院"]
    for i in range(n_county):
        name = county_names[i] if i < len(county_names) else f"{county_name}第{i + 1}医院"
        out.append(Facility(f"H{region}{i + 1:03d}", name, "county", "A", None, None, region))
    for t in range(n_township):
        township = TOWNSHIPS[t % len(TOWNSHIPS)] + ("" if t < len(TOWNSHIPS) else str(t // len(TOWNSHIPS)))
        tcode = f"W{region}{101 + t:03d}"
        out.append(Facility(tcode, f"{county_name}{township}卫生院", "township", "B", None, township, region))
        for v in range(villages_per_township):
            vname = rng.choice(VILLAGE_STEMS) + rng.choice(VILLAGE_STEMS) + rng.choice(VILLAGE_SUFFIX)
            out.append(Facility(f"C{region}{101 + t:03d}{v + 1:03d}", f"{township}{vname}卫生室", "village",
                                None, tcode, township, region))
    return out


@dataclass(frozen=True)
class Certification:
    """External quality assessment (室间质评) result for one item at one facility in one period."""

    facility_code: str
    item_code: str
    period_start: dt.date
    period_end: dt.date
    passed: bool


def make_certifications(facilities: list[Facility], start: dt.date, end: dt.date,
                        rng: random.Random) -> list[Certification]:
    """Yearly EQA cycles. County hospitals pass nearly everything; township labs a narrower set with
    occasional failures; village clinics run no lab."""
    items = list(reference.lab_items())
    out = []
    for year in range(start.year - 1, end.year + 1):
        p_start, p_end = dt.date(year, 1, 1), dt.date(year, 12, 31)
        for f in facilities:
            if f.level == "village":
                continue
            for item in items:
                if f.level == "township" and reference.lab_items()[item].category in ("甲状腺", "凝血", "免疫"):
                    if rng.random() < 0.6:
                        continue  # not enrolled in EQA for this item
                pass_rate = 0.98 if f.level == "county" else 0.85
                out.append(Certification(f.code, item, p_start, p_end, rng.random() < pass_rate))
    return out
