"""Validation: each canonical dataset's Great Expectations suite, run row by row.

:func:`validate_dataset` takes canonical rows (``countyhealth.model`` schema plus ``_row``) and returns the
clean rows, the issues (errors quarantine the row, warnings are findings) and the circuit-breaker decision.
The suites are GX JSON in ``expectations/``; the custom expectations are in :mod:`.expectations`; the batch
flow (files beside the landed batch, the single-writer load that writes quarantine and audit rows) is
:mod:`countyhealth.pipeline`.

Speed (docs/validation.md, measured in bench/bench_validation.py): one long-lived GX context per process;
bounded chunks; GX gets only the columns its suite reads, indexed by ``_row`` and in the dtypes its metrics
vectorise; custom metrics are vectorised (:mod:`.row_checks`); rules that cannot fail on a chunk (their
columns hold no value) are skipped; an empty table costs nothing. This module imports nothing heavy; GX
loads on the first call.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from countyhealth import model, privacy
from countyhealth.validation.issues import ISSUE_SCHEMA, empty, issues_table

if TYPE_CHECKING:
    import pandas as pd

CHUNK_ROWS = 200_000  # rows per GX batch: bounds the pandas copy (~0.5 KB/row) whatever the landed batch size
BIRTH_DATE = "_birth_date"  # derived column: the patient's birth date (ValidationContext.birth_dates)
# derived column: the number of an already loaded active contract this row's contract overlaps
# (ValidationContext.loaded_contracts)
OVERLAPPED_CONTRACT = "_overlapped_contract"
EARLIEST_BIRTH_DATE = "1880-01-01"


@dataclass
class ValidationContext:
    source_id: str
    batch_id: str
    load_time: dt.datetime  # "not in the future" means not after this (member systems' local time), never now()
    code_system: str | None = None  # the source's local lab/exam code system (which county item a local code is)
    max_failing_share: float = 0.2  # the circuit breaker: more than this share of rows failing holds the batch
    # person_source_record_id -> birth date of that patient in the same source, for "events after birth";
    # rows whose patient is not in it are not judged by those rules (see birth_dates_of()). Read once per
    # context (cached on it): build a new context when the mapping changes.
    birth_dates: Mapping[str, dt.date] | None = None
    # active family-doctor contracts already in the warehouse (columns key, number, begin, end), for "no
    # overlapping active contracts" across batches: a night's batch holds that day's signings only
    loaded_contracts: pd.DataFrame | None = None
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
    source_id: str = ""
    batch_id: str = ""


class ValidationError(RuntimeError):
    """A rule could not be evaluated (not: a row failed it). Names the rule and the reason."""


def _value_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
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


def _masked(issues: pa.Table) -> pa.Table:
    """Issues from elsewhere (mapping) with their values masked as ours are — whatever the producer did."""
    issues = issues.select(ISSUE_SCHEMA.names).cast(ISSUE_SCHEMA)
    seen: dict = {}
    values = []
    for column, value in zip(issues.column("column").to_pylist(), issues.column("value").to_pylist()):
        key = (column, value)
        if key not in seen:
            seen[key] = _mask(column, value)
        values.append(seen[key])
    return issues.set_column(ISSUE_SCHEMA.get_field_index("value"), ISSUE_SCHEMA.field("value"),
                             pa.array(values, pa.string()))


def birth_dates_of(person: pa.Table) -> dict[str, dt.date]:
    """``source_record_id -> birth_date`` of canonical person rows (for :attr:`ValidationContext.birth_dates`)."""
    ids = person.column("source_record_id").to_pylist()
    births = person.column("birth_date").to_pylist()
    return {i: b for i, b in zip(ids, births) if i is not None and b is not None}


_NS_MIN, _NS_MAX = dt.datetime(1678, 1, 1), dt.datetime(2262, 1, 1)  # what datetime64[ns] can hold


def _gx_column(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as GX's pandas metrics compute fastest: GX vectorises ``between`` only for float64/int64 and
    datetime64[ns] (other dtypes go value by value through Python), so dates and timestamps become
    timestamp[ns] — clipped into its range first, so a typo like 9999-01-01 still fails "not in the future"
    instead of overflowing — and integers float64 (nulls as NaN). Issue values come from the original table."""
    typ = col.type
    if pa.types.is_date(typ) or pa.types.is_timestamp(typ):
        ts = col.cast(pa.timestamp("us")) if pa.types.is_date(typ) else col
        lo, hi = pa.scalar(_NS_MIN, pa.timestamp("us")), pa.scalar(_NS_MAX, pa.timestamp("us"))
        return pc.min_element_wise(pc.max_element_wise(ts, lo, skip_nulls=False), hi, skip_nulls=False).cast(
            pa.timestamp("ns"))
    if pa.types.is_integer(typ):
        return col.cast(pa.float64())
    return col


