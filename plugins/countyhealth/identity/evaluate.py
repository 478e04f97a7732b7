"""Scoring an EMPI against ground truth: pairwise precision, recall and F1 over records, plus what matters
clinically — how many true residents were merged with someone else (a wrong merge puts one person's results in
another's chart) and how many were split across several person ids."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass


@dataclass
class Score:
    records: int
    residents: int
    persons: int
    precision: float
    recall: float
    f1: float
    wrongly_merged_residents: int  # true residents sharing a person id with another resident
    mixed_persons: int  # person ids holding more than one true resident
    split_residents: int  # true residents spread over more than one person id

    def line(self) -> str:
        return (f"P {self.precision:.4f}  R {self.recall:.4f}  F1 {self.f1:.4f}  wrong merges "
                f"{self.wrongly_merged_residents} residents in {self.mixed_persons} persons  splits "
                f"{self.split_residents}  ({self.records} records, {self.residents} residents → {self.persons} persons)")


def score(assignment: dict[str, str], truth: dict[str, str]) -> Score:
    """``assignment``: record → person id; ``truth``: record → true resident (same keys)."""
    pair_counts: Counter = Counter()
    person_sizes: Counter = Counter()
    resident_sizes: Counter = Counter()
    persons_of: dict[str, set] = defaultdict(set)
    residents_in: dict[str, set] = defaultdict(set)
    for rec, person in assignment.items():
        resident = truth[rec]
        pair_counts[(person, resident)] += 1
        person_sizes[person] += 1
        resident_sizes[resident] += 1
        persons_of[resident].add(person)
        residents_in[person].add(resident)

    def pairs(n: int) -> int:
        return n * (n - 1) // 2

    tp = sum(pairs(n) for n in pair_counts.values())
    predicted = sum(pairs(n) for n in person_sizes.values())
    actual = sum(pairs(n) for n in resident_sizes.values())
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    mixed = [p for p, rs in residents_in.items() if len(rs) > 1]
    wrongly = len({r for p in mixed for r in residents_in[p]})
    split = sum(1 for ps in persons_of.values() if len(ps) > 1)
    return Score(len(assignment), len(resident_sizes), len(person_sizes), precision, recall, f1, wrongly,
                 len(mixed), split)


@dataclass
class KindScore:
    kind: str
    records: int  # records carrying this kind of noise
    precision: float  # of predicted pairs holding such a record
    recall: float  # of true pairs holding such a record
    wrongly_merged_residents: int  # residents with such a record, sharing a person id with another resident
    split_residents: int  # residents with such a record, spread over more than one person id


def score_by_kind(assignment: dict[str, str], truth: dict[str, str], tags: dict[str, tuple]) -> list[KindScore]:
    """:func:`score` for each kind of noise in ``tags`` (record → the noise it carries): the pairs that hold at
    least one record carrying it — a pair's link is lost, or made wrongly, because of what one of its records
    carries. Counted in groups: a group of n records, t of them tagged, holds n(n−1)/2 − (n−t)(n−t−1)/2 such pairs."""
    def pairs(n: int) -> int:
        return n * (n - 1) // 2

    kinds = sorted({k for ks in tags.values() for k in ks})
    group_sizes: dict[str, Counter] = {name: Counter() for name in ("both", "person", "resident")}
    tagged: dict[str, dict[str, Counter]] = {k: {name: Counter() for name in group_sizes} for k in kinds}
    persons_of: dict[str, set] = defaultdict(set)
    residents_in: dict[str, set] = defaultdict(set)
    kinds_of_resident: dict[str, set] = defaultdict(set)
    records = Counter()
    for rec, person in assignment.items():
        resident = truth[rec]
        keys = {"both": (person, resident), "person": person, "resident": resident}
        for name, key in keys.items():
            group_sizes[name][key] += 1
        for k in tags.get(rec, ()):
            records[k] += 1
            kinds_of_resident[resident].add(k)
            for name, key in keys.items():
                tagged[k][name][key] += 1
        persons_of[resident].add(person)
        residents_in[person].add(resident)
    mixed = {p for p, rs in residents_in.items() if len(rs) > 1}
    merged = {r for p in mixed for r in residents_in[p]}
    split = {r for r, ps in persons_of.items() if len(ps) > 1}

    def holding(kind: str, name: str) -> int:
        return sum(pairs(group_sizes[name][key]) - pairs(group_sizes[name][key] - t)
                   for key, t in tagged[kind][name].items())

    out = []
    for k in kinds:
        tp, predicted, actual = holding(k, "both"), holding(k, "person"), holding(k, "resident")
        residents = {r for r, ks in kinds_of_resident.items() if k in ks}
        out.append(KindScore(k, records[k], tp / predicted if predicted else 1.0, tp / actual if actual else 1.0,
                             len(residents & merged), len(residents & split)))
    return out
