"""Raw rows → canonical rows, as a stream's YAML says (fields, transforms, value maps, formats).

Vectorised with ``pyarrow.compute``: parsing dates, numbers and value maps works on whole columns (value maps
and the text transforms work on each column's distinct values, which are few for codes), so mapping a
500k-row batch takes a fraction of a second rather than a Python loop per cell.

A value that cannot be parsed into the field's type, or a code missing from its value map, does not stop the
batch: the field becomes null and an issue (:mod:`countyhealth.validation.issues`) names the row, the rule
(``<dataset>.conformance.parse.<field>`` / ``<dataset>.conformance.value_map.<field>``) and the value (ID
numbers and phones masked); validation then quarantines the row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from countyhealth import model, privacy
from countyhealth.connectors.typing import Cursor, DatasetMap, FieldSpec, SourceBase, StreamBase
from countyhealth.validation import issues as issue_schema

ROW = "_row"
DEFAULT_NULLS = ("", "NULL", "null", "None", "NaN", "nan")
_SENSITIVE = {"id_number", "phone"}
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_INTEGER = r"^[+-]?\d+(\.0*)?$"
_TRUE = {"1", "true", "t", "y", "yes", "是", "有", "阳性"}
_FALSE = {"0", "false", "f", "n", "no", "否", "无", "阴性"}
_ISO_DATETIMES = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
_ISO_DATES = ["%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]


class MappingError(ValueError):
    """The mapping cannot run at all (e.g. a mapped column is not in the source): a config problem."""


# ---- transforms: text -> text, on distinct values -------------------------------------------------------

def _per_value(fn: Callable[[str], str | None]) -> Callable[[pa.Array], pa.Array]:
    def apply(arr: pa.Array) -> pa.Array:
        if len(arr) == 0:
            return arr
        enc = pc.dictionary_encode(arr)
        mapped = pa.array([None if v is None else fn(v) for v in enc.dictionary.to_pylist()], pa.string())
        return pc.take(mapped, enc.indices)
    return apply


_FULLWIDTH = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_COMPARATOR = re.compile(r"^\s*(<=|>=|≤|≥|<|>|＜|＞)")


# The accepted grammar of a numeric result: an optional comparator, one decimal number, an optional abnormal flag
# (全角 digits and signs read as ASCII): '5.2', '<0.1', '≥1000', '12.3↑', '８.５ H'. A value with digits that does
# not fit (a second number, '1e309', '5.2; DROP TABLE', '0x1F') is passed on as it is, fails to parse and
# quarantines its row with the value named — never coerced into a number. Qualitative text (阴性, +, 弱阳性) and a
# titer or a graded plus ('1:320', '2+') carry no number: null here, kept in value_text.
_NUMERIC_RESULT = re.compile(r"^\s*(?:<=|>=|≤|≥|<|>|＜|＞)?\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*"
                             r"(?:↑↑|↓↓|↑|↓|HH|LL|H|L|h|l|\*)?\s*$")
_NOT_A_NUMBER = frozenset({"nan", "inf", "-inf", "+inf", "infinity", "-infinity"})
_QUALITATIVE_WITH_DIGITS = re.compile(r"^\s*(?:1\s*:\s*\d+|\d\s*\+)\s*$")


def _numeric_part(v: str) -> str | None:
    text = v.translate(_FULLWIDTH)
    m = _NUMERIC_RESULT.match(text)
    if m:
        return m.group(1)
    if text.strip().lower() in _NOT_A_NUMBER:
        return v
    if not any(c.isdigit() for c in text) or _QUALITATIVE_WITH_DIGITS.match(text):
        return None
    return v  # digits outside the grammar: left to fail parsing (quarantined), never read as a number


def _comparator(v: str) -> str | None:
    m = _COMPARATOR.match(v)
    if not m:
        return None
    return {"≤": "<=", "≥": ">=", "＜": "<", "＞": ">"}.get(m.group(1), m.group(1))


def _arrow_flag(v: str) -> str | None:
    v = v.strip()
    if v in ("↑", "H", "h", "高", "偏高"):
        return "H"
    if v in ("↓", "L", "l", "低", "偏低"):
        return "L"
    if v in ("↑↑", "HH", "危急高"):
        return "HH"
    if v in ("↓↓", "LL", "危急低"):
        return "LL"
    return v or None


def _resident_id_hash(v: str) -> str | None:
    from countyhealth.standardise.person import normalise_id_for_hash

    return privacy.keyed_hash(normalise_id_for_hash(v), "id_number")  # as person.id_number_hash is made


def _resident_key_hash(v: str) -> str | None:
    from countyhealth.standardise.person import normalise_id_for_hash

    id_part, _, rest = v.partition("|")
    normalised = normalise_id_for_hash(id_part)
    return privacy.keyed_hash(f"{normalised}|{rest.strip()}", "resident_key") if normalised else None


TRANSFORMS: dict[str, Callable[[pa.Array], pa.Array]] = {
    "upper": pc.utf8_upper,
    "lower": pc.utf8_lower,
    "fullwidth_to_ascii": _per_value(lambda v: v.translate(_FULLWIDTH)),  # ０１２ＡＢ → 012AB (全角 → 半角)
    "remove_spaces": lambda a: pc.replace_substring_regex(a, r"[\s\u3000]+", ""),
    "digits": lambda a: pc.replace_substring_regex(a, r"\D+", ""),
    "numeric_part": _per_value(_numeric_part),  # '<0.1' → '0.1', '12.3↑' → '12.3', '阴性' → null
    "comparator": _per_value(_comparator),  # '<0.1' → '<', '≥1000' → '>=', '5.2' → null
    "abnormal_arrow": _per_value(_arrow_flag),  # ↑ → H, ↓ → L
    "date_part": lambda a: pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(a), 0, 10),
    "resident_id_hash": _per_value(_resident_id_hash),  # an ID number → its keyed hash (joinable, not readable)
    # "ID|birth date" → a keyed hash: a resident, told apart from an infant filed under the mother's ID
    "resident_key_hash": _per_value(lambda v: _resident_key_hash(v)),
}


# ---- parsing text into the canonical types ---------------------------------------------------------------

def _nullify(arr: pa.Array, nulls: tuple[str, ...]) -> pa.Array:
    arr = pc.utf8_trim_whitespace(arr)
    mask = pc.is_in(arr, value_set=pa.array(list(nulls), pa.string()))
    return pc.if_else(mask, pa.scalar(None, pa.string()), arr)


def _strptime(arr: pa.Array, formats: list[str]) -> pa.Array:
    out = None
    for fmt in formats:
        parsed = pc.strptime(arr, format=fmt, unit="us", error_is_null=True)
        out = parsed if out is None else pc.coalesce(out, parsed)
    return out


def _parse_timestamp(arr: pa.Array, formats: list[str] | None) -> pa.Array:
    if formats:
        return _strptime(arr, formats)
    # ISO-8601: 'T' or space, optional fraction (dropped below a second is fine for clinical times)
    norm = pc.replace_substring_regex(pc.replace_substring(arr, "T", " "), r"(\d{2}:\d{2}:\d{2})\.\d+$", r"\1")
    return _strptime(norm, _ISO_DATETIMES)


def _parse(arr: pa.Array, target: pa.DataType, spec: FieldSpec | None) -> pa.Array:
    """Text → ``target``; values that don't parse become null (the caller reports them)."""
    formats = spec.formats if spec else None
    if pa.types.is_string(target):
        return arr
    if pa.types.is_timestamp(target):
        return _parse_timestamp(arr, formats)
    if pa.types.is_date(target):
        if formats:
            return pc.cast(_strptime(arr, formats), pa.date32())
        return pc.cast(_parse_timestamp(arr, None), pa.date32())
    if pa.types.is_floating(target):
        ok = pc.match_substring_regex(arr, _NUMBER)
        as_float = pc.cast(pc.if_else(ok, arr, pa.scalar(None, pa.string())), target)
        return pc.if_else(pc.is_finite(as_float), as_float, pa.scalar(None, target))  # 1e309 overflows: not a number
    if pa.types.is_integer(target):
        ok = pc.match_substring_regex(arr, _INTEGER)
        as_float = pc.cast(pc.if_else(ok, arr, pa.scalar(None, pa.string())), pa.float64())
        in_range = pc.and_(pc.less_equal(pc.abs(as_float), 2 ** 31 - 1), pc.is_valid(as_float))
        return pc.cast(pc.if_else(in_range, as_float, pa.scalar(None, pa.float64())), target)
    if pa.types.is_boolean(target):
        low = pc.utf8_lower(arr)
        t = pc.is_in(low, value_set=pa.array(sorted(_TRUE)))
        f = pc.is_in(low, value_set=pa.array(sorted(_FALSE)))
        return pc.if_else(t, True, pc.if_else(f, False, pa.scalar(None, pa.bool_())))
    raise TypeError(f"no parser for {target}")