def _birth_dates_series(context: ValidationContext):
    """``birth_dates`` as a pandas Series (person id -> datetime64[ns]), built once per context."""
    import pandas as pd

    cached = getattr(context, "_birth_series", None)
    if cached is None:
        births = context.birth_dates or {}
        cached = pd.Series(pd.to_datetime(list(births.values()), errors="coerce"), index=list(births.keys()),
                           dtype="datetime64[ns]")
        cached = cached[~cached.index.duplicated()]
        object.__setattr__(context, "_birth_series", cached)
    return cached


def _frame(dataset: str, table: pa.Table, context: ValidationContext, columns: list[str] | None = None):
    """The chunk as GX's pandas batch: only the ``columns`` the suite reads (default: all), index = ``_row``
    (GX's COMPLETE results then list failing rows by index label, cheaply), GX-friendly dtypes, plus the
    derived columns the suites name (``_birth_date``)."""
    import pandas as pd

    wanted = [c for c in (columns or table.column_names) if c in table.column_names and c != "_row"]
    derive_birth = "person_source_record_id" in table.column_names and (columns is None or BIRTH_DATE in columns)
    if derive_birth and "person_source_record_id" not in wanted:
        wanted.append("person_source_record_id")  # the key _birth_date is looked up by
    cols = {name: _gx_column(table.column(name)) for name in wanted}
    frame = pa.table(cols).to_pandas()
    frame.index = pd.Index(table.column("_row").to_numpy(), dtype="int64")
    if derive_birth:
        births = _birth_dates_series(context)
        if len(births):
            frame[BIRTH_DATE] = frame["person_source_record_id"].map(births).astype("datetime64[ns]")
        else:
            frame[BIRTH_DATE] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    if dataset == "contract" and (columns is None or OVERLAPPED_CONTRACT in columns):
        from countyhealth.validation import row_checks

        cols = {c: table.column(c).to_pandas().set_axis(frame.index)
                for c in ("resident_key", "contract_number", "begin_date", "end_date", "status")}
        frame[OVERLAPPED_CONTRACT] = row_checks.overlapped_loaded_interval(
            cols["resident_key"], cols["contract_number"], cols["begin_date"], cols["end_date"], cols["status"],
            context.loaded_contracts, inactive_values=("terminated",))
    return frame


