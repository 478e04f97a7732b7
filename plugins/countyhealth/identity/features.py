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
           "name_pinyin", "surname_pinyin", "given_pinyin", "name_fuzzy", "name_words", "sex", "birth_date", "birth_year",
           "birth_md", "id18", "id_valid", "id_hash", "id_birth_date", "id_foreign", "phone", "phone_hash",
           "health_record_number", "township", "village", "house_number", "household_key", "address_text",
           "address_head", "address_tail", "updated_at", "batch_id"]


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
    if std.is_latin(name):
        given_py = given
    elif pinyin and sur_py and len(pinyin.split()) > len(sur_py.split()):
        given_py = " ".join(pinyin.split()[len(sur_py.split()):])
    # the same words in any order: 张伟 and "Wei Zhang", or a family name written first in one file and last in another
    in_any_order = " ".join(sorted(pinyin.split())) if pinyin else None
    return surname, given, pinyin, sur_py, given_py, std.fuzzy_pinyin(pinyin), in_any_order


def _other_identifier(raw) -> str | None:
    text = std.resident_id.normalise(raw) if isinstance(raw, str) else None
    text = "".join(ch for ch in text if ch.isalnum()) if text else None
    return text if text and len(text) >= 4 else None


def _address_parts(text: str | None) -> tuple:
    a = std.standardise_address(text)
    return a.township, a.village, a.house_number, a.rest


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
    for i, col in enumerate(["surname", "given", "name_pinyin", "surname_pinyin", "given_pinyin", "name_fuzzy",
                           "name_words"]):
        out[col] = out["name_std"].map(lambda v, i=i: parts[v][i] if v in parts else None)
    sex = get("sex_code")
    out["sex"] = sex.where(sex.isin(["1", "2"]), None)
    out["birth_date"] = get("birth_date").map(_date_text)
    out["birth_year"] = out["birth_date"].str[:4]
    out["birth_md"] = out["birth_date"].str[5:]
    ids = get("id_number").map(lambda v: privacy.decrypt(v) if isinstance(v, str) else None)
    parsed = _per_unique(ids, std.standardise_id)
    sid = ids.map(lambda v: parsed.get(v))
    # an identifier that is not a resident ID at all (a passport, another country's number) is still compared,
    # in its normalised text: exact or one edit apart is evidence whatever the scheme; only a valid resident ID
    # counts as valid (the guards and deterministic links need one)
    id18 = pd.Series([p.id18 if p is not None and p.id18 else _other_identifier(v) for p, v in zip(sid, ids)],
                     index=ids.index, dtype=object)
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
    none = (None,) * 4
    out["township"] = get("address_township").fillna(addr.map(lambda v: addr_parts.get(v, none)[0]))
    out["village"] = get("address_village").fillna(addr.map(lambda v: addr_parts.get(v, none)[1]))
    out["house_number"] = get("address_house_number").fillna(addr.map(lambda v: addr_parts.get(v, none)[2]))
    # the whole address below county level, for addresses that name no township (or not in Chinese at all)
    out["address_text"] = addr.map(lambda v: addr_parts.get(v, none)[3])
    # blocking keys for addresses written in words (not Chinese): the first two words (number and street) and
    # the last two (postcode and region, or district) — Chinese addresses block on name, birth date and ID
    words = out["address_text"].map(lambda v: v.split() if isinstance(v, str) and std.is_latin(v) else None)
    out["address_head"] = words.map(lambda w: " ".join(w[:2]) if w and len(w) >= 3 else None)
    out["address_tail"] = words.map(lambda w: " ".join(w[-2:]) if w and len(w) >= 3 else None)
    out["household_key"] = [("|".join(p for p in (t, v, h) if isinstance(p, str)) or None)
                            for t, v, h in zip(out["township"], out["village"], out["house_number"])]
    out["updated_at"] = get("source_updated_at")
    out["batch_id"] = get("batch_id")
    out = out.astype(object).where(out.notna(), None)
    return out[COLUMNS].reset_index(drop=True)
