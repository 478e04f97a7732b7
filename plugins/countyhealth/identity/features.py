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
           "id18", "id_valid", "id_hash", "id_birth_date", "id_foreign", "phone", "phone_hash",
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
    # blocking keys for addresses written in words (not Chinese): the first two words (number and street) and
    # the last two (postcode and region, or district) — Chinese addresses block on name, birth date and ID
    words = a.rest.split() if a.rest and std.is_latin(a.rest) else []
    head, tail = (" ".join(words[:2]), " ".join(words[-2:])) if len(words) >= 3 else (None, None)
    return a.township, a.village, a.house_number, a.rest, head, tail


def _id_parts(raw: str | None) -> tuple:
    p = std.standardise_id(raw)
    # an identifier that is not a resident ID at all (a passport, another country's number) is still compared,
    # in its normalised text: exact or one edit apart is evidence whatever the scheme; only a valid resident ID
    # counts as valid (the guards and deterministic links need one)
    key = p.id18 or _other_identifier(raw)
    return key, bool(p.valid), p.birth_date.isoformat() if p.birth_date else None


def _per_unique(series: pd.Series, fn) -> dict:
    return {v: fn(v) for v in series.dropna().unique()}


def _spread(series: pd.Series, fn, columns: list[str]) -> pd.DataFrame:
    """``fn`` (returning a tuple) once per distinct value of ``series``, spread back over its rows as columns."""
    values = series.dropna().unique()
    table = pd.DataFrame([fn(v) for v in values], index=values, columns=columns, dtype=object) if len(values) \
        else pd.DataFrame(columns=columns, dtype=object)
    return table.reindex(series.to_numpy()).set_axis(series.index)


def _plain(series: pd.Series) -> pd.Series:
    """Stored ciphertext → plaintext, once per distinct value."""
    return series.map(_per_unique(series, lambda v: privacy.decrypt(v) if isinstance(v, str) else None))


def build(rows: pd.DataFrame) -> pd.DataFrame:
    """Canonical person rows (as stored in the warehouse; ID/phone may be ciphertext) → feature frame.
    Work is done once per distinct name, ID, phone and address: they repeat across a resident's records and a
    household's members, so a million records cost a fraction of a million conversions."""
    n = len(rows)
    get = lambda c: rows[c] if c in rows else pd.Series([None] * n, index=rows.index, dtype=object)  # noqa: E731
    out = pd.DataFrame(index=rows.index)
    out["source_id"] = get("source_id")
    out["source_record_id"] = get("source_record_id")
    out["unique_id"] = out["source_id"] + "|" + out["source_record_id"]
    out["facility_code"] = get("facility_code")
    names = get("name")
    out["name_std"] = names.map(_per_unique(names, std.normalise_name))
    name_cols = ["surname", "given", "name_pinyin", "surname_pinyin", "given_pinyin", "name_fuzzy", "name_words"]
    out[name_cols] = _spread(out["name_std"], _name_parts, name_cols)
    sex = get("sex_code")
    out["sex"] = sex.where(sex.isin(["1", "2"]), None)
    births = get("birth_date")
    out["birth_date"] = births.dt.strftime("%Y-%m-%d") if pd.api.types.is_datetime64_any_dtype(births) \
        else births.map(_per_unique(births, _date_text)).astype(object)
    out["birth_year"] = out["birth_date"].str[:4]
    ids = _plain(get("id_number"))
    sid = _spread(ids, _id_parts, ["key", "valid", "birth"])
    valid = sid["valid"].eq(True)
    id_birth = sid["birth"]
    years_apart = (pd.to_numeric(out["birth_year"], errors="coerce") - pd.to_numeric(id_birth.str[:4], errors="coerce")).abs()
    foreign = valid & (years_apart >= 12)  # a different generation: a guardian's or a relative's ID
    out["id18"] = sid["key"].where(~foreign, None)
    out["id_valid"] = valid & ~foreign
    out["id_hash"] = out["id18"].map(privacy.keyed_hashes(out["id18"].dropna().unique(), "id_number"))
    out["id_birth_date"] = id_birth.where(~foreign, None)
    out["id_foreign"] = foreign
    phones = _plain(get("phone"))
    out["phone"] = phones.map(_per_unique(phones, std.normalise_phone))
    out["phone_hash"] = out["phone"].map(privacy.keyed_hashes(out["phone"].dropna().unique(), "phone"))
    out["health_record_number"] = get("health_record_number")
    addr_cols = ["township", "village", "house_number", "address_text", "address_head", "address_tail"]
    addr = _spread(get("address"), _address_parts, addr_cols)
    for col in addr_cols:
        given = f"address_{col}"  # a source that stores the parts in their own columns (the platform) wins
        out[col] = get(given).fillna(addr[col]) if col in ("township", "village", "house_number") and given in rows \
            else addr[col]
    out["household_key"] = [("|".join(p for p in (t, v, h) if isinstance(p, str)) or None)
                            for t, v, h in zip(out["township"], out["village"], out["house_number"])]
    out["updated_at"] = get("source_updated_at")
    out["batch_id"] = get("batch_id")
    out = out.astype(object).where(out.notna(), None)
    return out[COLUMNS].reset_index(drop=True)