def _exception_message(info) -> str | None:
    """GX reports a failed metric either as ``{"raised_exception": True, ...}`` or, per metric, as
    ``{metric_id: {"raised_exception": True, ...}}`` (then ``success`` is False and ``result`` empty — which
    would otherwise read as "no failing rows")."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


_PART_BITS = 40  # parts validated together: GX index = part << 40 | _row (a batch holds far fewer than 2**40 rows)


def _check_chunk(dataset: str, table: pa.Table, context: ValidationContext) -> list[tuple]:
    return _check_parts(dataset, [(table, context)])[0]


def _check_parts(dataset: str, parts: list[tuple[pa.Table, ValidationContext]]) -> list[list[tuple]]:
    """One GX run over several parts (a night's small batches of one dataset, sharing the suite parameters:
    code system and load time), each part's frame built with its own context (its birth dates, its loaded
    contracts) and indexed ``part << 40 | _row``; failing rows are handed back to their part. GX's fixed cost
    (~1.3 s a run, whatever the rows: it builds the metric graph of every expectation) is paid once."""
    import pandas as pd

    from countyhealth.validation import suites

    run = suites.runner()
    context = parts[0][1]
    params = {"now": pd.Timestamp(context.load_time), "code_system": context.code_system or "",
              "earliest_birth_date": pd.Timestamp(EARLIEST_BIRTH_DATE)}
    skip: frozenset | None = None
    frames = []
    for i, (table, ctx) in enumerate(parts):
        all_null = {c for c in table.column_names if table.column(c).null_count == table.num_rows}
        if "person_source_record_id" in table.column_names and not ctx.birth_dates:
            all_null.add(BIRTH_DATE)
        if ctx.loaded_contracts is None or ctx.loaded_contracts.empty:
            all_null.add(OVERLAPPED_CONTRACT)
        # a rule is skipped only when it cannot fail on any part
        mine = frozenset(r.rule_id for r in run.rules[dataset] if suites.vacuous(r, all_null))
        skip = mine if skip is None else skip & mine
        frame = _frame(dataset, table, ctx, run.columns[dataset])
        if len(parts) > 1:
            frame.index = frame.index + (i << _PART_BITS)
        frames.append(frame)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames)
    result = run.run(dataset, frame, params, skip or frozenset())
    by_id = {r.rule_id: r for r in run.rules[dataset]}
    found: list[list[tuple]] = [[] for _ in parts]
    where = (f"source {context.source_id}, batch {context.batch_id}" if len(parts) == 1 else
             "batches " + ", ".join(sorted({f"{c.source_id}/{c.batch_id}" for _, c in parts}))[:300])
    for res in result.results:
        meta = res.expectation_config.meta or {}
        rule = by_id.get(meta.get("rule_id"))
        if rule is None:
            continue
        problem = _exception_message(res.exception_info)
        if problem is None and not res.success and "unexpected_index_list" not in (res.result or {}):
            problem = "it returned no row-level result (is it a row-level expectation?)"
        if problem is not None:
            raise ValidationError(f"rule {rule.rule_id} could not run on {dataset} ({where}): "
                                  f"{privacy.scrub(problem)[:300]} — fix expectations/{dataset}.json or the data "
                                  "it names")
        if res.success:
            continue
        labels = pa.array(res.result.get("unexpected_index_list") or [], pa.int64())
        if not len(labels):
            continue
        if len(parts) > 1:
            part_of = pc.shift_right(labels, _PART_BITS)
            rows_of = pc.bit_wise_and(labels, (1 << _PART_BITS) - 1)
        for i, (table, _ctx) in enumerate(parts):
            if len(parts) > 1:
                rows = rows_of.filter(pc.equal(part_of, i))
                if not len(rows):
                    continue
            else:
                rows = labels  # index labels = _row
            found[i].extend(_issues_of(rule, table, rows))
    return found


def _issues_of(rule, table: pa.Table, rows: pa.Array) -> list[tuple]:
    column = rule.column if rule.column in table.column_names else None
    if column is not None:
        positions = pc.index_in(rows, value_set=table.column("_row"))  # where each failing _row sits in the chunk
        values = pc.take(table.column(column), positions).to_pylist()
        masked = {}
        texts = []
        for v in values:  # failing rows only; masking once per distinct value
            if v not in masked:
                masked[v] = _mask(column, _value_text(v))
            texts.append(masked[v])
    else:
        texts = [None] * len(rows)
    n = len(rows)
    return list(zip(rows.to_pylist(), [rule.rule_id] * n, [rule.category] * n, [rule.severity] * n, [column] * n,
                    texts))


def _require_canonical(dataset: str, table: pa.Table, context: ValidationContext) -> None:
    if "_row" not in table.column_names:
        raise ValueError("validate_dataset needs the `_row` column (each row's position in its landed batch)")
    missing = [n for n in model.schema(dataset).names if n not in table.column_names]
    if missing:
        raise ValueError(f"{dataset} rows from {context.source_id} (batch {context.batch_id}) lack the canonical "
                         f"columns {', '.join(missing)}: map them with model.conform() before validating")


def validate_dataset(dataset: str, table: pa.Table, context: ValidationContext,
                     prior_issues: pa.Table | None = None) -> DatasetOutcome:
    """Run the dataset's suite over ``table`` (canonical schema + ``_row``) in bounded chunks."""
    _require_canonical(dataset, table, context)
    found: list[tuple] = []
    step = max(1, context.chunk_rows)
    for start in range(0, table.num_rows, step):  # an empty table: no GX call (a night has many empty streams)
        found.extend(_check_chunk(dataset, table.slice(start, step), context))
    return _outcome(dataset, table, context, found, prior_issues)


