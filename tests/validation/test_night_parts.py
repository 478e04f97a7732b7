"""A night's batches validated together (one GX run per dataset and code system) give every part exactly what
validating it alone gives: the same failing rows with the same rules and values, the same clean rows, counts and
circuit-breaker decision — on every rule's breaking row, with parts whose ``_row`` numbers collide."""

from __future__ import annotations

import pytest
from canonical_rows import BASE, context, table
from test_rules import CONTEXT, PAIRED, RULES, breaker

from countyhealth import model
from countyhealth.validation import Part, ValidationError, suites, validate_dataset, validate_parts


def _parts() -> list[Part]:
    parts = []
    for n, rule in enumerate(RULES):
        base = dict(BASE[rule.dataset])
        if rule.rule_id in PAIRED:
            rows = [base, {**base, **PAIRED[rule.rule_id]}]
        else:
            other = {"resident_key": "k2"} if rule.dataset == "contract" else {}
            rows = [base, {**base, **other, **breaker(rule)}]
        # every part numbers its rows from 100, as batches do: attribution cannot lean on distinct _row values
        ctx = context(batch_id=f"b{n}", source_id=f"src{n % 3}", **CONTEXT.get(rule.rule_id, {}))
        parts.append(Part(rule.dataset, table(rule.dataset, rows), ctx))
    # a part without birth dates, one of another code system, an empty one, per dataset
    for ds in model.DATASET_NAMES:
        rows = [BASE[ds], {**BASE[ds], "person_source_record_id": "BORN_LATER"} if ds != "person" else BASE[ds]]
        parts.append(Part(ds, table(ds, rows), context(batch_id=f"nb-{ds}", birth_dates=None)))
        parts.append(Part(ds, table(ds, rows), context(batch_id=f"cs-{ds}", code_system="his_vendor_a")))
        parts.append(Part(ds, table(ds, []), context(batch_id=f"empty-{ds}")))
    return parts


def _same(a, b) -> None:
    key = lambda i: (i["_row"], i["rule_id"], i["column"] or "")  # noqa: E731
    assert sorted(a.issues.to_pylist(), key=key) == sorted(b.issues.to_pylist(), key=key)
    assert a.clean.to_pylist() == b.clean.to_pylist()
    assert (a.rows_in, a.rows_quarantined, a.rows_flagged, a.held, a.rule_counts) == \
        (b.rows_in, b.rows_quarantined, b.rows_flagged, b.held, b.rule_counts)


@pytest.mark.slow  # ~90 GX runs alone, to compare with: ~2 min on 2 busy cores
def test_parts_validated_together_equal_each_validated_alone(monkeypatch):
    parts = _parts()
    alone = [validate_dataset(p.dataset, p.table, p.context, p.prior_issues) for p in parts]
    assert sum(o.issues.num_rows for o in alone) >= len(RULES)  # every rule's breaking row fails
    runs = []
    real = suites.GxRunner.run
    monkeypatch.setattr(suites.GxRunner, "run", lambda self, ds, *a, **k: runs.append(ds) or real(self, ds, *a, **k))
    together = validate_parts(parts)
    for p, a, t in zip(parts, alone, together):
        assert not isinstance(t, Exception), (p.context.batch_id, t)
        assert (t.batch_id, t.source_id) == (p.context.batch_id, p.context.source_id)
        _same(a, t)
    # one run per dataset and code system; contracts per batch (their overlap rule is judged within a batch)
    contract_batches = sum(1 for p in parts if p.dataset == "contract" and p.table.num_rows)
    assert len(runs) == 2 * (len(model.DATASET_NAMES) - 1) + contract_batches, runs


def test_a_part_a_rule_cannot_run_on_gets_the_error_and_the_others_their_outcome(monkeypatch):
    good = Part("encounter", table("encounter", [BASE["encounter"]]), context(batch_id="good"))
    bad = Part("encounter", table("encounter", [{**BASE["encounter"], "diagnosis_code": "I11"}]),
               context(batch_id="bad"))
    real = suites.GxRunner.run

    def run(self, ds, frame, *a, **k):  # a rule that cannot run on the bad part's values, wherever they are
        if (frame["diagnosis_code"] == "I11").any():
            raise ValidationError("rule encounter.x could not run")
        return real(self, ds, frame, *a, **k)

    monkeypatch.setattr(suites.GxRunner, "run", run)
    out = validate_parts([good, bad])
    assert isinstance(out[1], ValidationError)
    assert not isinstance(out[0], Exception) and out[0].rows_in == 1 and out[0].batch_id == "good"


def test_parts_larger_than_a_chunk_run_alone_in_chunks():
    rows = [BASE["encounter"]] * 5
    big = Part("encounter", table("encounter", rows), context(batch_id="big", chunk_rows=2))
    small = Part("encounter", table("encounter", rows[:1]), context(batch_id="small", chunk_rows=2))
    out = validate_parts([big, small])
    assert [o.rows_in for o in out] == [5, 1] and all(o.clean.num_rows == o.rows_in for o in out)


@pytest.mark.parametrize("missing", ["start_at"])
def test_a_part_lacking_canonical_columns_gets_the_fix_and_the_others_validate(missing):
    bad = Part("encounter", table("encounter", [BASE["encounter"]]).drop_columns([missing]), context(batch_id="x"))
    good = Part("encounter", table("encounter", [BASE["encounter"]]), context(batch_id="y"))
    out = validate_parts([bad, good])
    assert isinstance(out[0], ValueError) and "model.conform()" in str(out[0])
    assert out[1].rows_in == 1
