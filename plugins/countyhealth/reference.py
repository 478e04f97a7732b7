"""The county's reference catalogue: standard lab and exam items.

Shared by the simulator (what members report), validation (physiological limits and allowed units — wide
limits, never reference ranges) and shared results (LOINC, canonical unit and conversion factors, the
recognised-item code and its validity window). Data lives in ``reference/*.csv`` beside this module so a
county can review it without reading code; which items the county recognises and for how long is local
configuration (DOMAIN.md) and may override ``validity_days``.

A conversion factor multiplies a value in the alternative unit to give the canonical unit
(glucose 90 mg/dL × 0.05551 = 5.0 mmol/L).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_DIR = Path(__file__).resolve().parent / "reference"


@dataclass(frozen=True)
class LabItem:
    item_code: str  # county recognised-item code (互认项目代码)
    name: str
    loinc: str
    category: str
    specimen: str
    kind: str  # quantitative | qualitative
    canonical_unit: str | None
    unit_factors: dict[str, float]  # unit -> factor to canonical (canonical itself maps to 1.0)
    phys_low: float | None
    phys_high: float | None
    ref_low: float | None
    ref_high: float | None
    validity_days: int

    @property
    def quantitative(self) -> bool:
        return self.kind == "quantitative"

    def to_canonical(self, value: float, unit: str) -> float:
        """Convert ``value`` in ``unit`` to the canonical unit; KeyError names the unit when not allowed."""
        try:
            return value * self.unit_factors[unit]
        except KeyError:
            raise KeyError(f"unit {unit!r} not allowed for {self.item_code} ({self.name}); allowed: "
                           f"{', '.join(self.unit_factors)}") from None


@dataclass(frozen=True)
class ExamItem:
    item_code: str
    name: str
    category: str  # codes.EXAM_CATEGORY
    procedure_code: str
    body_site: str
    validity_days: int


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


@cache
def lab_items() -> dict[str, LabItem]:
    items = {}
    with (_DIR / "lab_items.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            factors = {}
            if row["canonical_unit"]:
                factors[row["canonical_unit"]] = 1.0
            for pair in filter(None, row["alt_units"].split(";")):
                unit, factor = pair.rsplit(":", 1)
                factors[unit] = float(factor)
            items[row["item_code"]] = LabItem(
                row["item_code"], row["name"], row["loinc"], row["category"], row["specimen"], row["kind"],
                row["canonical_unit"] or None, factors, _num(row["phys_low"]), _num(row["phys_high"]),
                _num(row["ref_low"]), _num(row["ref_high"]), int(row["validity_days"]),
            )
    return items


@cache
def exam_items() -> dict[str, ExamItem]:
    with (_DIR / "exam_items.csv").open(encoding="utf-8") as fh:
        return {r["item_code"]: ExamItem(r["item_code"], r["name"], r["category"], r["procedure_code"],
                                         r["body_site"], int(r["validity_days"])) for r in csv.DictReader(fh)}
