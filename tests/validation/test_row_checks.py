"""The vectorised row checks agree with the one-at-a-time domain code they speed up."""

from __future__ import annotations

import datetime as dt
import random

import pandas as pd

from countyhealth import resident_id
from countyhealth.validation import row_checks


def _id_variants(rng: random.Random) -> list:
    out: list = [None, "", "   ", "abc", "X" * 18, "12345", "350125198002301234", "3501251980023012",
                 "350125" + "٣" * 12]  # Arabic-Indic digits: re's \d matches them
    for _ in range(400):
        born = dt.date(1900, 1, 1) + dt.timedelta(days=rng.randrange(0, 46000))  # some in the future
        good = resident_id.make(f"35{rng.randrange(10**4):04d}", born, rng.randrange(1000))
        out.append(good)
        out.append(good[:17] + rng.choice("0123456789X"))  # often a wrong check character
        out.append(good[:-1] + good[-1].lower())
        out.append(f" {good[:6]} {good[6:14]} {good[14:]} ")
        out.append(good.translate({ord(c): 0xFF10 + int(c) for c in "0123456789"}))  # full-width
        out.append(good[:6] + "-" + good[6:])
        if born.year < 2000:
            out.append(good[:6] + good[8:17])  # the old 15-digit form
        out.append(good[:6] + "18" + good[8:])  # born in the 1800s: before 1880 for most
    return out


def test_parse_ids_gives_the_same_answers_as_resident_id_parse():
    values = _id_variants(random.Random(11))
    got = row_checks.parse_ids(pd.Series(values, dtype=object))
    for i, v in enumerate(values):
        p = resident_id.parse(v) if v is not None else None
        valid = bool(p and p.valid)
        assert got["valid"].iat[i] == valid, v
        assert got["was_15"].iat[i] == (valid and p.was_15), v
        if valid:
            assert got["birth"].iat[i] == pd.Timestamp(p.birth_date) and got["sex"].iat[i] == p.sex, v
        else:
            assert pd.isna(got["birth"].iat[i]) and got["sex"].iat[i] is None, v


def test_parse_ids_keeps_the_index_and_handles_repeats():
    good = resident_id.make("350125", dt.date(1980, 1, 1), 123)
    ids = pd.Series([good, None, good, "bad"], index=[10, 20, 30, 40], dtype=object)
    got = row_checks.parse_ids(ids)
    assert list(got.index) == [10, 20, 30, 40] and got["valid"].tolist() == [True, False, True, False]
    assert row_checks.resident_id_valid(ids).tolist() == [True, True, True, False]  # null: completeness' business


def test_lab_judgement_runs_once_per_distinct_code_and_unit(monkeypatch):
    calls = []
    real = row_checks.lab_item
    monkeypatch.setattr(row_checks, "lab_item", lambda cs, code: calls.append(code) or real(cs, code))
    n = 30_000
    codes = pd.Series(["JY011", "JY041", None] * (n // 3), dtype=object)
    units = pd.Series(["mg/dL", "mmol/L", None] * (n // 3), dtype=object)
    values = pd.Series([99.0, 4.1, None] * (n // 3))
    ok = row_checks.lab_within_limits(codes, values, units, "his_vendor_b")
    assert ok.all() and len(calls) == 2