# ---- mapping a batch -------------------------------------------------------------------------------------

@dataclass
class Mapped:
    dataset: str
    table: pa.Table  # canonical schema + _row
    issues: pa.Table  # ISSUE_SCHEMA
    rows_excluded: int = 0  # rows the map's `where` left to other datasets


def _column(raw: pa.Table, name: str, *, strict: bool, where: str) -> pa.Array:
    if name in raw.column_names:
        return raw.column(name).combine_chunks()
    if strict and raw.num_rows:
        raise MappingError(f"{where}: column {name!r} is not in the source data — columns are: "
                           f"{', '.join(c for c in raw.column_names if not c.startswith('_'))}")
    return pa.nulls(raw.num_rows, pa.string())


def _template(raw: pa.Table, template: str, *, strict: bool, where: str) -> pa.Array:
    parts = re.split(r"(\{[^{}]+\})", template)
    pieces = []
    for p in parts:
        if p.startswith("{") and p.endswith("}"):
            pieces.append(pc.utf8_trim_whitespace(_column(raw, p[1:-1], strict=strict, where=where)))
        elif p:
            pieces.append(pa.scalar(p))
    if len(pieces) == 1 and isinstance(pieces[0], pa.Array):
        return pieces[0]
    return pc.binary_join_element_wise(*pieces, "")


