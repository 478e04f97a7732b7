"""Lab and exam items: which county item a member's local code is, and values in one canonical unit.

The maps are the county's configuration, reviewed by its lab staff, not code: ``config/harmonisation/
lab_item_map.csv`` and ``exam_item_map.csv`` (``code_system, local_code, local_name, item_code, …``), keyed
by the *code system* a source declares (members on one vendor's HIS share one). The county's item catalogue
(LOINC, canonical unit, conversion factors, physiological limits) is :mod:`countyhealth.reference`.
A local code missing from the map is not an error here: it is the coverage report's to-do list.

Units arrive in cosmetic variants (``mmol/l``, ``μmol/L``, ``10^9/L``, full-width letters); :func:`normalise_unit`
gives one spelling so each item lists each unit once.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from countyhealth import reference, settings


@dataclass(frozen=True)
class MapEntry:
    code_system: str
    local_code: str
    local_name: str
    item_code: str
    standard_code: str  # LOINC for labs, the procedure code for exams


def _map_path(name: str) -> Path:
    return settings.config_dir() / "harmonisation" / name


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@lru_cache(maxsize=8)
def _load(path: str, mtime: float, standard_col: str) -> dict[tuple[str, str], MapEntry]:
    out: dict[tuple[str, str], MapEntry] = {}
    p = Path(path)
    if not p.exists():
        return out
    with p.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not row.get("item_code"):
                continue  # a local code the county decided not to map (kept in the file for the record)
            key = (row["code_system"].strip(), row["local_code"].strip())
            out[key] = MapEntry(key[0], key[1], row.get("local_name", ""), row["item_code"].strip(),
                                (row.get(standard_col) or "").strip())
    return out


def lab_map() -> dict[tuple[str, str], MapEntry]:
    path = _map_path("lab_item_map.csv")
    return _load(str(path), _mtime(path), "loinc")


def exam_map() -> dict[tuple[str, str], MapEntry]:
    path = _map_path("exam_item_map.csv")
    return _load(str(path), _mtime(path), "procedure_code")


def item_for(code_system: str | None, local_code: str | None) -> reference.LabItem | None:
    """The county lab item a member's local code stands for, or None when unmapped."""
    if not code_system or not local_code:
        return None
    entry = lab_map().get((code_system, str(local_code).strip()))
    return reference.lab_items().get(entry.item_code) if entry else None


def exam_item_for(code_system: str | None, local_code: str | None) -> reference.ExamItem | None:
    if not code_system or not local_code:
        return None
    entry = exam_map().get((code_system, str(local_code).strip()))
    return reference.exam_items().get(entry.item_code) if entry else None


_UNIT_SUBS = [
    (re.compile(r"[μµ]"), "u"),
    (re.compile(r"\^"), "*"),
    (re.compile(r"\s+"), ""),
]
_CANONICAL_SPELLING = {u.lower(): u for item in reference.lab_items().values() for u in item.unit_factors}


def normalise_unit(unit: str | None) -> str | None:
    """One spelling per unit: ``mmol/l`` → ``mmol/L``, ``μmol/L`` → ``umol/L``, ``10^9/L`` → ``10*9/L``."""
    if unit is None:
        return None
    text = unit.translate({i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)}).strip()
    for rx, rep in _UNIT_SUBS:
        text = rx.sub(rep, text)
    if not text:
        return None
    return _CANONICAL_SPELLING.get(text.lower(), text)


def unit_key(unit: str | None) -> str | None:
    """The key the warehouse matches units on (results.UNIT_KEY_SQL computes the same in SQL)."""
    if unit is None:
        return None
    return unit.replace("μ", "u").replace("µ", "u").replace("^", "*").lower()


def unit_allowed(item: reference.LabItem, unit: str | None) -> bool:
    if not item.quantitative:
        return True
    return normalise_unit(unit) in item.unit_factors


class UnitNotAllowed(ValueError):
    pass


def to_canonical(item: reference.LabItem, value: float, unit: str | None) -> tuple[float, str]:
    """``value`` in ``unit`` → (value in the item's canonical unit, canonical unit)."""
    u = normalise_unit(unit)
    if u not in item.unit_factors:
        raise UnitNotAllowed(f"unit {unit!r} not allowed for {item.item_code} ({item.name}); allowed: "
                             f"{', '.join(item.unit_factors)}")
    return value * item.unit_factors[u], item.canonical_unit


def config_fingerprint() -> str:
    """Changes when a map file changes (so derived tables know to refresh)."""
    return ":".join(f"{int(_mtime(_map_path(n)))}" for n in ("lab_item_map.csv", "exam_item_map.csv")) + \
        f":{os.environ.get('COUNTYHEALTH_CONFIG_DIR', '')}"