@dataclass
class Part:
    """One dataset's rows of one batch (chunk), to be validated with others of the night: :func:`validate_parts`."""
    dataset: str
    table: pa.Table
    context: ValidationContext
    prior_issues: pa.Table | None = None


def _group_key(part: Part) -> tuple:
    c = part.context
    # suite parameters must agree within one GX run; contracts' overlap rule is judged within a batch
    return (part.dataset, c.code_system or "", c.load_time, c.batch_id if part.dataset == "contract" else "")


def validate_parts(parts: list[Part]) -> list[DatasetOutcome | Exception]:
    """Validate many parts — a night's batches — with one GX run per dataset (and code system) over all the
    small ones together, each row still attributed to its part: the outcome of each part is what
    :func:`validate_dataset` gives it alone (tests/validation prove it on every failing row). Parts larger than
    their chunk size run alone, in chunks; empty parts cost nothing. When a joint run raises, each of its parts
    is validated alone, so only the part at fault gets the exception (returned in its place)."""
    out: list[DatasetOutcome | Exception | None] = [None] * len(parts)
    groups: dict[tuple, list[list[int]]] = {}
    for i, part in enumerate(parts):
        try:
            _require_canonical(part.dataset, part.table, part.context)
        except ValueError as exc:
            out[i] = exc
            continue
        n = part.table.num_rows
        if n == 0 or n > part.context.chunk_rows:
            continue  # alone below
        packs = groups.setdefault(_group_key(part), [[]])
        if packs[-1] and sum(parts[j].table.num_rows for j in packs[-1]) + n > part.context.chunk_rows:
            packs.append([])
        packs[-1].append(i)
    for packs in groups.values():
        for pack in packs:
            if len(pack) == 1:
                continue  # alone below
            dataset = parts[pack[0]].dataset
            try:
                found = _check_parts(dataset, [(parts[j].table, parts[j].context) for j in pack])
            except ValidationError:
                continue  # each alone below: the error lands on the part at fault
            for j, f in zip(pack, found):
                p = parts[j]
                out[j] = _outcome(p.dataset, p.table, p.context, f, p.prior_issues)
    for i, part in enumerate(parts):
        if out[i] is None:
            try:
                out[i] = validate_dataset(part.dataset, part.table, part.context, part.prior_issues)
            except ValidationError as exc:
                out[i] = exc
    return out  # type: ignore[return-value]


def _outcome(dataset: str, table: pa.Table, context: ValidationContext, found: list[tuple],
             prior_issues: pa.Table | None) -> DatasetOutcome:
    if table.num_rows == 0:
        return DatasetOutcome(dataset, table, _masked(prior_issues) if prior_issues is not None else empty(),
                              0, 0, 0, 0.0, context.max_failing_share, False, {}, context.source_id, context.batch_id)
    issues = issues_table(found) if found else empty()
    if prior_issues is not None and prior_issues.num_rows:
        issues = pa.concat_tables([_masked(prior_issues), issues])
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
                          share > context.max_failing_share, counts, context.source_id, context.batch_id)
