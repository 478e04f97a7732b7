"""The row-level computations behind the custom expectations, as plain vectorised pandas functions.

Each takes columns of one chunk and returns a boolean Series (True = the row passes). The GX metric providers
in :mod:`.expectations` call them, so GX runs exactly this code; keeping them free of GX lets the validation
benchmark time the same rules without GX's machinery, and keeps them readable.

Nothing here loops over rows in Python: resident IDs are parsed a column at a time
(:func:`countyhealth.resident_id.parse_many`), and work that is not vectorisable (finding a lab item) runs once
per distinct value — a county has a few hundred local lab codes — and is mapped back with a hash lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from countyhealth import reference, resident_id
from countyhealth.standardise import lab


def per_unique(series: pd.Series, fn: Callable) -> pd.Series:
    """``fn`` applied once per distinct non-null value, mapped back onto the rows (null stays null)."""
    return series.map({v: fn(v) for v in series.dropna().unique()})


# ---- resident ID (GB 11643) ----------------------------------------------------------------------------------

def parse_ids(ids: pd.Series) -> pd.DataFrame:
    """:func:`countyhealth.resident_id.parse_many` as a frame on the column's index: ``valid``, ``was_15`` (a valid
    ID in the old form), ``birth`` (datetime64, NaT unless valid) and ``sex`` ("1"/"2", None unless valid); null
    IDs give ``valid`` False."""
    p = resident_id.parse_many(ids.to_numpy(dtype=object))
    return pd.DataFrame({"valid": p.valid, "was_15": p.was_15 & p.valid, "birth": p.birth_date.astype("datetime64[ns]"),
                         "sex": p.sex}, index=ids.index)


def resident_id_valid(ids: pd.Series) -> pd.Series:
    """Well formed, correct ISO 7064 MOD 11-2 check character, real embedded birth date (15-digit accepted).
    Null passes (completeness is another rule's business)."""
    return (ids.isna() | parse_ids(ids)["valid"]).astype(bool)


def resident_id_not_legacy(ids: pd.Series) -> pd.Series:
    """False for a *valid* old 15-digit ID (an invalid one is :func:`resident_id_valid`'s finding)."""
    return (~parse_ids(ids)["was_15"]).astype(bool)


def resident_id_agrees(ids: pd.Series, birth_dates: pd.Series, sex_codes: pd.Series) -> pd.Series:
    """A valid ID's embedded birth date and sex parity equal the recorded ones. Rows without a valid ID, a
    birth date or a definite sex (GB/T 2261.1 0/9) are not judged on that part."""
    parsed = parse_ids(ids)
    birth = pd.to_datetime(birth_dates, errors="coerce")
    sex = sex_codes.astype(object)
    birth_ok = birth.isna() | (birth == parsed["birth"])
    sex_ok = ~sex.isin(["1", "2"]) | (sex == parsed["sex"])
    return (~parsed["valid"] | (birth_ok & sex_ok)).astype(bool)


# ---- presence --------------------------------------------------------------------------------------------

def both_present_or_absent(frame: pd.DataFrame) -> pd.Series:
    present = frame.notna()
    return present.all(axis=1) | (~present).all(axis=1)


def any_present(frame: pd.DataFrame) -> pd.Series:
    return frame.notna().any(axis=1)


# ---- lab items -----------------------------------------------------------------------------------------------

def lab_item(code_system: str | None, local_code) -> reference.LabItem | None:
    """The county lab item a member's local code stands for; None when unmapped (the coverage report's to-do,
    not a validation error). The one place validation asks — the map is :mod:`countyhealth.standardise.lab`."""
    return lab.item_for(code_system, local_code)


def lab_judgement(codes: pd.Series, values: pd.Series, units: pd.Series, code_system: str | None) -> pd.DataFrame:
    """Per row: ``quantitative`` (a mapped quantitative item), ``factor`` from the reported unit to the item's
    canonical unit (NaN: unit not allowed), the physiological limits ``low``/``high``, and ``value``. Item
    lookup and unit normalisation run once per distinct (local code, unit) pair."""
    keys = pd.DataFrame({"code": codes.astype(object), "unit": units.astype(object)}, index=codes.index)
    pairs = keys.drop_duplicates()
    info = []
    for code, unit in zip(pairs["code"], pairs["unit"]):
        item = lab_item(code_system, code) if isinstance(code, str) else None
        if item is None or not item.quantitative:
            info.append((False, float("nan"), float("nan"), float("nan")))
            continue
        factor = item.unit_factors.get(lab.normalise_unit(unit) if isinstance(unit, str) else None)
        info.append((True, float("nan") if factor is None else factor,
                     float("-inf") if item.phys_low is None else item.phys_low,
                     float("inf") if item.phys_high is None else item.phys_high))
    table = pd.DataFrame(info, columns=["quantitative", "factor", "low", "high"])
    table["code"], table["unit"] = pairs["code"].to_numpy(), pairs["unit"].to_numpy()
    out = keys.merge(table, on=["code", "unit"], how="left")  # null keys match null keys in a pandas merge
    out.index = codes.index
    out["quantitative"] = out["quantitative"].fillna(False).astype(bool)
    out["value"] = pd.to_numeric(values, errors="coerce").astype(float)
    return out


def lab_within_limits(codes: pd.Series, values: pd.Series, units: pd.Series, code_system: str | None) -> pd.Series:
    """Quantitative values, converted to the item's canonical unit, within wide physiological limits. A censored
    value (``<0.1``: operator ``<``, value 0.1) is judged by its number. Unmapped items, missing values and
    units not allowed are other rules' business."""
    j = lab_judgement(codes, values, units, code_system)
    canonical = j["value"] * j["factor"]
    judged = j["quantitative"] & canonical.notna()
    return (~judged | ((canonical >= j["low"]) & (canonical <= j["high"]))).astype(bool)


def lab_unit_allowed(codes: pd.Series, values: pd.Series, units: pd.Series, code_system: str | None) -> pd.Series:
    """A quantitative value's unit is the item's canonical unit or one with a known conversion factor."""
    j = lab_judgement(codes, values, units, code_system)
    return (~j["quantitative"] | j["value"].isna() | j["factor"].notna()).astype(bool)


# ---- intervals -----------------------------------------------------------------------------------------------

def no_overlapping_active(keys: pd.Series, begins: pd.Series, ends: pd.Series, statuses: pd.Series,
                          inactive_values: Sequence = ()) -> pd.Series:
    """Per key (a resident), no two active intervals (contracts) overlap. Of an overlapping pair the later one
    fails — the later begin, or on the same day the later row: a second team signing a resident who already
    has a family doctor is the error, not the resident's first contract. Only keys with two or more active
    intervals are self-joined, so the cost follows the duplicates."""
    df = pd.DataFrame({"key": keys, "b": pd.to_datetime(begins, errors="coerce"),
                       "e": pd.to_datetime(ends, errors="coerce"), "s": statuses}, index=keys.index)
    active = df["key"].notna() & df["b"].notna() & df["e"].notna() & ~df["s"].isin(list(inactive_values))
    ok = pd.Series(True, index=df.index)
    sub = df[active]
    sub = sub[sub["key"].duplicated(keep=False)]
    if sub.empty:
        return ok
    sub = sub.assign(_pos=np.arange(len(sub))).rename_axis("_i").reset_index()
    pairs = sub.merge(sub, on="key", suffixes=("", "_other"))
    later = (pairs["b"] > pairs["b_other"]) | ((pairs["b"] == pairs["b_other"]) & (pairs["_pos"] > pairs["_pos_other"]))
    pairs = pairs[later & (pairs["b"] <= pairs["e_other"]) & (pairs["b_other"] <= pairs["e"])]
    ok[pairs["_i"].unique()] = False
    return ok


def overlapped_loaded_interval(keys: pd.Series, numbers: pd.Series, begins: pd.Series, ends: pd.Series,
                               statuses: pd.Series, loaded: pd.DataFrame | None,
                               inactive_values: Sequence = ()) -> pd.Series:
    """For each active interval (a contract) of the chunk, the number of an already *loaded* active interval of
    the same key that it overlaps, else None — the cross-batch half of :func:`no_overlapping_active` (a
    nightly batch holds one day's signings; the resident's existing contract came in an earlier one).
    ``loaded`` has columns ``key, number, begin, end`` (active ones only). Loaded intervals whose number is in
    the chunk are ignored: the chunk holds their newer state (a renewal, a termination)."""
    out = pd.Series(None, index=keys.index, dtype=object)
    if loaded is None or loaded.empty:
        return out
    df = pd.DataFrame({"key": keys, "number": numbers, "b": pd.to_datetime(begins, errors="coerce"),
                       "e": pd.to_datetime(ends, errors="coerce"), "s": statuses}, index=keys.index)
    df = df[df["key"].notna() & df["b"].notna() & df["e"].notna() & ~df["s"].isin(list(inactive_values))]
    old = loaded[loaded["key"].isin(df["key"].unique()) & ~loaded["number"].isin(numbers.dropna().unique())]
    if df.empty or old.empty:
        return out
    old = old.assign(b=pd.to_datetime(old["begin"], errors="coerce"), e=pd.to_datetime(old["end"], errors="coerce"))
    pairs = df.rename_axis("_i").reset_index().merge(old[["key", "number", "b", "e"]], on="key",
                                                     suffixes=("", "_old"))
    pairs = pairs[(pairs["b"] <= pairs["e_old"]) & (pairs["b_old"] <= pairs["e"])]
    if len(pairs):
        first = pairs.sort_values("number_old").drop_duplicates("_i")
        out[first["_i"].to_numpy()] = first["number_old"].to_numpy()
    return out
