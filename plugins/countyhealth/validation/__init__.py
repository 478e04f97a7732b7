"""Validation: each canonical dataset's Great Expectations suite, run row by row.

:func:`validate_dataset` takes canonical rows (``countyhealth.model`` schema plus ``_row``) and returns the
clean rows, the issues (errors quarantine the row, warnings are findings) and the circuit-breaker decision.
The suites are GX JSON in ``expectations/``; the custom expectations are in :mod:`.expectations`; the batch
flow (files beside the landed batch, the single-writer load that writes quarantine and audit rows) is
:mod:`countyhealth.pipeline`.

Speed: GX on pandas costs about 14× a bare pandas mask for the same rule, so rows are validated in bounded
chunks in one long-lived GX context per process, every row-level custom metric is vectorised (or computed
once per distinct value: IDs and item codes repeat), and nothing runs row by row in Python.
This module imports nothing heavy; GX loads on the first call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from countyhealth import privacy
from countyhealth.validation.issues import ISSUE_SCHEMA, empty, issues_table

CHUNK_ROWS = 200_000  # rows per GX batch: bounds the pandas copy (~0.5 KB/row) whatever the landed batch size
BIRTH_DATE = "_birth_date"  # derived column: the patient's birth date (ValidationContext.birth_dates)
EARLIEST_BIRTH_DATE = "1880-01-01"


@dataclass
class ValidationContext:
    source_id: str
    batch_id: str
    load_time: dt.datetime  # "not in the future" means not after this (member systems' local time), never now()
    code_system: str | None = None  # the source's local lab/exam code system (which county item a local code is)
    max_failing_share: float = 0.2  # the circuit breaker: more than this share of rows failing holds the batch
    # person_source_record_id -> birth date of that patient in the same source, for "events after birth";
    # rows whose patient is not in it are not judged by those rules (see birth_dates_of())
    birth_dates: Mapping[str, dt.date] | None = None
    chunk_rows: int = CHUNK_ROWS


@dataclass
class DatasetOutcome:
    dataset: str
    clean: pa.Table
    issues: pa.Table
    rows_in: int
    rows_quarantined: int
    rows_flagged: int
    failing_share: float
    threshold: float
    held: bool
    rule_counts: dict = field(default_factory=dict)  # rule_id -> rows


class ValidationError(RuntimeError):
    """A rule could not be evaluated (not: a row failed it). Names the rule and the reason."""


def _value_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def _mask(column: str | None, value: str | None) -> str | None:
    if value is None:
        return None
    if column == "id_number":
        return privacy.mask_id(value)
    if column == "phone":
        return privacy.mask_phone(value)
    return privacy.scrub(value)[:200]


def birth_dates_of(person: pa.Table) -> dict[str, dt.date]:
    """``source_record_id -> birth_date`` of canonical person rows (for :attr:`ValidationContext.birth_dates`)."""
    ids = person.column("source_record_id").to_pylist()
    births = person.column("birth_date").to_pylist()
    return {i: b for i, b in zip(ids, births) if i is not None and b is not None}


def _frame(dataset: str, table: pa.Table, context: ValidationContext):
    """The chunk as GX's pandas batch: dates as datetime64 (compared with the run-time parameters), ints
    nullable, plus the derived columns the suites name (``_birth_date``)."""
    import pandas as pd

    frame = table.to_pandas(date_as_object=False, types_mapper={pa.int32(): pd.Int32Dtype(),
                                                                pa.int64(): pd.Int64Dtype()}.get)
    if "person_source_record_id" in frame.columns:
        births = frame["person_source_record_id"].map(context.birth_dates) if context.birth_dates else None
        frame[BIRTH_DATE] = pd.to_datetime(births, errors="coerce") if births is not None else pd.NaT
        frame[BIRTH_DATE] = frame[BIRTH_DATE].astype("datetime64[us]")
    return frame


def _check_chunk(dataset: str, table: pa.Table, context: ValidationContext) -> list[tuple]:
    import pandas as pd

    from countyhealth.validation import suites

    run = suites.runner()
    params = {"now": pd.Timestamp(context.load_time), "code_system": context.code_system or "",
              "earliest_birth_date": pd.Timestamp(EARLIEST_BIRTH_DATE)}
    result = run.run(dataset, _frame(dataset, table, context), params)
    by_id = {r.rule_id: r for r in run.rules[dataset]}
    row_pos = pc.index_in  # position of each failing _row in the chunk
    found: list[tuple] = []
    for res in result.results:
        meta = res.expectation_config.meta or {}
        rule = by_id.get(meta.get("rule_id"))
        if rule is None:
            continue
        info = res.exception_info or {}
        if info.get("raised_exception"):
            raise ValidationError(f"rule {rule.rule_id} could not run on {dataset} (source {context.source_id}, "
                                  f"batch {context.batch_id}): "
                                  f"{privacy.scrub(str(info.get('exception_message')))[:300]}")
        if res.success:
            continue
        rows = pa.array([int(i["_row"]) for i in res.result.get("unexpected_index_list") or []], pa.int64())
        if not len(rows):
            continue
        column = rule.column if rule.column in table.column_names else None
        if column is not None:
            values = pc.take(table.column(column), row_pos(rows, value_set=table.column("_row"))).to_pylist()
            masked = {}
            texts = []
            for v in values:  # failing rows only; masking once per distinct value
                if v not in masked:
                    masked[v] = _mask(column, _value_text(v))
                texts.append(masked[v])
        else:
            texts = [None] * len(rows)
        found.extend(zip(rows.to_pylist(), [rule.rule_id] * len(rows), [rule.category] * len(rows),
                         [rule.severity] * len(rows), [column] * len(rows), texts))
    return found


def validate_dataset(dataset: str, table: pa.Table, context: ValidationContext,
                     prior_issues: pa.Table | None = None) -> DatasetOutcome:
    """Run the dataset's suite over ``table`` (canonical schema + ``_row``) in bounded chunks."""
    if "_row" not in table.column_names:
        raise ValueError("validate_dataset needs the `_row` column (each row's position in its landed batch)")
    found: list[tuple] = []
    step = max(1, context.chunk_rows)
    for start in range(0, table.num_rows, step):
        found.extend(_check_chunk(dataset, table.slice(start, step), context))
    issues = issues_table(found) if found else empty()
    if prior_issues is not None and prior_issues.num_rows:
        issues = pa.concat_tables([prior_issues.cast(ISSUE_SCHEMA), issues])
    errors = issues.filter(pc.equal(issues.column("severity"), "error"))
    bad_rows = pc.unique(errors.column("_row"))
    warned = pc.unique(issues.filter(pc.equal(issues.column("severity"), "warning")).column("_row"))
    is_bad = pc.is_in(table.column("_row"), value_set=bad_rows)
    clean = table.filter(pc.invert(is_bad))
    rows_in = table.num_rows
    quarantined = len(bad_rows)
    flagged = int(pc.sum(pc.invert(pc.is_in(warned, value_set=bad_rows))).as_py() or 0) if len(warned) else 0
    share = quarantined / rows_in if rows_in else 0.0
    counts: dict[str, int] = {}
    if issues.num_rows:
        per_rule = issues.group_by("rule_id").aggregate([("_row", "count_distinct")])
        counts = dict(zip(per_rule.column("rule_id").to_pylist(), per_rule.column("_row_count_distinct").to_pylist()))
    return DatasetOutcome(dataset, clean, issues, rows_in, quarantined, flagged, share, context.max_failing_share,
                          share > context.max_failing_share, counts)
