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
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from countyhealth import privacy, resident_id
from countyhealth.standardise import person as std

COLUMNS = ["unique_id", "source_id", "source_record_id", "facility_code", "name_std", "surname", "given",
           "name_pinyin", "surname_pinyin", "given_pinyin", "name_fuzzy", "name_words", "sex", "birth_date", "birth_year",
           "id18", "id_valid", "id_hash", "id_sealed", "id_birth_date", "id_foreign", "phone", "phone_hash",
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


@lru_cache(maxsize=100_000)  # (a run asks for a night's addresses twice: to write repeats, then to build features)
def _address_parts(text: str | None) -> tuple:
    a = std.standardise_address(text)
    # blocking keys for addresses written in words (not Chinese): the first two words (number and street) and
    # the last two (postcode and region, or district) — Chinese addresses block on name, birth date and ID
    words = a.rest.split() if a.rest and std.is_latin(a.rest) else []
    head, tail = (" ".join(words[:2]), " ".join(words[-2:])) if len(words) >= 3 else (None, None)
    return a.township, a.village, a.house_number, a.rest, head, tail


def _identifiers(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record: the key compared (a resident ID's 18-digit form, else the normalised text of another scheme's
    number), whether it is a valid resident ID, and the birth date a valid one carries (ISO text)."""
    p = resident_id.parse_many(raw)  # a column at a time: a million IDs in about a second
    key = p.id18.copy()
    # an identifier that is not a resident ID at all (a passport, another country's number) is still compared,
    # in its normalised text: exact or one edit apart is evidence whatever the scheme; only a valid resident ID
    # counts as valid (the guards and deterministic links need one)
    other = np.flatnonzero(pd.isna(key) & pd.notna(raw))
    key[other] = per_distinct(raw[other], _other_identifier)
    # shared by strangers (000000000000000000, a run of digits): no evidence, and no blocking key; a valid ID
    # (check digit, birth date) is never one
    doubtful = np.flatnonzero(~p.valid & pd.notna(key))
    key[doubtful[per_distinct(key[doubtful], std.is_placeholder) == True]] = None  # noqa: E712 (an object array)
    birth = np.where(np.isnat(p.birth_date), None, np.datetime_as_string(p.birth_date).astype(object))
    return key, p.valid, birth


def _keyed_hashes(values: np.ndarray, purpose: str) -> np.ndarray:
    table = privacy.keyed_hashes(pd.unique(values[pd.notna(values)]), purpose)  # the key derived once
    return per_distinct(values, table.get)


def _household(township, village, house_number) -> str | None:
    if township.__class__ is str and village.__class__ is str and house_number.__class__ is str:
        return f"{township}|{village}|{house_number}"  # the usual case, without building a list
    if not isinstance(township, str) and not isinstance(village, str):
        return None  # a house number alone (12 Smith Street's 12) is no household
    return "|".join(p for p in (township, village, house_number) if isinstance(p, str)) or None


def per_distinct(values, fn) -> np.ndarray:
    """``fn`` once per distinct value of ``values``, spread back over them (None stays None) — an object array."""
    return _spread(values, fn, None)


def _spread(values, fn, columns: list[str] | None):
    """``fn`` once per distinct value, spread back over the rows: one array, or (``fn`` returning a tuple) one array
    per name in ``columns``. Factorised rather than looked up in a dict or an index: a million rows at a time."""
    codes, distinct = pd.factorize(np.asarray(values, dtype=object))
    results = [fn(v) for v in distinct]

    def column(items) -> np.ndarray:
        table = np.empty(len(distinct) + 1, dtype=object)  # the last slot answers code -1 (missing)
        table[:-1] = items
        table[-1] = None
        return table[codes]

    if columns is None:
        return column(results)
    return {c: column([r[j] for r in results]) for j, c in enumerate(columns)}


def as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """A feature frame with every column as Python objects, None for missing — what the guards and clustering read.
    Candidates come from the warehouse Arrow-backed (``pd.ArrowDtype``: scored in DuckDB without conversion,
    :func:`store.features_of`); only the few records clustering looks at are converted, here."""
    arrow = [c for c in frame.columns if isinstance(frame[c].dtype, pd.ArrowDtype)]
    if not arrow:
        return frame
    out = frame.copy(deep=False)
    for c in arrow:
        out[c] = frame[c].to_numpy(dtype=object, na_value=None)
    return out


def _decrypted(values: np.ndarray) -> np.ndarray:
    table = privacy.decrypt_many(pd.unique(values[pd.notna(values)]))  # the key derived once
    return per_distinct(values, table.get)


def _getter(rows: pd.DataFrame):
    none = np.full(len(rows), None, dtype=object)
    return lambda col: rows[col].to_numpy(dtype=object) if col in rows else none


def _as_given(rows: pd.DataFrame, get) -> dict[str, np.ndarray]:
    """The columns a row gives with little work: its ids, the name normalised, sex, birth date, health-record
    number (placeholders dropped)."""
    out = {"source_id": get("source_id"), "source_record_id": get("source_record_id")}
    out["unique_id"] = out["source_id"] + "|" + out["source_record_id"]
    out["name_std"] = per_distinct(get("name"), std.normalise_name)
    sex = get("sex_code")
    out["sex"] = np.where(np.isin(sex, ["1", "2"]), sex, None)
    births = rows["birth_date"] if "birth_date" in rows else pd.Series(get("birth_date"))
    if pd.api.types.is_datetime64_any_dtype(births):
        births = births.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    out["birth_date"] = per_distinct(births, _date_text)  # NaT and NaN become None here too
    out["health_record_number"] = per_distinct(get("health_record_number"),
                                               lambda v: None if isinstance(v, str) and std.is_placeholder(v) else v)
    out["batch_id"] = get("batch_id")
    return out


# what _address_parts gives, in order; the first three a source may also store in columns of their own
# (address_township, …: the platform), which win
_ADDRESS_PARTS = ["township", "village", "house_number", "address_text", "address_head", "address_tail"]
_GIVEN_PARTS = _ADDRESS_PARTS[:3]


def _addresses(rows: pd.DataFrame, get) -> dict[str, np.ndarray]:
    out = _spread(get("address"), _address_parts, _ADDRESS_PARTS)
    for col in _GIVEN_PARTS:
        given = f"address_{col}"  # a source that stores the parts in their own columns (the platform) wins
        if given in rows:
            stored = get(given)
            out[col] = np.where(pd.isna(stored), out[col], stored)
    out["household_key"] = [_household(t, v, h) for t, v, h in zip(out["township"], out["village"], out["house_number"])]
    return out


# what store.find_repeats compares of a warehouse row; the address columns it writes for a repeat come from
# address_keys (computed while the warehouse looks for the repeats)
REPEAT_KEYS = ["source_id", "source_record_id", "batch_id", "id_hash", "name_std", "birth_date", "sex", "phone_hash",
               "health_record_number"]
ADDRESS_KEYS = ["source_id", "source_record_id", *_ADDRESS_PARTS, "household_key"]


def _arrow_spread(values: pa.Array, fn, n_out: int | None = None):
    """:func:`_spread` on an Arrow column: ``fn`` once per distinct value (nulls stay null), spread back by the
    dictionary's indices — nothing but the distinct values becomes a Python object."""
    encoded = pc.dictionary_encode(values)
    results = [fn(v) for v in encoded.dictionary.to_pylist()]
    if n_out is None:
        return pc.take(pa.array(results, pa.string()), encoded.indices)
    return [pc.take(pa.array([r[j] for r in results], pa.string()), encoded.indices) for j in range(n_out)]


def _arrow_column(rows: pa.Table):
    n = rows.num_rows

    def col(name) -> pa.Array:  # (contiguous: one layout for the columns the kernels below pair row by row)
        return rows[name].combine_chunks() if name in rows.column_names else pa.nulls(n, pa.string())
    return col


def repeat_keys(rows: pa.Table) -> pa.Table:
    """Warehouse person rows (Arrow, as :func:`store.to_link` reads them) → what :func:`store.find_repeats` compares
    of each: the ID's keyed hash as the warehouse keeps it (nothing decrypted), name, birth date, sex, phone hash,
    health-record number — of rows carrying all of ID, name, birth date and sex (no other can repeat a person); no
    pinyin, no address (:func:`address_keys`). The same values :func:`build` gives (test_features.py and
    test_linking.py compare them), computed a column at a time: most of a night's records are repeats, and as Python
    objects their columns cost more than standardising their distinct values."""
    text = pa.string()
    col = _arrow_column(rows)
    births = col("birth_date")
    if pa.types.is_timestamp(births.type):
        births = births.cast(pa.date32())
    births = births.cast(text) if pa.types.is_date(births.type) else pc.utf8_slice_codeunits(births.cast(text), 0, 10)
    sex = col("sex_code").cast(text)
    out = {"source_id": col("source_id"), "source_record_id": col("source_record_id"), "batch_id": col("batch_id"),
           "id_hash": col("id_number_hash"), "name_std": _arrow_spread(col("name"), std.normalise_name),
           "birth_date": births, "sex": pc.if_else(pc.is_in(sex, pa.array(["1", "2"])), sex, pa.scalar(None, text)),
           "phone_hash": col("phone_hash"),
           "health_record_number": _arrow_spread(col("health_record_number"),
                                                 lambda v: None if std.is_placeholder(v) else v)}
    keep = pc.and_(pc.and_(pc.is_valid(out["id_hash"]), pc.is_valid(out["name_std"])),
                   pc.and_(pc.is_valid(out["birth_date"]), pc.is_valid(out["sex"])))
    return pa.table({c: pc.filter(out[c], keep) for c in REPEAT_KEYS})


def address_keys(rows: pa.Table) -> pa.Table:
    """Warehouse person rows (Arrow) → their address columns as :func:`build` gives them (a source's own township,
    village and house number winning), with the household key, a column at a time. Each distinct address is
    standardised once and remembered (``_address_parts``): a night asks again for the records it goes on to build."""
    col = _arrow_column(rows)
    out = {"source_id": col("source_id"), "source_record_id": col("source_record_id")}
    for name, part in zip(_ADDRESS_PARTS, _arrow_spread(col("address"), _address_parts, len(_ADDRESS_PARTS))):
        given = f"address_{name}"
        out[name] = pc.coalesce(col(given), part) if name in _GIVEN_PARTS and given in rows.column_names else part
    # (row by row, as build: pyarrow's binary_join_element_wise, told to skip nulls, drops a row whose parts are all
    # null — a record without an address — and the columns no longer line up)
    out["household_key"] = pa.array([_household(t, v, h) for t, v, h in zip(
        out["township"].to_pylist(), out["village"].to_pylist(), out["house_number"].to_pylist())], pa.string())
    return pa.table({c: out[c] for c in ADDRESS_KEYS})


def build(rows: pd.DataFrame) -> pd.DataFrame:
    """Canonical person rows (as stored in the warehouse; ID/phone may be ciphertext) → feature frame.
    Work is done once per distinct name, ID, phone and address: they repeat across a resident's records and a
    household's members, so a million records cost a fraction of a million conversions; columns are carried as
    arrays and spread back by factorised codes."""
    get = _getter(rows)
    out = _as_given(rows, get)
    out["facility_code"] = get("facility_code")
    out.update(_spread(out["name_std"], _name_parts, ["surname", "given", "name_pinyin", "surname_pinyin",
                                                      "given_pinyin", "name_fuzzy", "name_words"]))
    out["birth_year"] = per_distinct(out["birth_date"], lambda d: d[:4])
    given_ids = get("id_number")
    plain_ids = _decrypted(given_ids)
    id_key, valid, id_birth = _identifiers(plain_ids)
    years_apart = np.abs(per_distinct(out["birth_date"], std.year_of).astype(float)
                         - per_distinct(id_birth, std.year_of).astype(float))
    with np.errstate(invalid="ignore"):
        foreign = valid & (years_apart >= 12)  # a different generation: a guardian's or a relative's ID
    out["id18"] = np.where(foreign, None, id_key)
    out["id_valid"] = valid & ~foreign
    # a warehouse row carries its ID sealed and the keyed hash of its 18 digits (privacy.protect_person): a valid
    # ID's hash is that one, and its sealed form is the row's own token when the ID was written in its 18 digits —
    # neither is computed again
    given_hash = get("id_number_hash")
    reuse = out["id_valid"] & pd.notna(given_hash)
    out["id_hash"] = np.where(reuse, given_hash, None)
    out["id_hash"][~reuse] = _keyed_hashes(out["id18"][~reuse], "id_number")
    as_written = out["id_valid"] & (plain_ids == out["id18"])
    out["id_sealed"] = np.full(len(rows), None, dtype=object)
    out["id_sealed"][as_written] = np.where(per_distinct(given_ids[as_written], privacy.is_sealed) == True,  # noqa: E712
                                            given_ids[as_written], None)
    out["id_birth_date"] = np.where(foreign, None, id_birth)
    out["id_foreign"] = foreign
    # a phone is only ever compared for equality (the model's level, two blocking rules, the household guards), so
    # it is compared by the keyed hash of its normalised digits: warehouse rows carry that hash already
    # (privacy.protect_person) and need no decrypting (two decrypts a record were most of a night's
    # features); other rows (a file to link) hash here. No phone digits in the features.
    stored = get("phone_hash")
    hashed = pd.notna(stored)
    phones = _decrypted(np.where(hashed, None, get("phone")))
    out["phone_hash"] = np.where(hashed, stored, _keyed_hashes(per_distinct(phones, std.normalise_phone), "phone"))
    out["phone"] = out["phone_hash"]
    out.update(_addresses(rows, get))
    out["updated_at"] = get("source_updated_at")
    frame = pd.DataFrame({c: out[c] for c in COLUMNS}, dtype=object)
    for col in ("source_id", "source_record_id", "unique_id", "facility_code", "health_record_number",
                "updated_at", "batch_id"):  # as they came: NaN and NaT mean missing too
        values = frame[col].to_numpy()
        missing = pd.isna(values)
        if missing.any():
            values[missing] = None
    return frame
