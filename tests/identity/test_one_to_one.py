"""The one-to-one prior between sources that hold each person once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from countyhealth.identity import one_to_one

PRIOR = 1e-4  # the model's λ: 10,000 records, one duplicate each


def _pairs(rows):
    return pd.DataFrame(rows, columns=["unique_id_l", "unique_id_r", "match_probability"])


def _register(n_a: int, n_b: int) -> pd.Series:
    return pd.Series(["A"] * n_a + ["B"] * n_b, index=[f"a{i}" for i in range(n_a)] + [f"b{i}" for i in range(n_b)])


def test_a_source_with_a_pair_in_the_review_band_within_it_or_a_handful_of_records_is_not_one_per_person():
    source_of = pd.concat([_register(200, 200), pd.Series(["C"] * 3, index=["c0", "c1", "c2"])])
    pairs = _pairs([("a0", "b0", 0.9999), ("a1", "a2", 0.7), ("b1", "b2", 0.3), ("c0", "b3", 0.9)])
    assert one_to_one.sources_one_per_person(pairs, source_of, review=0.5) == {"B"}


def test_a_lone_candidate_between_registers_that_match_almost_wholly_is_raised():
    """1,000 records on each side, 990 of them linked at 0.9999: nearly every record has its match over there, so a
    record's one moderate candidate (0.9 under λ) is very likely it."""
    n = 1000
    source_of = _register(n, n)
    strong = [(f"a{i}", f"b{i}", 0.9999) for i in range(990)]
    pairs = _pairs(strong + [("a990", "b990", 0.9)])
    out = one_to_one.rescore(pairs, source_of, {"A", "B"}, prior=PRIOR)
    assert out["match_probability"].iloc[-1] > 0.999
    assert (out["match_probability"].iloc[:990] > 0.9999).all()


def test_two_candidates_compete_and_pairs_within_a_source_or_certain_stay():
    n = 1000
    source_of = _register(n, n)
    strong = [(f"a{i}", f"b{i}", 0.9999) for i in range(990)]
    rivals = [("a990", "b990", 0.9), ("a990", "b991", 0.9)]  # b990 or b991: at most one of them
    pairs = _pairs(strong + rivals + [("a991", "a992", 0.9), ("a993", "b993", 1.0), ("a993", "b994", 0.9)])
    out = one_to_one.rescore(pairs, source_of, {"A", "B"}, prior=PRIOR).set_index(["unique_id_l", "unique_id_r"])
    p = out["match_probability"]
    assert p[("a990", "b990")] == pytest.approx(p[("a990", "b991")]) and p[("a990", "b990")] < 0.5
    assert p[("a991", "a992")] == 0.9 and p[("a993", "b993")] == 1.0
    assert p[("a993", "b994")] < 0.5  # a993 already has its match (b993, deterministic): b994 is not it too


def test_registers_that_barely_overlap_keep_the_prior_low():
    """Two registers of which few records match each other: a moderate pair stays moderate or falls."""
    n = 1000
    source_of = _register(n, n)
    pairs = _pairs([(f"a{i}", f"b{i}", 0.9999) for i in range(10)] + [("a500", "b500", 0.9)])
    out = one_to_one.rescore(pairs, source_of, {"A", "B"}, prior=PRIOR)
    assert out["match_probability"].iloc[-1] < 0.999


def test_the_share_with_a_match_is_estimated_from_the_records_bayes_factors():
    bf = np.full(900, 1e9)  # 900 of 1,000 records with an overwhelming candidate, 100 with none
    assert one_to_one._share_with_match(bf, 1000, 1000) == pytest.approx(0.9, abs=0.002)
