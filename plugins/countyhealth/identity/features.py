"""Person records → the features the EMPI compares (a pandas frame, one row per source record).

Plaintext ID numbers and phones exist only here, in memory and in Splink's in-memory DuckDB, for the
comparisons that need them (one substituted digit, a transposition): the warehouse holds them encrypted and
the identity tables only their keyed hashes.

A record whose ID contradicts its own birth date by years (an infant registered under the guardian's ID) keeps
the ID out of matching altogether: ``id_foreign`` marks it and ``id18`` is cleared, so it can neither link to
the guardian on the ID nor be split from its own other records because of it.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from countyhealth import privacy
from countyhealth.standardise import person as std

COLUMNS = ["unique_id", "source_id", "source_record_id", "facility_code", "name_std", "surname", "given",
           "name_pinyin", "surname_pinyin", "given_pinyin", "name_fuzzy", "sex", "birth_date", "birth_year",
           "birth_md", "id18", "id_valid", "id_hash", "id_birth_date", "id_foreign", "phone", "phone_hash",
           "health_record_number", "township", "village", "house_number", "household_key", "updated_at", "batch_id"]


def unique_id(source_id: str, source_record_id: str) -> str:
    return f"{source_id}|{source_record_id}"


def _date_text(value) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:10]


def _name_parts(name: str | None) -> tuple:
    surname, given = std.split_name(name)
    pinyin = std.name_pinyin(name)
    sur_py = std.name_pinyin(surname) if surname else None
    given_py = None
    if pinyin and sur_py and len(pinyin.split()) > len(sur_py.split()):
        given_py = " ".join(pinyin.split()[len(sur_py.split()):])
    return surname, given, pinyin, sur_py, given_py, std.fuzzy_pinyin(pinyin)


def _address_parts(text: str | None) -> tuple:
    a = std.standardise_address(text)
    return a.township, a.village, a.house_number


def _per_unique(series: pd.Series, fn) -> dict:
    return {v: fn(v) for v in series.dropna().unique()}


def build(rows: pd.DataFrame) -> pd.DataFrame:
    """Canonical person rows (as stored in the warehouse; ID/phone may be ciphertext) → feature frame.
    Work is done once per distinct name, ID, phone and address: they repeat across a resident's records and a
    household's members, so a million records cost a fraction of a million conversions."""
    n = len(rows)
    get = lambda c: rows[c] if c in rows else pd.Series([None] * n, index=rows.index)  # noqa: E731
    out = pd.DataFrame(index=rows.index)
    out["source_id"] = get("source_id")
    out["source_record_id"] = get("source_record_id")
    out["unique_id"] = out["source_id"] + "|" + out["source_record_id"]
    out["facility_code"] = get("facility_code")
    names = get("name")
    std_names = _per_unique(names, std.normalise_name)
    out["name_std"] = names.map(std_names)
    parts = _per_unique(out["name_std"], _name_parts)
    for i, col in enumerate(["surname", "given", "name_pinyin", "surname_pinyin", "given_pinyin", "name_fuzzy"]):
        out[col] = out["name_std"].map(lambda v, i=i: parts[v][i] if v in parts else None)
    sex = get("sex_code")
    out["sex"] = sex.where(sex.isin(["1", "2"]), None)
    out["birth_date"] = get("birth_date").map(_date_text)
    out["birth_year"] = out["birth_date"].str[:4]
    out["birth_md"] = out["birth_date"].str[5:]
    ids = get("id_number").map(lambda v: privacy.decrypt(v) if isinstance(v, str) else None)
    parsed = _per_unique(ids, std.standardise_id)
    sid = ids.map(lambda v: parsed.get(v))
    id18 = sid.map(lambda p: p.id18 if p is not None else None)
    valid = sid.map(lambda p: bool(p is not None and p.valid))
    id_birth = sid.map(lambda p: p.birth_date.isoformat() if p is not None and p.birth_date else None)
    years_apart = (pd.to_numeric(out["birth_year"], errors="coerce") - pd.to_numeric(id_birth.str[:4], errors="coerce")).abs()
    foreign = valid & (years_apart >= 12)  # a different generation: a guardian's or a relative's ID
    out["id18"] = id18.where(~foreign, None)
    out["id_valid"] = valid & ~foreign
    hashes = _per_unique(out["id18"], lambda v: privacy.keyed_hash(v, "id_number"))
    out["id_hash"] = out["id18"].map(hashes)
    out["id_birth_date"] = id_birth.where(~foreign, None)
    out["id_foreign"] = foreign
    phones = get("phone").map(lambda v: privacy.decrypt(v) if isinstance(v, str) else None)
    norm_phones = _per_unique(phones, std.normalise_phone)
    out["phone"] = phones.map(norm_phones)
    phone_hashes = _per_unique(out["phone"], lambda v: privacy.keyed_hash(v, "phone"))
    out["phone_hash"] = out["phone"].map(phone_hashes)
    out["health_record_number"] = get("health_record_number")
    addr = get("address")
    addr_parts = _per_unique(addr, _address_parts)
    out["township"] = get("address_township").fillna(addr.map(lambda v: addr_parts.get(v, (None,) * 3)[0]))
    out["village"] = get("address_village").fillna(addr.map(lambda v: addr_parts.get(v, (None,) * 3)[1]))
    out["house_number"] = get("address_house_number").fillna(addr.map(lambda v: addr_parts.get(v, (None,) * 3)[2]))
    out["household_key"] = [("|".join(p for p in (t, v, h) if isinstance(p, str)) or None)
                            for t, v, h in zip(out["township"], out["village"], out["house_number"])]
    out["updated_at"] = get("source_updated_at")
    out["batch_id"] = get("batch_id")
    out = out.astype(object).where(out.notna(), None)
    return out[COLUMNS].reset_index(drop=True)