# Text a warehouse cannot store. Declared rule: NUL bytes at the end of a value (C-string padding of old vendor
# systems) are dropped; a NUL anywhere else, or U+FFFD (what invalid UTF-8 and lone surrogates become at the
# connectors' Arrow boundary), quarantines the row under `<dataset>.conformance.text.<field>` with the value shown
# (NUL as ␀) — one row, never the batch (PostgreSQL refuses NUL in text and would fail the whole COPY).
_UNSTORABLE = "[\x00\ufffd]"


def _storable_text(arr: pa.Array, dataset: str, field: str, rows, found) -> pa.Array:
    if not pc.any(pc.match_substring_regex(arr, _UNSTORABLE)).as_py():
        return arr
    arr = pc.utf8_rtrim(arr, characters="\x00")
    bad = pc.fill_null(pc.match_substring_regex(arr, _UNSTORABLE), False)
    _report(found, rows, bad, arr, f"{dataset}.conformance.text.{field}", field)
    return pc.if_else(bad, pa.scalar(None, pa.string()), arr)


def _masked(field: str, values: list) -> list:
    if field == "id_number":
        return [privacy.mask_id(v) for v in values]
    if field == "phone":
        return [privacy.mask_phone(v) for v in values]
    return [None if v is None else privacy.scrub(str(v))[:200] for v in values]


def map_dataset(raw: pa.Table, dmap: DatasetMap, source: SourceBase, stream: StreamBase, *, batch_id: str,
                strict_columns: bool = True) -> Mapped:
    dataset = dmap.dataset
    where = f"{source.path}: streams → {dataset}"
    excluded = 0
    if dmap.where:
        keep = None
        for col, values in dmap.where.items():
            cond = pc.is_in(_column(raw, col, strict=strict_columns, where=where), value_set=pa.array(values))
            keep = cond if keep is None else pc.and_(keep, cond)
        keep = pc.fill_null(keep, False)
        before = raw.num_rows
        raw = raw.filter(keep)
        excluded = before - raw.num_rows
    n = raw.num_rows
    rows = raw.column(ROW) if ROW in raw.column_names else pa.array(range(n), pa.int64())
    found: list[tuple] = []
    arrays = []
    for f in model.schema(dataset):
        name = f.name
        spec = dmap.fields.get(name)
        if name == "source_id":
            arr = pa.array([source.source_id] * n, pa.string())
        elif name == "batch_id":
            arr = pa.array([batch_id] * n, pa.string())
        elif spec is not None:
            arr = _field(raw, spec, f, dataset, rows, found, strict=strict_columns, where=f"{where}.{name}")
        elif name == "facility_code" and source.facility_code:
            arr = pa.array([source.facility_code] * n, pa.string())
        elif name == "source_record_id" and stream.primary_key:
            arr = _template(raw, "|".join(f"{{{c}}}" for c in stream.primary_key), strict=strict_columns, where=where)
        elif name == "source_updated_at" and stream.cursor is not None:
            arr = _cursor_time(raw, stream.cursor, dataset, rows, found, strict=strict_columns, where=where)
        else:
            arr = pa.nulls(n, f.type)
        arrays.append(arr)
    table = pa.Table.from_arrays(arrays, schema=model.schema(dataset)).append_column(ROW, rows)
    issues = issue_schema.issues_table(found) if found else issue_schema.empty()
    return Mapped(dataset, table, issues, excluded)


