"""Links between sources that hold one record per person: a register, or an extract its system already deduplicated.

The Fellegi–Sunter probability of a pair starts from λ, the chance two records drawn at random match — 1 in
10,000 in a file of 10,000 records with one duplicate each. Between two sources that each hold a person once, a
record's match, if it has one, is one record of the other source: the prior that a given candidate is it is
π / n (π the share of the source's records that have a match there, n the other source's size), far above λ,
and a record's candidates compete — two strong ones cannot both be right (the one-to-one restriction of Jaro
1989 and Sadinle 2017, here as a posterior over each record's candidates rather than an assignment).

So for a pair (i, j) of two such sources: each record's candidates share the chance it has a match,
``P(j | i) = (π/n)·BF_ij / ((1 − π) + (π/n)·Σ_k BF_ik)`` with BF the pair's Bayes factor from the model, π
estimated by EM over the records (the mean of their chance to have a match), and the pair keeps the lower of
its two directions: a link both records agree on.

A source counts as one record per person when none of its pairs reaches the review threshold within it and it
holds enough records to estimate π from (:data:`MIN_RECORDS`); a source with duplicates (most HIS patient lists),
a handful of records, and every pair within a source keep the plain model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_EPS = 1e-15
# below this, π rests on a few records: two sources of three would each give their candidates prior odds near 1
MIN_RECORDS = 100


def sources_one_per_person(pairs: pd.DataFrame, source_of: pd.Series, *, review: float) -> set[str]:
    """Sources of :data:`MIN_RECORDS` or more none of whose scored pairs within themselves reaches ``review``.
    ``pairs`` hold ``unique_id_l``, ``unique_id_r``, ``match_probability``; ``source_of`` maps unique id → source."""
    sizes = source_of.value_counts()
    sources = set(sizes.index[sizes.to_numpy() >= MIN_RECORDS])
    left, right = source_of.reindex(pairs["unique_id_l"]).to_numpy(), source_of.reindex(pairs["unique_id_r"]).to_numpy()
    within = (left == right) & (pairs["match_probability"].to_numpy(dtype=float) >= review)
    return sources - set(left[within])


def _share_with_match(total_bf: np.ndarray, records: int, others: int, iterations: int = 200) -> float:
    """π: the share of ``records`` that have a match among ``others``, by EM over each record's summed Bayes
    factor (records without a candidate count with 0); never 1, so that no record is forced to have a match."""
    bf = np.concatenate([total_bf, np.zeros(max(records - len(total_bf), 0))])
    pi, cap = 0.5, 1.0 - 1.0 / (records + 1)
    for _ in range(iterations):
        a = pi / others
        new = float(np.mean(a * bf / ((1.0 - pi) + a * bf)))
        new = min(max(new, 1.0 / (records + 1)), cap)
        if abs(new - pi) < 1e-9:
            break
        pi = new
    return pi


def _posteriors(ids: tuple[np.ndarray, np.ndarray], sources: tuple[np.ndarray, np.ndarray], bf: np.ndarray,
                sizes: dict[str, int]) -> np.ndarray:
    """Per pair, the lower of P(it is the left record's match) and P(it is the right record's match), each among
    all of that record's candidates in the other source."""
    k = len(bf)
    long = pd.DataFrame({"me": np.concatenate(ids), "src_me": np.concatenate(sources),
                         "src_other": np.concatenate(sources[::-1]), "bf": np.concatenate([bf, bf])})
    post = np.empty(2 * k)
    for (src_me, src_other), group in long.groupby(["src_me", "src_other"], sort=False):
        by_record = group.groupby("me")["bf"]
        pi = _share_with_match(by_record.sum().to_numpy(), sizes[src_me], sizes[src_other])
        a = pi / sizes[src_other]
        post[group.index.to_numpy()] = (a * group["bf"] / ((1.0 - pi) + a * by_record.transform("sum"))).to_numpy()
    return np.minimum(post[:k], post[k:])


def rescore(pairs: pd.DataFrame, source_of: pd.Series, one_per_person: set[str], *, prior: float) -> pd.DataFrame:
    """``pairs`` with ``match_probability`` re-estimated for pairs across two one-record-per-person sources (see
    the module's text); ``prior`` is the model's λ. Pairs at 1.0 (deterministic, accepted) keep it, and compete
    with the others; pairs within a source, or with a source that has duplicates, stay as scored."""
    pairs = pairs.copy()
    src_l = source_of.reindex(pairs["unique_id_l"]).to_numpy()
    src_r = source_of.reindex(pairs["unique_id_r"]).to_numpy()
    p = pairs["match_probability"].to_numpy(dtype=float)
    across = (src_l != src_r) & np.isin(src_l, list(one_per_person)) & np.isin(src_r, list(one_per_person))
    if not (across & (p < 1.0)).any():
        return pairs
    sizes = source_of.value_counts().to_dict()
    q = np.clip(p[across], _EPS, 1.0 - 1e-12)
    bf = (q / (1.0 - q)) / (prior / (1.0 - prior))
    ids = (pairs["unique_id_l"].to_numpy()[across], pairs["unique_id_r"].to_numpy()[across])
    posterior = _posteriors(ids, (src_l[across], src_r[across]), bf, sizes)
    p = p.copy()
    p[across] = np.where(p[across] < 1.0, posterior, p[across])
    pairs["match_probability"] = p
    return pairs