def _report(found: list, rows: pa.Array, failed: pa.Array, raw_values: pa.Array, rule: str, field: str) -> None:
    if not pc.any(failed).as_py():
        return
    idx = pc.indices_nonzero(failed)
    values = [v if v is None else v.replace("\x00", "\u2400")  # ␀: a NUL shown, never stored
              for v in _masked(field, pc.take(raw_values, idx).to_pylist())]
    for r, v in zip(pc.take(rows, idx).to_pylist(), values):
        found.append((r, rule, "conformance", "error", field, v))


def _field(raw, spec: FieldSpec, f: pa.Field, dataset, rows, found, *, strict, where) -> pa.Array:
    n = raw.num_rows
    if spec.column is not None:
        arr = _column(raw, spec.column, strict=strict, where=where)
    elif spec.template is not None:
        arr = _template(raw, spec.template, strict=strict, where=where)
    else:
        value = spec.value
        if value is None:
            return pa.nulls(n, f.type)
        arr = pa.array([str(value) if not isinstance(value, bool) else ("1" if value else "0")] * n, pa.string())
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    nulls = tuple(spec.null_values) if spec.null_values is not None else DEFAULT_NULLS
    if spec.null_values is None and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type)):
        nulls = tuple(v for v in nulls if v.lower() != "nan")  # a NaN where a number belongs is a fault, not a blank
    arr = _storable_text(_nullify(arr, nulls), dataset, f.name, rows, found)
    step_nulls = tuple(v for v in DEFAULT_NULLS if v in nulls or v.lower() != "nan")
    for step in spec.transform:
        arr = _nullify(TRANSFORMS[step](arr), step_nulls)
    if spec.map is not None:
        arr = _value_map(arr, spec, dataset, f.name, rows, found)
    parsed = _parse(arr, f.type, spec)
    if not pa.types.is_string(f.type):
        failed = pc.and_(pc.is_valid(arr), pc.is_null(parsed))
        _report(found, rows, failed, arr, f"{dataset}.conformance.parse.{f.name}", f.name)
    return parsed


def _value_map(arr: pa.Array, spec: FieldSpec, dataset: str, field: str, rows, found) -> pa.Array:
    table = {str(k).strip(): v for k, v in spec.map.items()}
    enc = pc.dictionary_encode(arr)
    keys = enc.dictionary.to_pylist()
    mapped, missing = [], []
    for k in keys:
        if k in table:
            mapped.append(table[k])
            missing.append(False)
        else:
            missing.append(True)
            mapped.append(k if spec.unmapped == "keep" else None)
    out = pc.take(pa.array(mapped, pa.string()), enc.indices)
    if spec.unmapped == "error":
        miss = pc.fill_null(pc.take(pa.array(missing, pa.bool_()), enc.indices), False)
        _report(found, rows, miss, arr, f"{dataset}.conformance.value_map.{field}", field)
    return out


def _cursor_time(raw, cursor: Cursor, dataset, rows, found, *, strict, where) -> pa.Array:
    arr = _nullify(_column(raw, cursor.column, strict=strict, where=where), DEFAULT_NULLS)
    parsed = _parse_timestamp(arr, [cursor.format] if cursor.format else None)
    failed = pc.and_(pc.is_valid(arr), pc.is_null(parsed))
    _report(found, rows, failed, arr, f"{dataset}.conformance.parse.source_updated_at", "source_updated_at")
    return parsed


def map_stream(raw: pa.Table, source: SourceBase, stream: StreamBase, *, batch_id: str,
               strict_columns: bool = True) -> list[Mapped]:
    """Every dataset a stream maps to, from one raw table."""
    return [map_dataset(raw, dmap, source, stream, batch_id=batch_id, strict_columns=strict_columns)
            for dmap in stream.maps or []]
